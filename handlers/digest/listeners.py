"""The digest's and the nudges' buttons and the snooze modal: Snooze (security team, modal with reason
and end date), Notify owner (DMs the owner the finding and its fix), Acknowledge, Disable access
(security team, confirm dialog); on a nudge, Fixed and Not mine."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import digest as digests
from bot.digest import Digest, DigestError
from bot.findings import Finding
from bot.identity import DisableResult, OffboardingError, disable_access, factory_for_account
from bot.services import Services
from handlers.background import ack_then, retry_hint, slow_work
from handlers.blocks import Message, context, escape, mention, section, truncate
from handlers.commands import CommandIO
from handlers.digest.delivery import digest_channel, owners_for
from handlers.digest.views import _principal, finding_item, owner_dm, snooze_modal
from handlers.identity import DirectoryError
from handlers.ids import ActionId, BlockId, CallbackId
from handlers.models import BlockAction, ViewSubmission

log = logging.getLogger(__name__)


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
    the clicker. Returns bot.identity's DisableResult, or None when it failed (already told)."""
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


def acknowledge_finding(services: Services, body: dict, client: WebClient) -> None:
    """Acknowledge: recorded once; the thread says who, a second click is told who did it first."""
    store = services.store
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


def notify_owner(services: Services, body: dict, client: WebClient) -> None:
    """Notify owner: DM the finding's owner what is wrong and how to fix it."""
    store = services.store
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


def open_snooze_modal(services: Services, body: dict, client: WebClient) -> None:
    """Snooze: the security team gets the modal asking why and until when."""
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


def submit_snooze(services: Services, ack: Ack, body: dict, client: WebClient) -> None:
    """The snooze modal's submit: checked and acked at once, the snooze noted in the digest's thread."""
    store = services.store
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


def disable_access_clicked(services: Services, body: dict, client: WebClient) -> None:
    """Disable access (confirmed): the security team cuts an IAM user's keys and password."""
    store = services.store
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


def register(app: App, services: Services) -> None:
    """Binds the digest's and the nudges' buttons and the snooze modal to the functions above."""

    @app.action(ActionId.DIGEST_ACKNOWLEDGE.value)
    @ack_then(services)
    def on_acknowledge(body: dict, client: WebClient) -> None:
        acknowledge_finding(services, body, client)

    @app.action(ActionId.DIGEST_NOTIFY_OWNER.value)
    @ack_then(services)
    def on_notify_owner(body: dict, client: WebClient) -> None:
        notify_owner(services, body, client)

    @app.action(ActionId.DIGEST_SNOOZE.value)
    @ack_then(services)
    def on_snooze(body: dict, client: WebClient) -> None:
        open_snooze_modal(services, body, client)

    @app.view(CallbackId.DIGEST_SNOOZE_MODAL.value)
    def on_snooze_submit(ack: Ack, body: dict, client: WebClient) -> None:
        submit_snooze(services, ack, body, client)

    @app.action(ActionId.DIGEST_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, client: WebClient) -> None:
        disable_access_clicked(services, body, client)

    @app.action(ActionId.NUDGE_FIXED.value)
    @ack_then(services)
    def on_fixed(body: dict, client: WebClient) -> None:
        _answer_nudge(services, client, body, kind="fixed")

    @app.action(ActionId.NUDGE_NOT_MINE.value)
    @ack_then(services)
    def on_not_mine(body: dict, client: WebClient) -> None:
        _answer_nudge(services, client, body, kind="not_mine")
