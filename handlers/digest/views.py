"""The digest's Block Kit, built from domain objects (no client calls, no store access): the headline,
one thread reply per category within Slack's limits, the owner's DM and nudge, the snooze modal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot import digest as digests
from bot.digest import AccountDigest, Digest
from bot.findings import Finding, Severity
from bot.store import iso
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
from handlers.ids import ActionId, BlockId, CallbackId

# Stay clear of Slack's limits with room to spare: 50 blocks, ~12k chars of block text.
BLOCK_BUDGET = 48
TEXT_BUDGET = 10_000
ITEMS_WITH_BUTTONS = 10
HEADLINE_ACCOUNTS = 15
NUDGE_ITEMS = 10


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
