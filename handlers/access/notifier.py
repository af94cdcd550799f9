"""The Slack side of access: posting, re-rendering and delivering, for listeners, jobs and restarts alike."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from bot import access
from bot.access import AccessRequest, IssuedCredentials, intents, outbox
from bot.access.federation import FederationError, signin_url
from bot.access.notifier import AlertFailed
from bot.services import Services
from handlers.access.views import credentials_message, request_message, when
from handlers.blocks import (
    Message,
    actions,
    button,
    code,
    escape,
    mention,
    section,
)
from handlers.commands import UserError
from handlers.identity import DirectoryError, member_is_active, usergroup_members
from handlers.ids import ActionId

log = logging.getLogger(__name__)


def active_port(client: WebClient, services: Services) -> Callable[[str], bool]:
    """The access intents' "is this member still active?" port: Slack's users.info (cached a
    minute) and no open offboarding; fails closed (``handlers.identity.member_is_active``)."""
    return lambda user_id: member_is_active(client, services, user_id)


def members_resolver(client: WebClient, services: Services) -> Callable[[str], frozenset[str]]:
    """User-group members for authorization: Slack errors raise DirectoryError (never a guess)."""
    return lambda handle: usergroup_members(client, services, handle, strict=True)


def approver_availability(
    client: WebClient, services: Services, role_name: str, requester: str
) -> tuple[set[str] | None, list[str]]:
    """(members who could approve now, or None when a group could not be resolved; configured
    approvers who have left Slack). The requester never counts."""
    role = services.config.role(role_name)
    possible: set[str] | None = set()
    departed: list[str] = []
    for entry in role.approvers if role else []:
        if entry[:1] in "UW":
            if entry == requester:
                continue
            try:
                gone = bool(client.users_info(user=entry)["user"].get("deleted"))
            except SlackApiError as exc:
                gone = (exc.response.get("error") if exc.response else "") == "user_not_found"
            if gone:
                departed.append(entry)
            elif possible is not None:
                possible.add(entry)
        else:
            try:
                members = usergroup_members(client, services, entry, strict=True)
            except DirectoryError:
                possible = None  # unknown: the decision happens at the click
                continue
            if possible is not None:
                possible |= members - {requester}
    return possible, departed


def tell(client: WebClient, user: str, channel: str | None, text: str) -> None:
    """A short private answer to whoever clicked (ephemeral where they are, else a DM)."""
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", user, exc.response.get("error") if exc.response else exc)


def dm(client: WebClient, user: str, message: Message) -> None:
    """A durable note to a member (never credentials)."""
    try:
        client.chat_postMessage(channel=user, **message.as_kwargs())
    except SlackApiError as exc:
        log.warning("could not DM %s: %s", user, exc.response.get("error") if exc.response else exc)


# -- Slack side effects ----------------------------------------------------------------------------


def post_request(services: Services, client: WebClient, request: AccessRequest) -> None:
    """Post the durable request message to the approvals channel and remember where it is."""
    channel = services.config.slack.approvals_channel
    if not channel:
        raise UserError("No approvals channel is configured (`[slack] approvals_channel`); ask an admin.")
    try:
        result = client.chat_postMessage(channel=channel, **request_message(services, request).as_kwargs())
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        # Nobody could ever see it: withdraw it rather than leave an invisible pending request.
        access.withdraw(services, request.id, f"could not post to the approvals channel ({error})")
        raise UserError(
            f"I could not post your request to the approvals channel ({escape(error)}); nothing was requested. "
            "Ask an admin to invite me there."
        ) from None
    access.set_message(services, request.id, result["channel"], result["ts"])


def slack_error(exc: SlackApiError) -> str:
    return (exc.response.get("error") if exc.response is not None else None) or "unknown_error"


def describe_post_failure(error: str, channel: str) -> str:
    """Why Slack refused, in words a person can act on."""
    reasons = {
        "not_in_channel": f"the bot is not in channel {channel} (invite it there)",
        "channel_not_found": f"channel {channel} does not exist or the bot cannot see it",
        "is_archived": f"channel {channel} is archived",
        "ratelimited": "Slack is rate-limiting the bot",
    }
    return reasons.get(error, f"Slack answered {error} (after retrying)")


def with_server_retries(client: WebClient) -> WebClient:
    """The same client, also retrying Slack's 5xx answers (slack_sdk's ServerErrorRetryHandler):
    a break-glass alert or a delivery should survive a blip, not just a rate limit."""
    if any(isinstance(h, ServerErrorRetryHandler) for h in client.retry_handlers):
        return client
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=[*client.retry_handlers, ServerErrorRetryHandler(max_retry_count=2)],
    )


def refresh(services: Services, client: WebClient, request_id: str, *, strict: bool = False) -> None:
    """Re-render the request's message from stored state. When Slack refuses, the update is kept in
    the outbox and the sweep renders it again (from the state then) until Slack accepts."""
    request = access.get_request(services, request_id)
    if request is None or not request.channel or not request.message_ts:
        return
    try:
        client.chat_update(
            channel=request.channel, ts=request.message_ts, **request_message(services, request).as_kwargs()
        )
    except SlackApiError as exc:
        if strict:
            raise
        log.warning("could not update the message of %s: %s", request_id, slack_error(exc))
        if not outbox.open_items(services, request_id, "refresh"):
            with services.store.transaction() as db:
                outbox.enqueue(db, "refresh", request_id, now=services.clock.now())
    else:
        outbox.complete(services, request_id, "refresh")


def deliver(
    services: Services,
    client: WebClient,
    request: AccessRequest,
    creds: IssuedCredentials,
    channel: str | None = None,
) -> bool:
    """Credentials to the requester only: ephemeral where they are, or a DM if configured.

    Returns whether Slack took them. On failure the request's ``deliver`` outbox item is made due, so
    the sweep tells the requester (without secrets) that access is granted, with Get credentials.
    """
    console_url, problem = None, None
    try:
        console_url = signin_url(services.config.access.federation_url, creds)
    except FederationError as exc:
        problem = str(exc)
    message = credentials_message(request, creds, console_url, problem)
    try:
        if services.config.access.deliver_credentials == "dm":
            client.chat_postMessage(channel=request.requester, **message.as_kwargs())
        else:
            where = channel or request.origin_channel or request.requester
            try:
                client.chat_postEphemeral(channel=where, user=request.requester, **message.as_kwargs())
            except SlackApiError as exc:
                if (exc.response.status_code if exc.response is not None else 200) >= 500:
                    raise
                # Not in that channel any more: the app's DM always works for an ephemeral message.
                client.chat_postEphemeral(
                    channel=request.requester, user=request.requester, **message.as_kwargs()
                )
    except SlackApiError as exc:
        log.warning("could not deliver the credentials of %s: %s", request.id, slack_error(exc))
        now = services.clock.now()
        with services.store.transaction() as db:
            if outbox.open_items(services, request.id, "deliver"):
                db.execute(
                    "UPDATE access_outbox SET due_at = ? WHERE request_id = ? AND kind = 'deliver' AND done_at IS NULL",
                    [access.iso(now), request.id],
                )
            else:
                outbox.enqueue(db, "deliver", request.id, now=now)
        return False
    outbox.complete(services, request.id, "deliver")
    return True


def granted_notice(request: AccessRequest, *, delivered: bool) -> Message:
    """The requester's durable note that access is granted (never credentials)."""
    how = (
        "Your credentials were shown to you privately."
        if delivered
        else "I could not show you the credentials; click *Get credentials* for a fresh session."
    )
    label = "Get credentials again" if delivered else "Get credentials"
    return Message(
        text=f"Access to {request.role} granted until {request.window_end:%H:%M} UTC.",
        blocks=[
            section(
                f":white_check_mark: Access to {code(request.role)} granted "
                f"(approved by {', '.join(mention(a) for a in request.approvers) or 'break glass'}). "
                f"It ends {when(request.window_end)}. {how}"
            ),
            actions(
                button(label, ActionId.ACCESS_REISSUE, request.id),
                button("I'm done", ActionId.ACCESS_DONE, request.id),
            ),
        ],
    )


