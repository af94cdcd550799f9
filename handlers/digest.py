"""The daily digest in Slack: one headline message, details in its thread, the full list as CSV.

- ``post_digest`` posts a digest now (``iamwarden digest``); ``run_digest_job`` is the scheduled
  job: it claims the due slot in SQLite first, so each slot is posted once per channel whatever the
  number of instances or restarts, and catches a missed slot up within the grace period.
- Buttons: Snooze (security team, modal with reason and end date), Notify owner (DMs the owner the
  finding and its fix), Acknowledge, Disable access (security team, confirm dialog).
- Nudges (opt-in ``[nudges]``): owners get one DM per finding per ``every_days`` with "Fixed" and
  "Not mine" buttons.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import digest as digests
from bot.cli import EXIT_OK, EXIT_USAGE, command
from bot.digest import AccountDigest, Digest, DigestError
from bot.findings import Finding, Severity
from bot.jobs import job
from bot.services import Services
from bot.settings import SettingsError
from bot.store import iso
from handlers.background import ack_then, retry_hint, slow_work
from handlers.blocks import (
    SEVERITY_ICON,
    Message,
    actions,
    button,
    code,
    confirm_dialog,
    context,
    escape,
    header,
    mention,
    section,
    truncate,
)
from handlers.commands import CommandIO
from handlers.identity import DirectoryError
from handlers.ids import ActionId, BlockId, CallbackId
from handlers.models import BlockAction, ViewSubmission

if TYPE_CHECKING:
    from bot.identity import DisableResult

log = logging.getLogger(__name__)

# Stay clear of Slack's limits with room to spare: 50 blocks, ~12k chars of block text.
BLOCK_BUDGET = 48
TEXT_BUDGET = 10_000
ITEMS_WITH_BUTTONS = 10
HEADLINE_ACCOUNTS = 15
NUDGE_ITEMS = 10


# -- pure builders ------------------------------------------------------------------------------------


def text_size(obj: Any) -> int:
    """Characters of every ``text`` string in the blocks (what Slack's msg_blocks_too_long counts)."""
    if isinstance(obj, list):
        return sum(text_size(x) for x in obj)
    if isinstance(obj, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_size(v) for k, v in obj.items())
    return 0


class _Budget:
    """Adds blocks while they fit; remembers how many items did not."""

    def __init__(self, blocks: list[dict], *, max_blocks: int = BLOCK_BUDGET, max_text: int = TEXT_BUDGET):
        self.blocks = blocks
        self.max_blocks = max_blocks
        self.max_text = max_text

    def fits(self, more: list[dict]) -> bool:
        return (
            len(self.blocks) + len(more) <= self.max_blocks
            and text_size(self.blocks) + text_size(more) <= self.max_text
        )

    def add(self, more: list[dict]) -> bool:
        if not self.fits(more):
            return False
        self.blocks.extend(more)
        return True


def severity_counts(account: AccountDigest) -> str:
    parts = []
    for severity in Severity:
        n = account.counts.get(severity, 0)
        change = account.change(severity)
        delta = f" ({change:+d})".replace("-", "−") if change else ""
        parts.append(f"{SEVERITY_ICON[severity]} {n} {severity.value}{delta}")
    return " · ".join(parts)


def account_summary(account: AccountDigest, digest: Digest) -> str:
    lines = [f"*{escape(account.label)}*"]
    if account.snapshot_id is None:
        failure = account.failure(digest.at) if account.scan_error else "not scanned"
        lines.append(f":warning: no successful scan yet: {escape(failure)}")
        return "\n".join(lines)
    lines.append(severity_counts(account))
    extra = [
        f"{len(account.new)} new",
        f"{len(account.resolved)} resolved",
        f"{len(account.snoozed)} snoozed",
        f"{len(account.suppressed)} suppressed",
    ]
    if account.offboarding:
        extra.insert(0, f"*{len(account.offboarding)} need offboarding*")
    if account.unknown:
        extra.append(f"{len(account.unknown)} could not be evaluated")
    lines.append(" · ".join(extra))
    if account.previous_snapshot_id is None:
        lines.append("_First digest for this account: nothing earlier to compare with._")
    if account.scan_error:
        lines.append(
            f":warning: the latest scan failed ({escape(truncate(account.scan_error, 300))});"
            f" showing the previous one ({account.last_good(digest.at)})."
        )
    return "\n".join(lines)


def _principal(f: Finding) -> str:
    return code(f.principal_name or f.principal_arn or f.account_id)


def finding_line(f: Finding, digest: Digest, *, with_account: bool = False) -> str:
    """One finding in one line: severity, check, principal, owner, acknowledgement."""
    parts = [f"{SEVERITY_ICON[f.severity]} *{escape(truncate(f.title, 120))}* {_principal(f)}"]
    if with_account:
        parts.append(f"in {code(f.account_id)}")
    if f.owner:
        parts.append(f"owner {mention(f.owner)}")
    ack = digest.acks.get(f.fingerprint)
    if ack:
        parts.append(f"(acknowledged by {mention(ack['acknowledged_by'])})")
    claim = digest.fixed_claims.get(f.fingerprint)
    if claim:
        parts.append(
            f"(marked fixed by {mention(claim['marked_by'])} on {claim['marked_at'][:10]}, but the scan after that still found it)"
        )
    return " ".join(parts)


def disable_access_button(action_id: ActionId, value: str, *, user_name: str, account_id: str) -> dict:
    """The Disable access button and its confirm dialog (digest findings and KEY_QUARANTINED alerts)."""
    return button(
        "Disable access",
        action_id,
        value,
        style="danger",
        confirm=confirm_dialog(
            "Disable access?",
            f"Deactivate every access key of IAM user {escape(user_name)} in "
            f"{escape(account_id)} and delete its console password. Keys are kept (inactive) "
            "so this can be undone.",
            confirm="Disable access",
        ),
    )


def finding_buttons(f: Finding, position: int = 0) -> dict:
    """The item's buttons; the block id carries the position so a duplicate finding cannot make two
    blocks share an id (Slack would refuse the whole message)."""
    elements = []
    if f.check_id in digests.OFFBOARDING_CHECKS and f.principal_arn and ":user/" in f.principal_arn:
        elements.append(
            disable_access_button(
                ActionId.DIGEST_DISABLE_ACCESS,
                f.fingerprint,
                user_name=f.principal_name or "",
                account_id=f.account_id,
            )
        )
    elements.append(button("Notify owner", ActionId.DIGEST_NOTIFY_OWNER, f.fingerprint))
    elements.append(button("Acknowledge", ActionId.DIGEST_ACKNOWLEDGE, f.fingerprint))
    elements.append(button("Snooze", ActionId.DIGEST_SNOOZE, f.fingerprint))
    return actions(*elements, block_id=f"finding:{position}:{f.fingerprint}")


def finding_item(f: Finding, digest: Digest, *, with_account: bool, position: int = 0) -> list[dict]:
    text = finding_line(f, digest, with_account=with_account)
    if f.detail:
        text += "\n" + escape(truncate(f.detail, 300))
    if f.remediation:
        text += "\n_Fix:_ " + escape(truncate(f.remediation.splitlines()[0], 250))
    return [section(text), finding_buttons(f, position)]


def _category(
    title: str,
    findings: list[Finding],
    digest: Digest,
    *,
    intro: str = "",
    buttons: bool = True,
    line_suffix: dict[str, str] | None = None,
) -> Message:
    """One thread reply: items with buttons first, then compact lines, then an honest count of the rest."""
    with_account = len(digest.accounts) > 1
    blocks: list[dict] = [header(f"{title} ({len(findings)})")]
    if intro:
        blocks.append(context(intro))
    budget = _Budget(blocks, max_blocks=BLOCK_BUDGET - 1, max_text=TEXT_BUDGET - 300)
    shown = 0
    for f in findings[: ITEMS_WITH_BUTTONS if buttons else 0]:
        if not budget.add(finding_item(f, digest, with_account=with_account, position=shown)):
            break
        shown += 1
    # The rest as lines packed into sections of up to ~2,900 characters.
    pending: list[str] = []
    for f in findings[shown:]:
        line = (
            "• "
            + finding_line(f, digest, with_account=with_account)
            + (line_suffix or {}).get(f.fingerprint, "")
        )
        candidate = "\n".join([*pending, line])
        if len(candidate) > 2900:
            if not budget.add([section("\n".join(pending))]):
                pending = []
                break
            shown += len(pending)
            pending = [line]
        else:
            pending.append(line)
    if pending and budget.add([section("\n".join(pending))]):
        shown += len(pending)
    rest = len(findings) - shown
    if rest > 0:
        blocks.append(context(f"…and {rest} more: every one is in the CSV file in this thread."))
    return Message(text=f"{title}: {len(findings)}", blocks=blocks, ephemeral=False)


def headline_message(digest: Digest) -> Message:
    """The digest's one channel message: totals by severity per account and change since last time."""
    day = digest.at.date().isoformat()
    blocks: list[dict] = [header(f"IAM hygiene digest · {day}")]
    since = (
        f"Changes since the previous digest ({iso(digest.previous_at)})."
        if digest.previous_at
        else "First digest in this channel: changes are counted from the previous scan when there is one."
    )
    blocks.append(context(since))
    if not digest.accounts:
        blocks.append(
            section(
                "No scan has been stored yet. The daily scan will run on schedule, or run `iamwarden scan`."
            )
        )
    budget = _Budget(blocks, max_blocks=BLOCK_BUDGET - 8, max_text=TEXT_BUDGET - 3000)
    shown = 0
    for account in digest.accounts[:HEADLINE_ACCOUNTS]:
        if not budget.add([section(account_summary(account, digest))]):
            break
        shown += 1
    if shown < len(digest.accounts):
        rest = digest.accounts[shown:]
        totals = Digest(digest.channel, digest.at, rest, None, {}, {}, {}).counts()
        summary = ", ".join(f"{n} {s.value}" for s, n in totals.items())
        blocks.append(
            section(f"*{len(rest)} more accounts:* {summary}. Per account in the CSV file in the thread.")
        )
    offboarding = [f for a in digest.accounts for f in a.offboarding]
    if offboarding:
        blocks.append(section(f"*Needs offboarding first ({len(offboarding)})*"))
        for i, f in enumerate(offboarding[:3]):
            blocks += finding_item(f, digest, with_account=len(digest.accounts) > 1, position=i)
        if len(offboarding) > 3:
            blocks.append(context(f"{len(offboarding) - 3} more in the thread."))
    total = digest.counts()
    new, resolved = digest.total("new"), digest.total("resolved")
    blocks.append(
        context(
            f"{new} new · {resolved} resolved · {digest.total('snoozed')} snoozed · "
            f"{digest.total('suppressed')} suppressed. Details in the thread; the complete list is the CSV file there."
        )
    )
    fallback = (
        f"IAM hygiene digest {day}: "
        + ", ".join(f"{n} {s.value}" for s, n in total.items())
        + f"; {new} new, {resolved} resolved since the previous digest."
    )
    return Message(text=fallback, blocks=blocks, ephemeral=False)


def thread_messages(digest: Digest) -> list[Message]:
    """One reply per category, in order: offboarding, new, back from snooze, marked fixed but still
    found, resolved, oldest critical, snoozed and suppressed, could not evaluate. Empty ones are left out."""
    replies: list[Message] = []
    everyone = digest.accounts
    offboarding = [f for a in everyone for f in a.offboarding]
    if offboarding:
        replies.append(
            _category(
                "Needs offboarding",
                offboarding,
                digest,
                intro="IAM users whose person left (deactivated in Slack) or who nobody owns, yet still hold credentials.",
            )
        )
    new = [f for a in everyone for f in a.new if f.check_id not in digests.OFFBOARDING_CHECKS]
    if new:
        replies.append(_category("New since the previous digest", new, digest))
    back = [f for a in everyone for f in a.back_from_snooze]
    if back:
        replies.append(
            _category("Back from snooze", back, digest, intro="Their snooze ended and they are still there.")
        )
    disputed = [f for a in everyone for f in a.active if f.fingerprint in digest.fixed_claims]
    if disputed:
        replies.append(
            _category(
                "Marked fixed, still found",
                disputed,
                digest,
                intro="Their owner answered Fixed, but the scan after that still found them.",
            )
        )
    resolved = [item for a in everyone for item in a.resolved]
    if resolved:
        suffix = {
            item.finding.fingerprint: (
                f" — {'access disabled' if item.how == 'access_disabled' else 'fixed'} by {mention(item.fixer)} :tada:"
                if item.fixer
                else ""
            )
            for item in resolved
        }
        replies.append(
            _category(
                "Resolved since the previous digest",
                [item.finding for item in resolved],
                digest,
                buttons=False,
                line_suffix=suffix,
            )
        )
    oldest = [aged for a in everyone for aged in a.oldest_critical]
    if oldest:
        suffix = {
            aged.finding.fingerprint: f" — open since {aged.first_seen.date().isoformat()}" for aged in oldest
        }
        replies.append(
            _category(
                "Oldest unresolved critical",
                [aged.finding for aged in oldest],
                digest,
                buttons=False,
                line_suffix=suffix,
            )
        )
    snoozed = [f for a in everyone for f in a.snoozed]
    suppressed = [f for a in everyone for f in a.suppressed]
    if snoozed or suppressed:
        suffix = {}
        for f in snoozed:
            s = digest.snoozes[f.fingerprint]
            suffix[f.fingerprint] = (
                f" — snoozed by {mention(s.snoozed_by)} until {s.until.date().isoformat()}: {escape(truncate(s.reason, 200))}"
            )
        for f in suppressed:
            suffix[f.fingerprint] = (
                f" — suppressed in config: {escape(truncate(f.suppression_reason or '', 200))}"
            )
        replies.append(
            _category(
                "Snoozed and suppressed",
                snoozed + suppressed,
                digest,
                buttons=False,
                line_suffix=suffix,
                intro=f"{len(snoozed)} snoozed, {len(suppressed)} suppressed. A snooze ends on its date and the finding comes back.",
            )
        )
    unknown = [f for a in everyone for f in a.unknown]
    if unknown:
        suffix = {f.fingerprint: f" — {escape(truncate(f.detail, 200))}" for f in unknown}
        replies.append(
            _category(
                "Could not evaluate",
                unknown,
                digest,
                buttons=False,
                line_suffix=suffix,
                intro="These checks could not run (a source was unavailable); they are not passes.",
            )
        )
    return replies


def csv_filename(digest: Digest) -> str:
    return f"iamwarden-digest-{digest.at.date().isoformat()}.csv"


def owner_dm(f: Finding, *, sender: str | None = None, nudge: bool = False) -> Message:
    """A DM to a finding's owner: what is wrong, how to fix it, and (for nudges) Fixed / Not mine."""
    intro = (
        f"{mention(sender)} asked me to let you know about this IAM finding you own."
        if sender
        else "A reminder about an IAM finding you own."
    )
    blocks = [section(intro)] + _dm_finding_blocks(f, buttons=True)
    return Message(
        text=f"IAM finding you own: {f.title} ({f.principal_name or f.account_id})",
        blocks=blocks,
        ephemeral=False,
    )


def _dm_finding_blocks(f: Finding, *, buttons: bool, position: int = 0) -> list[dict]:
    text = f"{SEVERITY_ICON[f.severity]} *{escape(truncate(f.title, 150))}* {_principal(f)} in {code(f.account_id)}"
    if f.detail:
        text += "\n" + escape(truncate(f.detail, 500))
    if f.remediation:
        text += "\n*How to fix it*\n" + escape(truncate(f.remediation, 1200))
    blocks = [section(text)]
    if buttons:
        blocks.append(
            actions(
                button("Fixed", ActionId.NUDGE_FIXED, f.fingerprint, style="primary"),
                button("Not mine", ActionId.NUDGE_NOT_MINE, f.fingerprint),
                block_id=f"nudge:{position}:{f.fingerprint}",
            )
        )
    return blocks


def nudge_message(findings: list[Finding], every_days: int) -> tuple[Message, list[Finding]]:
    """One DM for an owner's due findings; returns the message and the findings it actually shows."""
    blocks: list[dict] = [
        section(
            f"You own {len(findings)} IAM finding{'s' if len(findings) != 1 else ''} that need attention. "
            "Press *Fixed* when done (the next scan checks) or *Not mine* if it is not yours."
        )
    ]
    budget = _Budget(blocks, max_blocks=BLOCK_BUDGET - 1, max_text=TEXT_BUDGET - 300)
    shown: list[Finding] = []
    for f in findings[:NUDGE_ITEMS]:
        if not budget.add(_dm_finding_blocks(f, buttons=True, position=len(shown))):
            break
        shown.append(f)
    if len(shown) < len(findings):
        blocks.append(
            context(f"{len(findings) - len(shown)} more: I will remind you of them in the next digest.")
        )
    blocks.append(context(f"I remind you at most once every {every_days} days per finding."))
    return Message(
        text=f"You own {len(findings)} IAM findings that need attention", blocks=blocks, ephemeral=False
    ), shown


def snooze_modal(f: Finding, *, today: Any, metadata: str) -> dict:
    default_end = (today + timedelta(days=14)).isoformat()
    return {
        "type": "modal",
        "callback_id": CallbackId.DIGEST_SNOOZE_MODAL.value,
        "title": {"type": "plain_text", "text": "Snooze finding"},
        "submit": {"type": "plain_text", "text": "Snooze"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": metadata,
        "blocks": [
            section(
                f"{SEVERITY_ICON[f.severity]} *{escape(truncate(f.title, 200))}* {_principal(f)} in {code(f.account_id)}"
            ),
            {
                "type": "input",
                "block_id": BlockId.SNOOZE_REASON.value,
                "label": {"type": "plain_text", "text": "Why is it OK for now?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": BlockId.SNOOZE_REASON.value,
                    "multiline": True,
                    "max_length": 1000,
                },
            },
            {
                "type": "input",
                "block_id": BlockId.SNOOZE_UNTIL.value,
                "label": {"type": "plain_text", "text": f"Until (at most {digests.MAX_SNOOZE_DAYS} days)"},
                "element": {
                    "type": "datepicker",
                    "action_id": BlockId.SNOOZE_UNTIL.value,
                    "initial_date": default_end,
                },
            },
            context(
                "Recorded with your name and reason in the audit log. When it ends, the finding comes back."
            ),
        ],
    }


# -- posting ---------------------------------------------------------------------------------------------


@dataclass
class PostedDigest:
    channel: str
    ts: str
    digest: Digest
    replies: int
    file_id: str | None
    nudges: int = 0


def digest_channel(services: Services) -> str | None:
    slack = services.config.slack
    return slack.digest_channel or slack.security_channel


def owners_for(services: Services) -> Any:
    """The identity map (owner of each principal, deactivated members), or None when unavailable."""
    try:
        from bot.identity import identity_from_store

        return identity_from_store(services.config, services.store)
    except Exception:
        log.exception("could not build the identity map; owners will be missing from the digest")
        return None


def build(services: Services, channel: str) -> Digest:
    return digests.build_digest(
        services.store, channel=channel, now=services.clock.now(), owners=owners_for(services)
    )


def post_digest(
    services: Services, client: WebClient, *, channel: str | None = None, slot: str | None = None
) -> PostedDigest:
    """Post a digest now: the headline, one thread reply per category, the CSV in the thread.

    The digest is recorded as soon as the headline is posted (the next digest diffs against it), so
    a failure later in the thread never leads to a second headline.
    """
    channel = channel or digest_channel(services)
    if not channel:
        raise SettingsError("slack.digest_channel (or slack.security_channel) is required to post a digest")
    digest = build(services, channel)
    headline = headline_message(digest).checked()
    response = client.chat_postMessage(channel=channel, text=headline.text, blocks=headline.blocks)
    ts = response["ts"]
    channel_id = response.get("channel") or channel
    digests.record_digest(services.store, digest, ts=ts, slot=slot, now=services.clock.now())
    services.store.audit(
        "digest.post",
        actor="iamwarden",
        at=services.clock.now(),
        channel=channel_id,
        ts=ts,
        slot=slot,
        **digest.summary(),
    )
    # Once the headline is out, a failing reply must not stop the others (nor repost the headline).
    replies = 0
    failed: list[str] = []
    for reply in thread_messages(digest):
        checked = reply.checked()
        try:
            client.chat_postMessage(
                channel=channel_id, thread_ts=ts, text=checked.text, blocks=checked.blocks
            )
            replies += 1
        except SlackApiError as exc:
            log.warning("digest reply %r failed: %s", checked.text[:60], exc.response.get("error"))
            failed.append(checked.text.split(":")[0])
    file_id = None
    try:
        upload = client.files_upload_v2(
            channel=channel_id,
            thread_ts=ts,
            content=digest.csv(),
            filename=csv_filename(digest),
            title=f"All findings, {digest.at.date().isoformat()}",
            initial_comment="The complete list: every finding in every account, with its state.",
        )
        file_id = (upload.get("file") or {}).get("id")
    except SlackApiError as exc:
        log.warning("digest CSV upload failed: %s", exc.response.get("error"))
        failed.append("the CSV file")
    if failed:
        note = f"Slack refused part of this digest ({', '.join(failed)}); the error is logged."
        try:
            client.chat_postMessage(
                channel=channel_id, thread_ts=ts, text=note, blocks=[section(escape(note))]
            )
        except SlackApiError:
            log.warning("could not even say that the digest is incomplete")
    posted = PostedDigest(channel_id, ts, digest, replies, file_id)
    if services.config.nudges.enabled:
        posted.nudges = send_nudges(services, client, digest)
    return posted


def run_digest_job(services: Services, client: WebClient) -> PostedDigest | None:
    """The scheduled digest: post the due slot once per channel, however many instances run.

    Called by the cron trigger at the slot, and every minute to catch up a slot missed while the bot
    was down (within ``schedule.catch_up_grace``). Returns None when there is nothing to do.
    """
    channel = digest_channel(services)
    if not channel:
        log.warning("no digest channel configured ([slack] digest_channel); skipping the digest")
        return None
    schedule = services.config.schedule
    now = services.clock.now()
    slot = digests.due_slot(schedule.digest_cron, schedule.timezone, now, schedule.catch_up_grace)
    if slot is None:
        return None
    store = services.store
    if not digests.claim_slot(store, kind="digest", channel=channel, slot=slot, now=now):
        return None
    try:
        posted = post_digest(services, client, channel=channel, slot=iso(slot))
    except Exception as exc:
        # Only a digest that never reached the channel may be retried; once the headline is out the
        # slot counts as posted (record_digest happened inside post_digest).
        posted_already = digests.previous_digest(store, channel)
        if posted_already and posted_already["slot"] == iso(slot):
            digests.finish_slot(
                store,
                kind="digest",
                channel=channel,
                slot=slot,
                now=services.clock.now(),
                ts=posted_already["ts"],
            )
        else:
            digests.finish_slot(
                store,
                kind="digest",
                channel=channel,
                slot=slot,
                now=services.clock.now(),
                error=type(exc).__name__,
            )
        raise
    digests.finish_slot(
        store, kind="digest", channel=channel, slot=slot, now=services.clock.now(), ts=posted.ts
    )
    return posted


def run_scan_job(services: Services, client: WebClient) -> bool:
    """The scheduled scan: once per slot across instances. True when this call ran it."""
    schedule = services.config.schedule
    now = services.clock.now()
    slot = digests.due_slot(schedule.scan_cron, schedule.timezone, now, schedule.catch_up_grace)
    if slot is None:
        return False
    store = services.store
    if not digests.claim_slot(store, kind="scan", channel="*", slot=slot, now=now):
        return False
    try:
        from bot.scan import scan_accounts

        scan_accounts(services, directory=client)  # a stale directory is refreshed first
    except Exception as exc:
        digests.finish_slot(
            store, kind="scan", channel="*", slot=slot, now=services.clock.now(), error=type(exc).__name__
        )
        raise
    digests.finish_slot(store, kind="scan", channel="*", slot=slot, now=services.clock.now())
    return True


@job("scan", cron=lambda s: s.config.schedule.scan_cron)
def scheduled_scan(services: Services, client: WebClient) -> None:
    run_scan_job(services, client)


@job("digest", cron=lambda s: s.config.schedule.digest_cron)
def scheduled_digest(services: Services, client: WebClient) -> None:
    run_digest_job(services, client)


@job("schedule_catch_up", every_seconds=lambda s: 60.0)
def catch_up(services: Services, client: WebClient) -> None:
    """A slot missed while the bot was down runs once, within the grace period (scan first)."""
    run_scan_job(services, client)
    run_digest_job(services, client)


def send_nudges(services: Services, client: WebClient, digest: Digest) -> int:
    """DM each owner about their open findings not mentioned to them in ``nudges.every_days``.

    Returns the number of DMs sent. Deactivated owners are skipped (their findings are offboarding
    work for the security team, not a DM nobody reads).
    """
    config = services.config.nudges
    every = timedelta(days=config.every_days)
    now = services.clock.now()
    owners = owners_for(services)
    sent = 0
    for owner, findings in digests.due_nudges(services.store, digest, now=now, every=every).items():
        if owners is not None and owners.is_deactivated(owner):
            continue
        message, shown = nudge_message(findings, config.every_days)
        claimed = [f for f in shown if digests.claim_nudge(services.store, f, owner, now=now, every=every)]
        if not claimed:
            continue
        if len(claimed) != len(shown):
            message, shown = nudge_message(claimed, config.every_days)
        try:
            client.chat_postMessage(channel=owner, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            log.warning("could not DM %s (%s); will try again next time", owner, exc.response.get("error"))
            for f in claimed:
                digests.release_nudge(services.store, f, owner, sent_at=now)
            continue
        services.store.audit(
            "digest.nudge",
            actor="iamwarden",
            at=now,
            owner=owner,
            fingerprints=[f.fingerprint for f in shown],
        )
        sent += 1
    return sent


# -- listeners ---------------------------------------------------------------------------------------------


def _thread_of(body: dict) -> str | None:
    """The thread a clicked message belongs to (its own ts when it is the top of the thread)."""
    message = body.get("message") or {}
    return message.get("thread_ts") or message.get("ts")


def _tell(client: WebClient, action: BlockAction, text: str) -> None:
    """An ephemeral answer to the person who clicked (not durable: anything that matters is also
    posted in the thread or recorded in the audit log)."""
    try:
        if action.channel_id and not action.channel_id.startswith("D"):
            client.chat_postEphemeral(channel=action.channel_id, user=action.user.id, text=text)
        else:
            client.chat_postMessage(channel=action.user.id, text=text)
    except SlackApiError as exc:
        log.warning("could not answer %s: %s", action.user.id, exc.response.get("error"))


def _in_thread(
    client: WebClient, action: BlockAction, thread_ts: str | None, text: str, blocks: list[dict] | None = None
) -> None:
    if not action.channel_id or action.channel_id.startswith("D"):
        return
    message = Message(text=text, blocks=blocks or [section(text)], ephemeral=False).checked()
    try:
        client.chat_postMessage(
            channel=action.channel_id, thread_ts=thread_ts, text=message.text, blocks=message.blocks
        )
    except SlackApiError as exc:
        log.warning("could not post in the digest thread: %s", exc.response.get("error"))


def run_disable_access(
    services: Services,
    client: WebClient,
    action: BlockAction,
    body: dict,
    *,
    account_id: str,
    user_name: str,
    reason: str,
) -> DisableResult | None:
    """The confirmed Disable access click (after ack and the security-team check): deactivate the
    user's keys and delete its password, say what changed in the clicked message's thread and to
    the clicker. Returns bot.offboarding's DisableResult, or None when it failed (already told)."""
    from bot.identity import OffboardingError, disable_access, factory_for_account

    try:
        result = disable_access(
            factory_for_account(services, account_id),
            services.store,
            account_id=account_id,
            user_name=user_name,
            actor=action.user.id,
            at=services.clock.now(),
            reason=reason,
        )
    except OffboardingError as exc:
        _tell(client, action, f"Disable access failed: {escape(exc)}")
        _in_thread(
            client, action, _thread_of(body), f"{mention(action.user.id)} tried Disable access: {escape(exc)}"
        )
        return None
    except Exception as exc:  # AWS unreachable, role not assumable…
        log.exception("disable access for %s failed", user_name)
        _tell(
            client,
            action,
            f"Disable access failed ({escape(type(exc).__name__)}); nothing is confirmed changed. It is logged.",
        )
        return None
    text = f"{mention(action.user.id)} used Disable access. {escape(result.describe())}"
    _in_thread(client, action, _thread_of(body), text)
    _tell(client, action, escape(result.describe()))
    return result


def _finding(services: Services, client: WebClient, action: BlockAction) -> Finding | None:
    f = digests.finding_by_fingerprint(services.store, action.value) if action.value else None
    if f is None:
        _tell(
            client, action, "I no longer have that finding stored; the next digest shows the current state."
        )
    return f


def _owner_of(services: Services, f: Finding) -> str | None:
    if f.owner:
        return f.owner
    owners = owners_for(services)
    return owners.owner_of(f.principal_arn) if owners is not None and f.principal_arn else None


def register(app: App, services: Services) -> None:
    store = services.store

    @app.action(ActionId.DIGEST_ACKNOWLEDGE.value)
    @ack_then(services)
    def on_acknowledge(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        f = _finding(services, client, action)
        if f is None:
            return
        now = services.clock.now()
        if digests.acknowledge(store, f, by=action.user.id, now=now):
            _in_thread(
                client,
                action,
                _thread_of(body),
                f"{mention(action.user.id)} acknowledged {escape(f.title)} {_principal(f)}.",
            )
        else:
            ack_row = digests.acknowledgements(store).get(f.fingerprint) or {}
            _tell(client, action, f"Already acknowledged by {mention(ack_row.get('acknowledged_by', '?'))}.")

    @app.action(ActionId.DIGEST_NOTIFY_OWNER.value)
    @ack_then(services)
    def on_notify_owner(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        f = _finding(services, client, action)
        if f is None:
            return
        owner = _owner_of(services, f)
        if owner is None:
            _tell(
                client,
                action,
                f"Nobody is known to own {_principal(f)}: tag the IAM user with the owner's email or map it in "
                "the config's [identity] map, then try again.",
            )
            return
        owners = owners_for(services)
        if owners is not None and owners.is_deactivated(owner):
            _tell(
                client,
                action,
                f"The owner {mention(owner)} is deactivated in Slack: this needs offboarding, not a DM.",
            )
            return
        message = owner_dm(f, sender=action.user.id).checked()
        try:
            client.chat_postMessage(channel=owner, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            _tell(
                client,
                action,
                f"Slack would not let me DM {mention(owner)} ({escape(exc.response.get('error'))}).",
            )
            return
        now = services.clock.now()
        digests.claim_nudge(store, f, owner, now=now, every=timedelta(0))
        digests.mark(store, f, kind="notified", by=action.user.id, now=now, note=owner)
        _tell(client, action, f"I sent {mention(owner)} the finding and how to fix it.")

    @app.action(ActionId.DIGEST_SNOOZE.value)
    @ack_then(services)
    def on_snooze(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        if not CommandIO(services=services, client=client).is_security_team(action.user.id):
            _tell(client, action, "Snoozing findings is for the security team.")
            return
        f = _finding(services, client, action)
        if f is None:
            return
        metadata = json.dumps(
            {"fingerprint": f.fingerprint, "channel": action.channel_id, "thread_ts": _thread_of(body)}
        )
        client.views_open(
            trigger_id=action.trigger_id,
            view=snooze_modal(f, today=services.clock.now().date(), metadata=metadata),
        )

    @app.view(CallbackId.DIGEST_SNOOZE_MODAL.value)
    def on_snooze_submit(ack: Ack, body: dict, client: WebClient) -> None:
        submission = ViewSubmission.from_body(body)
        user = submission.user.id
        try:
            meta = json.loads(submission.private_metadata or "{}")
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        channel = meta.get("channel")
        io = CommandIO(services=services, client=client)

        def refuse(field: str, text: str) -> None:
            ack(response_action="errors", errors={field: text})

        # Before the ack only what needs no Web API call: membership known without Slack (ids, a
        # cached group), the stored finding, the form's own values.
        member = io.known_security_team(user)
        if member is False:
            return refuse(BlockId.SNOOZE_REASON.value, "Snoozing is for the security team.")
        f = digests.finding_by_fingerprint(store, meta.get("fingerprint", ""))
        if f is None:
            return refuse(BlockId.SNOOZE_REASON.value, "That finding is no longer stored.")
        now = services.clock.now()
        reason = (submission.value(BlockId.SNOOZE_REASON.value) or "").strip()
        if not reason:
            return refuse(BlockId.SNOOZE_REASON.value, "Say why; it goes in the audit log.")
        try:
            until = digests.parse_snooze_end(submission.value(BlockId.SNOOZE_UNTIL.value), now)
            if member:
                snoozed = digests.snooze(store, f, by=user, reason=reason, until=until, now=now)
        except DigestError as exc:
            return refuse(BlockId.SNOOZE_UNTIL.value, str(exc))
        ack()

        def tell_member(text: str) -> None:
            try:
                if channel and not str(channel).startswith("D"):
                    client.chat_postEphemeral(channel=channel, user=user, text=text)
                else:
                    client.chat_postMessage(channel=user, text=text)
            except SlackApiError as exc:
                if retry_hint(exc) is not None:
                    raise  # Slack is unavailable: the outbox tells them later
                log.warning("could not answer %s: %s", user, exc.response.get("error"))

        def post_in_thread(snoozed: digests.Snooze) -> None:
            text = (
                f"{mention(user)} snoozed {escape(f.title)} {_principal(f)} until "
                f"{snoozed.until.date().isoformat()}: {escape(reason)}"
            )
            if not channel or str(channel).startswith("D"):
                return
            try:
                client.chat_postMessage(
                    channel=channel,
                    thread_ts=meta.get("thread_ts"),
                    text=truncate(text, 3000),
                    blocks=[section(text)],
                )
            except SlackApiError as exc:
                if retry_hint(exc) is not None:
                    raise  # Slack is unavailable: the outbox posts it later
                log.warning("could not post the snooze in the thread: %s", exc.response.get("error"))

        if member:
            slow_work(services).submit("snooze note", lambda: post_in_thread(snoozed))
            return

        done: dict = {}

        def check_and_snooze() -> None:
            # Membership needs Slack (a cold group cache): decided here, off Bolt's ack threads.
            # The outbox may run this again; the snooze is made once.
            if "snoozed" not in done:
                try:
                    allowed = io.is_security_team(user, strict=True)
                except DirectoryError as exc:
                    tell_member(f"{escape(exc)}, so the finding was not snoozed; try again shortly.")
                    return
                if not allowed:
                    tell_member("Snoozing is for the security team; the finding was not snoozed.")
                    return
                try:
                    done["snoozed"] = digests.snooze(
                        store, f, by=user, reason=reason, until=until, now=services.clock.now()
                    )
                except DigestError as exc:
                    tell_member(f"The finding was not snoozed: {escape(exc)}")
                    return
            post_in_thread(done["snoozed"])

        slow_work(services).submit("snooze", check_and_snooze, on_failure=tell_member)

    @app.action(ActionId.DIGEST_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        if not CommandIO(services=services, client=client).is_security_team(action.user.id):
            _tell(client, action, "Disable access is for the security team.")
            return
        f = _finding(services, client, action)
        if f is None:
            return
        if not f.principal_arn or ":user/" not in f.principal_arn:
            _tell(
                client,
                action,
                f"{_principal(f)} is not an IAM user; Disable access only applies to IAM users.",
            )
            return
        now = services.clock.now()
        result = run_disable_access(
            services,
            client,
            action,
            body,
            account_id=f.account_id,
            user_name=f.principal_name or f.principal_arn.rsplit("/", 1)[-1],
            reason=f"{f.check_id} {f.fingerprint}",
        )
        if result is not None and result.changed:
            digests.mark(store, f, kind="access_disabled", by=action.user.id, now=now, note=result.describe())

    @app.action(ActionId.NUDGE_FIXED.value)
    @ack_then(services)
    def on_fixed(body: dict, client: WebClient) -> None:
        _answer_nudge(services, client, body, kind="fixed")

    @app.action(ActionId.NUDGE_NOT_MINE.value)
    @ack_then(services)
    def on_not_mine(body: dict, client: WebClient) -> None:
        _answer_nudge(services, client, body, kind="not_mine")


def _answer_nudge(services: Services, client: WebClient, body: dict, *, kind: str) -> None:
    action = BlockAction.from_body(body)
    f = _finding(services, client, action)
    if f is None:
        return
    user = action.user.id
    owner = _owner_of(services, f)
    if owner and owner != user and not CommandIO(services=services, client=client).is_security_team(user):
        _tell(
            client,
            action,
            f"This finding belongs to {mention(owner)}; only they (or the security team) can answer it.",
        )
        return
    now = services.clock.now()
    digests.mark(services.store, f, kind=kind, by=user, now=now)
    if kind == "fixed":
        still = digests.is_open(services.store, f)
        note = "Thanks! The next scan checks it" + (
            "; it was still there in the latest scan." if still else "."
        )
    else:
        note = "Thanks, I told the security team it is not yours."
        channel = services.config.slack.security_channel or digest_channel(services)
        if channel:
            blocks = [
                section(f"{mention(user)} says this finding is *not theirs*; who owns it?"),
                *finding_item(f, Digest("", now, [], None, {}, {}, {}), with_account=True),
            ]
            message = Message(
                text=f"{user} says an IAM finding is not theirs", blocks=blocks, ephemeral=False
            ).checked()
            try:
                client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
            except SlackApiError as exc:
                log.warning("could not tell the security channel: %s", exc.response.get("error"))
    # Replace the buttons of that finding in the DM with the answer, so it cannot be clicked twice.
    message = body.get("message") or {}
    if action.channel_id and message.get("ts") and message.get("blocks"):
        blocks = [
            context(f"{'Marked fixed' if kind == 'fixed' else 'Marked not mine'} by {mention(user)}. {note}")
            if b.get("block_id") == action.block_id
            else b
            for b in message["blocks"]
        ]
        try:
            client.chat_update(
                channel=action.channel_id, ts=message["ts"], text=message.get("text") or note, blocks=blocks
            )
            return
        except SlackApiError as exc:
            log.warning("could not update the nudge: %s", exc.response.get("error"))
    _tell(client, action, note)


# -- the CLI ---------------------------------------------------------------------------------------------------


def _digest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be posted instead of posting"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the Block Kit messages as JSON (implies --dry-run)"
    )
    parser.add_argument("--channel", help="post to this channel instead of [slack] digest_channel")


@command("digest", "Post the digest now (or print it with --dry-run / --json).", _digest_arguments)
def cmd_digest(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    dry_run = args.dry_run or args.json
    settings = load_settings(require=() if dry_run else ("slack_bot_token",))
    services = Services.from_settings(settings)
    channel = args.channel or digest_channel(services)
    if dry_run:
        digest = build(services, channel or "(no channel configured)")
        if args.json:
            messages = [headline_message(digest).checked(), *(m.checked() for m in thread_messages(digest))]
            document = {
                "channel": channel,
                "headline": {"text": messages[0].text, "blocks": messages[0].blocks},
                "thread": [{"text": m.text, "blocks": m.blocks} for m in messages[1:]],
                "csv_filename": csv_filename(digest),
                "summary": digest.summary(),
            }
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            sys.stdout.write(digests.text_report(digest))
        return EXIT_OK
    if not channel:
        print(
            "iamwarden: slack.digest_channel: is required to post a digest (or use --channel)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from bot.app import build_client

    try:
        posted = post_digest(services, build_client(services), channel=channel)
    except SlackApiError as exc:
        print(f"iamwarden: Slack refused the digest: {exc.response.get('error')}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"Posted the digest to {posted.channel} (ts {posted.ts}) with {posted.replies} thread replies and the CSV file."
    )
    return EXIT_OK


# -- the demo tour ---------------------------------------------------------------------------------------------


def demo_tour(session: Any) -> None:
    """The demo tour's digest step: cache the Slack directory, scan, post the digest, then Sam (security
    team) uses Disable access on Dana, who left (deactivated in Slack) with an active access key."""
    from bot.app import build_client
    from bot.scan import scan_accounts
    from handlers.identity import refresh_directory

    services = session.services
    client = build_client(services)
    session.say("\n── The daily digest: posted on schedule by `iamwarden run`; here, right now ──")
    refresh_directory(services, client)
    scan_accounts(services, directory=client)
    post_digest(services, client)
    session.settle()
    session.say(
        "\nSam, on the security team, presses Disable access on Dana's finding and confirms the dialog:"
    )
    session.click_label("Disable access", user="U0SAM")