class SlackNotifier:
    """The access domain's Notifier on Slack (see bot/access/notifier.py)."""

    def __init__(self, services: Services, client: WebClient):
        self.services = services
        self.client = with_server_retries(client)

    def alert_break_glass(self, request: AccessRequest) -> None:
        slack = self.services.config.slack
        channel = slack.security_channel or slack.approvals_channel
        if not channel:
            raise AlertFailed("no security channel is configured ([slack] security_channel)")
        try:
            result = self.client.chat_postMessage(
                channel=channel, **request_message(self.services, request).as_kwargs()
            )
        except SlackApiError as exc:
            raise AlertFailed(describe_post_failure(slack_error(exc), channel)) from None
        access.set_message(self.services, request.id, result["channel"], result["ts"])
        try:
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=result["ts"],
                text=(
                    f":rotating_light: {mention(request.requester)} broke glass for {code(request.role)}. "
                    "Someone on the security team must review it."
                ),
            )
        except SlackApiError as exc:  # the alert itself is posted; the thread note is a nicety
            log.warning("could not add the break-glass thread note for %s: %s", request.id, slack_error(exc))

    def revocation_not_written(self, request: AccessRequest, by: str, problem: str, live_until: str) -> None:
        """Tell security that a Revoke left live sessions working (the deny could not be written).
        Never raises: the revoker has already been told; a refused post is logged."""
        slack = self.services.config.slack
        channel = slack.security_channel or slack.approvals_channel
        if not channel:
            log.error("revocation of %s not written and no security channel: %s", request.id, problem)
            return
        text = (
            f":rotating_light: {mention(by)} revoked {mention(request.requester)}'s access to "
            f"{code(request.role)} ({code(request.id)}) but the deny could not be written "
            f"({escape(problem)}): their live sessions keep working until {live_until} at most. "
            "The bot keeps retrying."
        )
        try:
            self.client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            log.error("could not tell security that %s was not denied: %s", request.id, slack_error(exc))

    def request_changed(self, request_id: str) -> None:
        refresh_with_extensions(self.services, self.client, access.resolve_parent(self.services, request_id))


def flush_outbox(services: Services, client: WebClient) -> None:
    """The sweep's part: what Slack refused earlier, sent again from the state now."""
    client = with_server_retries(client)
    for item in outbox.claim_due(services):
        request = access.get_request(services, item.request_id)
        try:
            if request is None:
                pass
            elif item.kind == "refresh":
                refresh(services, client, request.id, strict=True)
            elif item.kind == "deliver":
                # A crash after the grant left the request's messages as they were (Approve / Deny):
                # they reach their final state with the notice, whatever state the request is in now.
                refresh(services, client, request.id, strict=True)
                if request.state == access.State.GRANTED:
                    client.chat_postMessage(
                        channel=request.requester, **granted_notice(request, delivered=False).as_kwargs()
                    )
                    access.audit_request(
                        services, request, "delivery_recovered", actor="iamwarden", at=services.clock.now()
                    )
            outbox.finish(services, item.id)
        except SlackApiError as exc:
            outbox.failed(services, item.id, slack_error(exc))
            log.warning(
                "outbox %s %s for %s failed again: %s", item.id, item.kind, item.request_id, slack_error(exc)
            )


def announce_grant(
    services: Services, client: WebClient, request: AccessRequest, creds: IssuedCredentials | None
) -> None:
    """Tell the requester: the credentials (privately) and a durable note, or why the grant failed."""
    if creds is None:
        dm(
            client,
            request.requester,
            Message(
                text=f"Your request {request.id} for {request.role} was approved, but the grant failed.",
                blocks=[
                    section(
                        f"Your request {code(request.id)} for {code(request.role)} was approved, but the grant "
                        f"failed: {escape(request.error or 'unknown error')}"
                    )
                ],
            ),
        )
        return
    if deliver(services, client, request, creds):
        dm(client, request.requester, granted_notice(request, delivered=True))


def announce_outcome(services: Services, client: WebClient, outcome: intents.Outcome) -> None:
    """The requester's side of a completed approval (grant, failure, extension)."""
    request = outcome.request
    if request is None:
        return
    if outcome.status in ("granted", "grant_failed"):
        announce_grant(services, client, request, outcome.credentials)
    elif outcome.status == "extension_too_late":
        dm(client, request.requester, Message(text=escape(outcome.message)))
    elif outcome.status in ("extended", "extended_without_credentials") and outcome.parent is not None:
        parent = outcome.parent
        if outcome.credentials is not None:
            deliver(services, client, parent, outcome.credentials)
        dm(
            client,
            parent.requester,
            Message(
                text=f"Access to {parent.role} extended until {parent.window_end:%H:%M} UTC.",
                blocks=[
                    section(
                        f":white_check_mark: Access to {code(parent.role)} extended; it now ends "
                        f"{when(parent.window_end)}."
                    )
                ],
            ),
        )


def finish_approval(services: Services, client: WebClient, request: AccessRequest) -> None:
    """Grant (or apply the extension) for an approval completed elsewhere (the sweep), and tell."""
    outcome = intents.finish_approval(services, request, notifier=SlackNotifier(services, client))
    announce_outcome(services, client, outcome)


def refresh_with_extensions(services: Services, client: WebClient, request_id: str) -> None:
    refresh(services, client, request_id)
    for extension_id in access.extension_ids(services, request_id):
        refresh(services, client, extension_id)
