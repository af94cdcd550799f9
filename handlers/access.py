"""Slack surface for just-in-time access: ``/iam request``, ``/iam breakglass``, ``/iam grants``,
``/iam review``, the request message's buttons, the modals, the jobs and the App Home section.

Buttons carry only the request id; who may click what is decided here from stored state and the
config (``bot.access``), never from the payload. Credentials go to the requester alone (ephemeral,
or a DM when ``[access] deliver_credentials = "dm"``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import access
from bot.access import AccessError, AccessRequest, Approval, IssuedCredentials, Kind, State
from bot.federation import FederationError, signin_url
from bot.jobs import job
from bot.services import Services
from handlers.blocks import (
    Message,
    actions,
    button,
    code,
    confirm_dialog,
    context,
    divider,
    escape,
    fields_section,
    header,
    mention,
    section,
)
from handlers.commands import CommandIO, UserError, subcommand
from handlers.directory import DirectoryError, member_is_active, usergroup_members
from handlers.home import HOME_SECTIONS
from handlers.ids import ActionId, BlockId, CallbackId
from handlers.models import BlockAction, SlashCommand, ViewSubmission

log = logging.getLogger(__name__)

STATE_LABEL = {
    State.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    State.APPROVED: ":key: Approved, granting…",
    State.GRANTED: ":white_check_mark: Granted",
    State.DENIED: ":no_entry: Denied",
    State.EXPIRED: ":zzz: Expired",
    State.ENDED: ":checkered_flag: Ended",
    State.REVOKED: ":lock: Revoked",
    State.FAILED: ":warning: Grant failed",
}


# -- small helpers ------------------------------------------------------------------------------


# Said when Slack does not confirm the member is active (handlers.directory.member_is_active).
INACTIVE_MEMBER = (
    "Slack does not confirm that everyone involved is still an active member, so nothing was issued "
    "or counted. If that is wrong, try again in a minute or ask the security team."
)


def when(moment: datetime | None) -> str:
    """A time every reader sees in their own zone, with a UTC fallback for clients that cannot."""
    if moment is None:
        return "—"
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def members_resolver(client: WebClient, services: Services) -> Callable[[str], frozenset[str]]:
    """User-group members for authorization: Slack errors raise DirectoryError (never a guess)."""
    return lambda handle: usergroup_members(client, services, handle, strict=True)


def approvers_text(services: Services, request: AccessRequest) -> str:
    role = services.config.role(request.role)
    entries = role.approvers if role else []
    shown = [mention(e) if e[:1] in "UW" else escape(e) for e in entries]
    return ", ".join(shown) or "nobody is configured"


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


# -- Block Kit builders (pure) ---------------------------------------------------------------------


def request_message(services: Services, request: AccessRequest) -> Message:
    """The durable request message in the approvals channel, as it should look in this state."""
    role = services.config.role(request.role)
    required = role.approvals_required if role else 1
    title = {
        Kind.REQUEST: f"Access request: {request.role}",
        Kind.EXTENSION: f"Extension request: {request.role}",
        Kind.BREAK_GLASS: f"BREAK GLASS: {request.role}",
    }[Kind(request.kind)]
    pairs = [
        ("Requester", mention(request.requester)),
        ("Role", code(request.role)),
        ("Account", code(request.account_id)),
        ("Duration", access.format_duration(request.duration)),
        ("Status", STATE_LABEL.get(State(request.state), escape(request.state))),
        ("Request", code(request.id)),
    ]
    if request.ticket:
        pairs.append(("Ticket", escape(request.ticket)))
    if request.parent_id:
        pairs.append(("Extends", code(request.parent_id)))
    blocks = [
        header(title),
        fields_section(pairs),
        section(f"*Reason*\n{escape(request.reason)}"),
    ]
    status = _status_line(services, request, required)
    blocks.append(section(status))
    if request.is_break_glass:
        review = (
            f"Reviewed by {mention(request.reviewed_by or '')} at {when(request.reviewed_at)}."
            if request.reviewed_at
            else "Review required: the security team must review this use."
        )
        blocks.append(context(review))
    else:
        blocks.append(context(f"Approvers: {approvers_text(services, request)} · {required} needed"))
    buttons = _buttons_for(request)
    if buttons:
        blocks.append(actions(*buttons))
    text = f"{title} for {request.requester}: {request.state}"
    return Message(text=text, blocks=blocks, ephemeral=False)


def _status_line(services: Services, request: AccessRequest, required: int) -> str:
    approved_by = ", ".join(mention(a) for a in request.approvers)
    state = request.state
    if state == State.PENDING:
        got = len(request.approvers)
        counted = f" ({got} of {required} so far: {approved_by})" if got else ""
        return (
            f"Waiting for {required} approval(s){counted} until {when(request.pending_until)}. "
            f"Approved now, access would end at {when(services.clock.now() + request.duration)}."
        )
    if state in (State.APPROVED, State.GRANTED):
        who = approved_by or ("break glass, no peer" if request.is_break_glass else "—")
        return f"Approved by {who}. Access ends {when(request.window_end)}."
    if state == State.DENIED:
        why = f": {escape(request.deny_reason)}" if request.deny_reason else "."
        return f"Denied by {mention(request.decided_by or '')}{why}"
    if state == State.EXPIRED:
        return f"Expired at {when(request.ended_at)}: nobody decided in time."
    if state == State.ENDED:
        return f"Approved by {approved_by or 'break glass'}. Access ended at {when(request.window_end)}."
    if state == State.REVOKED:
        by = mention(request.ended_by or "")
        verb = "ended early by the requester" if request.ended_by == request.requester else f"revoked by {by}"
        return f"Access {verb} at {when(request.ended_at)}."
    if state == State.FAILED:
        return f"Approved, but the grant failed: {escape(request.error or 'unknown error')}"
    return escape(state)


def _buttons_for(request: AccessRequest) -> list[dict]:
    rid = request.id
    buttons: list[dict] = []
    if request.state == State.PENDING:
        buttons += [
            button("Approve", ActionId.ACCESS_APPROVE, rid, style="primary"),
            button("Deny", ActionId.ACCESS_DENY, rid, style="danger"),
        ]
    elif request.state == State.GRANTED and request.kind != Kind.EXTENSION:
        buttons += [
            button("Get credentials again", ActionId.ACCESS_REISSUE, rid),
            button("I'm done", ActionId.ACCESS_DONE, rid),
        ]
        if not request.is_break_glass:
            buttons.append(button("Extend", ActionId.ACCESS_EXTEND, rid))
        buttons.append(
            button(
                "Revoke",
                ActionId.ACCESS_REVOKE,
                rid,
                style="danger",
                confirm=confirm_dialog("Revoke access?", "Live sessions stop now.", confirm="Revoke"),
            )
        )
    if request.is_break_glass and request.needs_review:
        buttons.append(button("Review", ActionId.ACCESS_REVIEW, rid, style="primary"))
    return buttons


def credentials_message(
    request: AccessRequest, creds: IssuedCredentials, console_url: str | None, console_problem: str | None
) -> Message:
    """For the requester alone. States the real expiry: the session's or the window's, the earlier."""
    ends = creds.effective_end
    blocks = [
        header(f"Credentials for {request.role}"),
        section(
            f"Role {code(creds.role_arn)} in account {code(creds.account_id)}. "
            + (
                f"These work until {when(ends)}, the end of the approved window."
                if creds.expiration >= creds.window_end
                else f"These work until {when(ends)}; the approved window ends {when(creds.window_end)}: "
                "click *Get credentials again* then for a fresh session."
            )
        ),
        section("*Shell*\n```" + creds.export_lines() + "```"),
        section("*credential_process*\n```" + creds.credential_process_json() + "```"),
    ]
    elements = []
    if console_url and len(console_url) <= 3000:
        elements.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open the AWS console"},
                "action_id": ActionId.ACCESS_CONSOLE.value,
                "url": console_url,
            }
        )
    elements.append(button("Get credentials again", ActionId.ACCESS_REISSUE, request.id))
    blocks.append(actions(*elements))
    notes = [f"Session {code(creds.session_name)} · key {code(creds.access_key_id)} · only you can see this."]
    if console_problem:
        notes.append(f"Console link unavailable: {escape(console_problem)}")
    blocks.append(context(*notes))
    return Message(text=f"Credentials for {request.role} until {ends:%H:%M} UTC", blocks=blocks)


def grants_message(services: Services, requests: list[AccessRequest]) -> Message:
    if not requests:
        return Message(
            text="You have no access requests.",
            blocks=[section("You have no access requests. Ask with `/iam request`.")],
        )
    blocks: list[dict] = [header("Your access requests")]
    for request in requests[:12]:
        line = f"{code(request.id)} {code(request.role)} · {STATE_LABEL.get(State(request.state), request.state)}"
        if request.state == State.GRANTED:
            line += f" · ends {when(request.window_end)}"
        elif request.state == State.PENDING:
            line += f" · waiting until {when(request.pending_until)}"
        blocks.append(section(line + f"\n{escape(access.truncate_reason(request.reason))}"))
        if request.state == State.GRANTED and request.kind != Kind.EXTENSION:
            blocks.append(
                actions(
                    button("Get credentials again", ActionId.ACCESS_REISSUE, request.id),
                    button("I'm done", ActionId.ACCESS_DONE, request.id),
                )
            )
    return Message(text=f"You have {len(requests)} access request(s).", blocks=blocks)


def request_modal(services: Services, roles: list, origin_channel: str) -> dict:
    role_options = [
        {
            "text": {"type": "plain_text", "text": r.name[:75]},
            "value": r.name[:150],
            **({"description": {"type": "plain_text", "text": r.description[:75]}} if r.description else {}),
        }
        for r in roles[:100]
    ]
    duration_options = [
        {
            "text": {"type": "plain_text", "text": access.format_duration(d)},
            "value": access.format_duration(d),
        }
        for d in access.duration_choices(services, roles)
    ]
    ticket_roles = [r.name for r in roles if r.require_ticket]
    blocks = [
        {
            "type": "input",
            "block_id": BlockId.ACCESS_ROLE.value,
            "label": {"type": "plain_text", "text": "Role"},
            "element": {
                "type": "static_select",
                "action_id": BlockId.ACCESS_ROLE.value,
                "options": role_options,
                "placeholder": {"type": "plain_text", "text": "Choose a role"},
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_DURATION.value,
            "label": {"type": "plain_text", "text": "For how long"},
            "hint": {
                "type": "plain_text",
                "text": "Each role has its own maximum; I will tell you if it is lower.",
            },
            "element": {
                "type": "static_select",
                "action_id": BlockId.ACCESS_DURATION.value,
                "options": duration_options,
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_REASON.value,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {
                "type": "plain_text_input",
                "action_id": BlockId.ACCESS_REASON.value,
                "multiline": True,
                "max_length": 1000,
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_TICKET.value,
            "optional": True,
            "label": {"type": "plain_text", "text": "Ticket"},
            "hint": {
                "type": "plain_text",
                "text": ("Required for: " + ", ".join(ticket_roles))[:150] if ticket_roles else "Optional",
            },
            "element": {
                "type": "plain_text_input",
                "action_id": BlockId.ACCESS_TICKET.value,
                "max_length": 200,
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": CallbackId.ACCESS_REQUEST_MODAL.value,
        "private_metadata": json.dumps({"channel": origin_channel}),
        "title": {"type": "plain_text", "text": "Request access"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def deny_modal(request: AccessRequest) -> dict:
    return {
        "type": "modal",
        "callback_id": CallbackId.ACCESS_DENY_MODAL.value,
        "private_metadata": request.id,
        "title": {"type": "plain_text", "text": "Deny access"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Deny {mention(request.requester)}'s request for {code(request.role)}?"),
            {
                "type": "input",
                "block_id": BlockId.ACCESS_DENY_REASON.value,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (shown to the requester)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": BlockId.ACCESS_DENY_REASON.value,
                    "max_length": 500,
                },
            },
        ],
    }


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


def refresh(services: Services, client: WebClient, request_id: str) -> None:
    """Re-render the request's message from stored state."""
    request = access.get_request(services, request_id)
    if request is None or not request.channel or not request.message_ts:
        return
    try:
        client.chat_update(
            channel=request.channel, ts=request.message_ts, **request_message(services, request).as_kwargs()
        )
    except SlackApiError as exc:
        log.warning("could not update the message of %s: %s", request_id, exc.response.get("error"))


def deliver(
    services: Services,
    client: WebClient,
    request: AccessRequest,
    creds: IssuedCredentials,
    channel: str | None = None,
) -> None:
    """Credentials to the requester only: ephemeral where they are, or a DM if configured."""
    console_url, problem = None, None
    try:
        console_url = signin_url(services.config.access.federation_url, creds)
    except FederationError as exc:
        problem = str(exc)
    message = credentials_message(request, creds, console_url, problem)
    if services.config.access.deliver_credentials == "dm":
        client.chat_postMessage(channel=request.requester, **message.as_kwargs())
        return
    where = channel or request.origin_channel or request.requester
    try:
        client.chat_postEphemeral(channel=where, user=request.requester, **message.as_kwargs())
    except SlackApiError:
        # Not in that channel any more: the app's DM always works for an ephemeral message.
        client.chat_postEphemeral(channel=request.requester, user=request.requester, **message.as_kwargs())


def announce_grant(
    services: Services, client: WebClient, request: AccessRequest, creds: IssuedCredentials | None
) -> None:
    refresh(services, client, request.id)
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
    deliver(services, client, request, creds)
    dm(
        client,
        request.requester,
        Message(
            text=f"Access to {request.role} granted until {request.window_end:%H:%M} UTC.",
            blocks=[
                section(
                    f":white_check_mark: Access to {code(request.role)} granted "
                    f"(approved by {', '.join(mention(a) for a in request.approvers) or 'break glass'}). "
                    f"It ends {when(request.window_end)}. Your credentials were shown to you privately."
                ),
                actions(
                    button("Get credentials again", ActionId.ACCESS_REISSUE, request.id),
                    button("I'm done", ActionId.ACCESS_DONE, request.id),
                ),
            ],
        ),
    )


def finish_approval(services: Services, client: WebClient, request: AccessRequest) -> None:
    """The one caller that saw APPROVED grants (or applies the extension) and tells everyone."""
    if request.kind == Kind.EXTENSION:
        extension, parent, creds = access.apply_extension(services, request.id)
        refresh(services, client, extension.id)
        if parent is None:
            dm(
                client,
                request.requester,
                Message(text=f"Extension {extension.id} came too late: the access had ended."),
            )
            return
        refresh(services, client, parent.id)
        if creds is not None:
            deliver(services, client, parent, creds)
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
        return
    request, creds = access.grant(services, request.id)
    announce_grant(services, client, request, creds)


# -- slash commands ------------------------------------------------------------------------------------


def _parse_shorthand(rest: str) -> tuple[str, str, str, str | None]:
    words = rest.split()
    if len(words) < 3:
        raise UserError("Usage: `/iam request <role> <duration> <reason…>` (or `/iam request` for a form).")
    role, duration = words[0], words[1]
    reason_words, ticket = [], None
    for word in words[2:]:
        if word.lower().startswith("ticket=") and ticket is None:
            ticket = word.split("=", 1)[1]
        else:
            reason_words.append(word)
    return role, duration, " ".join(reason_words), ticket


def _user_error(exc: Exception) -> UserError:
    return UserError(escape(str(exc)))


@subcommand(
    "request",
    usage="request [ROLE DURATION REASON…]",
    summary="Ask for a privileged role for a while; a peer approves it in the approvals channel.",
)
def request_command(cmd: SlashCommand, io: CommandIO) -> Message | None:
    services, client = io.services, io.client
    members_of = members_resolver(client, services)
    if not services.config.slack.approvals_channel:
        raise UserError("No approvals channel is configured (`[slack] approvals_channel`); ask an admin.")
    if not cmd.rest.strip():
        try:
            roles = access.requestable_roles(services, cmd.user_id, members_of)
        except DirectoryError as exc:
            raise _user_error(exc) from None
        if not roles:
            raise UserError("There are no roles you may request. Ask the security team.")
        client.views_open(trigger_id=cmd.trigger_id, view=request_modal(services, roles, cmd.channel_id))
        return None
    role, duration, reason, ticket = _parse_shorthand(cmd.rest)
    departed = _check_someone_can_approve(client, services, role, cmd.user_id)
    try:
        request = access.create_request(
            services,
            requester=cmd.user_id,
            role_name=role,
            duration=duration,
            reason=reason,
            ticket=ticket,
            origin_channel=cmd.channel_id,
            members_of=members_of,
        )
    except (AccessError, DirectoryError) as exc:
        raise _user_error(exc) from None
    post_request(services, client, request)
    return _requested_message(services, request, departed)


def _check_someone_can_approve(
    client: WebClient, services: Services, role_name: str, requester: str
) -> list[str]:
    """Refuse up front when nobody could approve (everyone configured left Slack); returns who left."""
    if services.config.role(role_name) is None:
        return []
    possible, departed = approver_availability(client, services, role_name, requester)
    required = services.config.role(role_name).approvals_required
    if possible is not None and len(possible) < required:
        gone = f" ({', '.join(mention(d) for d in departed)} left Slack)" if departed else ""
        who = "Nobody" if not possible else f"Only {len(possible)} of the {required} approvers needed"
        raise UserError(
            f"{who} can approve {code(role_name)} for you right now{gone}. "
            "Ask the security team to update the role's approvers."
        )
    return departed


def _requested_message(
    services: Services, request: AccessRequest, departed: list[str] | None = None
) -> Message:
    channel = services.config.slack.approvals_channel or ""
    text = (
        f"Request {code(request.id)} for {code(request.role)} ({access.format_duration(request.duration)}) "
        f"is waiting for approval in <#{channel}>. Approvers: {approvers_text(services, request)}. "
        f"It expires {when(request.pending_until)} if nobody decides."
    )
    if departed:
        text += f" Note: {', '.join(mention(d) for d in departed)} left Slack and cannot approve."
    return Message(
        text=f"Request {request.id} for {request.role} is waiting for approval.", blocks=[section(text)]
    )


@subcommand(
    "breakglass",
    usage="breakglass ROLE REASON…",
    summary="Emergency access without a peer (roles that allow it); alerts security and needs a review.",
    slow=True,
    working_text="Breaking glass…",
)
def breakglass_command(cmd: SlashCommand, io: CommandIO) -> Message | None:
    services, client = io.services, io.client
    words = cmd.rest.split(None, 1)
    if len(words) < 2:
        raise UserError("Usage: `/iam breakglass <role> <reason…>`: the reason is required.")
    if not member_is_active(client, services, cmd.user_id):  # offboarding: never credentials for a leaver
        raise UserError(INACTIVE_MEMBER)
    try:
        request, creds = access.break_glass(
            services,
            requester=cmd.user_id,
            role_name=words[0],
            reason=words[1],
            origin_channel=cmd.channel_id,
            members_of=members_resolver(client, services),
        )
    except (AccessError, DirectoryError) as exc:
        raise _user_error(exc) from None
    alert_channel = services.config.slack.security_channel or services.config.slack.approvals_channel
    if alert_channel:
        result = client.chat_postMessage(
            channel=alert_channel, **request_message(services, request).as_kwargs()
        )
        access.set_message(services, request.id, result["channel"], result["ts"])
        client.chat_postMessage(
            channel=alert_channel,
            thread_ts=result["ts"],
            text=(
                f":rotating_light: {mention(request.requester)} broke glass for {code(request.role)}. "
                "Someone on the security team must review it."
            ),
        )
    if creds is None:
        return Message(text=f"Break glass was recorded but the grant failed: {escape(request.error or '')}")
    deliver(services, client, request, creds, channel=cmd.channel_id)
    return Message(
        text=f"Break glass granted for {request.role} until {request.window_end:%H:%M} UTC. Security was alerted."
    )


@subcommand("grants", summary="Your access requests and grants.")
def grants_command(cmd: SlashCommand, io: CommandIO) -> Message:
    return grants_message(io.services, access.requests_for(io.services, cmd.user_id))


@subcommand("review", summary="Break-glass uses waiting for a review.", team_only=True)
def review_command(cmd: SlashCommand, io: CommandIO) -> Message:
    pending = access.awaiting_review(io.services)
    if not pending:
        return Message(text="No break-glass use is waiting for review.")
    blocks: list[dict] = [header("Break-glass uses to review")]
    for request in pending[:20]:
        blocks.append(
            section(
                f"{code(request.id)} {mention(request.requester)} · {code(request.role)} · {when(request.created_at)}\n"
                f"{escape(access.truncate_reason(request.reason))}",
                accessory=button("Review", ActionId.ACCESS_REVIEW, request.id, style="primary"),
            )
        )
    return Message(text=f"{len(pending)} break-glass use(s) to review.", blocks=blocks)


# -- App Home ------------------------------------------------------------------------------------------


def home_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    requests = access.requests_for(services, user_id, limit=8)
    if not requests:
        return []
    blocks: list[dict] = [divider(), section("*Just-in-time access*")]
    for request in requests:
        line = f"{code(request.role)} · {STATE_LABEL.get(State(request.state), request.state)} · {code(request.id)}"
        if request.state == State.GRANTED:
            line += f" · ends {when(request.window_end)}"
            blocks.append(
                section(line, accessory=button("Get credentials again", ActionId.ACCESS_REISSUE, request.id))
            )
        else:
            blocks.append(section(line))
    return blocks


def home_approvals_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    """Pending requests this member may decide, with the same buttons as the channel message."""
    rows = services.store.execute(
        "SELECT id FROM access_requests WHERE state = 'pending' AND requester != ? ORDER BY created_at LIMIT 20",
        [user_id],
    ).fetchall()
    members_of = lambda handle: usergroup_members(client, services, handle)  # noqa: E731 - display only
    blocks: list[dict] = []
    for (request_id,) in rows:
        request = access.get_request(services, request_id)
        role = services.config.role(request.role) if request else None
        if request is None or role is None or user_id in request.approvers:
            continue
        if not access.is_listed(user_id, role.approvers, members_of):
            continue
        blocks.append(
            section(
                f"{mention(request.requester)} · {code(request.role)} · {access.format_duration(request.duration)} · "
                f"{code(request.id)}\n{escape(access.truncate_reason(request.reason))}"
            )
        )
        blocks.append(
            actions(
                button("Approve", ActionId.ACCESS_APPROVE, request.id, style="primary"),
                button("Deny", ActionId.ACCESS_DENY, request.id, style="danger"),
            )
        )
        if len(blocks) >= 16:
            break
    return [divider(), section("*Waiting for your approval*"), *blocks] if blocks else []


for _contribution in (home_section, home_approvals_section):
    if _contribution not in HOME_SECTIONS:
        HOME_SECTIONS.append(_contribution)


# -- jobs (registered with bot.jobs; tests call them directly with a moved clock) -----------------------


def run_pending_expiry(services: Services, client: WebClient) -> None:
    for request in access.expire_pending(services):
        refresh(services, client, request.id)
        dm(
            client,
            request.requester,
            Message(
                text=f"Your request {request.id} for {request.role} expired: nobody decided in time.",
                blocks=[
                    section(
                        f":zzz: Your request {code(request.id)} for {code(request.role)} expired: nobody decided "
                        "in time. Ask again with `/iam request` if you still need it."
                    )
                ],
            ),
        )


def refresh_with_extensions(services: Services, client: WebClient, request_id: str) -> None:
    refresh(services, client, request_id)
    for extension_id in access.extension_ids(services, request_id):
        refresh(services, client, extension_id)


def run_window_end(services: Services, client: WebClient) -> None:
    for request in access.end_windows(services):
        refresh_with_extensions(services, client, request.id)
        dm(
            client,
            request.requester,
            Message(
                text=f"Your access to {request.role} ended at {request.window_end:%H:%M} UTC.",
                blocks=[
                    section(
                        f":checkered_flag: Your access to {code(request.role)} ({code(request.id)}) ended "
                        f"{when(request.window_end)}."
                    )
                ],
            ),
        )


def run_review_reminders(services: Services, client: WebClient) -> None:
    channel = services.config.slack.security_channel
    if not channel:
        return
    for request in access.due_review_reminders(services):
        client.chat_postMessage(
            channel=channel,
            thread_ts=request.message_ts if request.channel == channel else None,
            **Message(
                text=f"Reminder: break-glass use {request.id} by {request.requester} still needs a review.",
                blocks=[
                    section(
                        f":rotating_light: Reminder: {mention(request.requester)}'s break-glass use of "
                        f"{code(request.role)} ({code(request.id)}, {when(request.created_at)}) still needs a review.",
                        accessory=button("Review", ActionId.ACCESS_REVIEW, request.id, style="primary"),
                    )
                ],
            ).as_kwargs(),
        )


def run_stuck_approvals(services: Services, client: WebClient) -> None:
    """Finish approvals whose grant never happened (the process stopped between the two)."""
    for request in access.claim_stuck_approvals(services):
        finish_approval(services, client, request)


@job("access-sweep", every_seconds=lambda services: 60)
def run_access_sweep(services: Services, client: WebClient) -> None:
    """Stuck approvals, pending expiry, window end, break-glass review reminders; catches up after downtime."""
    run_stuck_approvals(services, client)
    run_pending_expiry(services, client)
    run_window_end(services, client)
    run_review_reminders(services, client)


# -- interactions ------------------------------------------------------------------------------------


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners."""

    def io_for(client: WebClient) -> CommandIO:
        return CommandIO(services=services, client=client)

    def load(action: BlockAction, client: WebClient) -> AccessRequest | None:
        request = access.get_request(services, action.value) if action.value else None
        if request is None:
            tell(client, action.user.id, action.channel_id, "That access request no longer exists.")
        return request

    @app.action(ActionId.ACCESS_APPROVE.value)
    def on_approve(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        action = BlockAction.from_body(body)
        request = load(action, client)
        if request is None:
            return
        user = action.user.id
        if not all(member_is_active(client, services, m) for m in (user, request.requester)):  # offboarding
            return tell(client, user, action.channel_id, INACTIVE_MEMBER)
        try:
            access.check_approver(services, request, user, members_resolver(client, services))
            outcome, request = access.approve(services, request.id, user)
        except DirectoryError as exc:
            tell(
                client,
                user,
                action.channel_id,
                f"{escape(exc)}. Your approval was not counted; try again shortly.",
            )
            return
        except AccessError as exc:
            tell(client, user, action.channel_id, escape(exc))
            return
        if outcome == Approval.NOT_PENDING:
            tell(client, user, action.channel_id, f"Request {request.id} is already {request.state}.")
        elif outcome == Approval.ALREADY_COUNTED:
            tell(
                client,
                user,
                action.channel_id,
                "Your approval was already counted; each approver counts once.",
            )
        elif outcome == Approval.RECORDED:
            refresh(services, client, request.id)
            tell(client, user, action.channel_id, "Approval counted; more approvers are needed.")
        else:
            finish_approval(services, client, request)

    @app.action(ActionId.ACCESS_DENY.value)
    def on_deny(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        action = BlockAction.from_body(body)
        request = load(action, client)
        if request is None:
            return
        try:
            access.check_approver(services, request, action.user.id, members_resolver(client, services))
        except (AccessError, DirectoryError) as exc:
            tell(client, action.user.id, action.channel_id, escape(exc))
            return
        if request.state != State.PENDING:
            tell(
                client, action.user.id, action.channel_id, f"Request {request.id} is already {request.state}."
            )
            return
        client.views_open(trigger_id=action.trigger_id, view=deny_modal(request))

    @app.view(CallbackId.ACCESS_DENY_MODAL.value)
    def on_deny_submit(ack: Ack, body: dict, client: WebClient) -> None:
        submission = ViewSubmission.from_body(body)
        request = access.get_request(services, submission.private_metadata)
        user = submission.user.id
        if request is None:
            ack(
                response_action="errors",
                errors={BlockId.ACCESS_DENY_REASON.value: "That request no longer exists."},
            )
            return
        try:
            access.check_approver(services, request, user, members_resolver(client, services))
        except (AccessError, DirectoryError) as exc:
            ack(response_action="errors", errors={BlockId.ACCESS_DENY_REASON.value: str(exc)[:150]})
            return
        ack()
        denied = access.deny(services, request.id, user, submission.value(BlockId.ACCESS_DENY_REASON.value))
        if denied is None:
            tell(
                client,
                user,
                None,
                f"Request {request.id} was already {access.get_request(services, request.id).state}.",
            )
            return
        refresh(services, client, denied.id)
        why = f" Reason: {escape(denied.deny_reason)}" if denied.deny_reason else ""
        dm(
            client,
            denied.requester,
            Message(
                text=f"Your request {denied.id} for {denied.role} was denied.",
                blocks=[
                    section(
                        f":no_entry: Your request {code(denied.id)} for {code(denied.role)} was denied by "
                        f"{mention(user)}.{why}"
                    )
                ],
            ),
        )

    def end(action: BlockAction, client: WebClient, *, done: bool) -> None:
        request = load(action, client)
        if request is None:
            return
        user = action.user.id
        io = io_for(client)
        try:
            allowed = access.may_end(
                services, request, user, members_resolver(client, services), io.is_security_team
            )
        except DirectoryError as exc:
            tell(client, user, action.channel_id, escape(exc))
            return
        if not allowed:
            tell(
                client,
                user,
                action.channel_id,
                "Only the requester, an approver or the security team can end this access.",
            )
            return
        outcome = access.revoke(services, request.id, user, done=done)
        if outcome is None:
            tell(client, user, action.channel_id, f"Request {request.id} is {request.state}; nothing to end.")
            return
        request = outcome.request
        refresh_with_extensions(services, client, request.id)
        if outcome.policy_written:
            note = "Live sessions were cut off: the role now denies sessions issued to them before now."
        else:
            note = (
                f"I could not stop live sessions ({escape(outcome.problem or 'unknown error')}). "
                f"The credentials already issued stay valid until {when(outcome.credentials_expire_at)}."
            )
        tell(
            client,
            user,
            action.channel_id,
            f"Access {code(request.id)} to {code(request.role)} ended. {note}",
        )
        if user != request.requester:
            dm(
                client,
                request.requester,
                Message(
                    text=f"Your access to {request.role} was revoked.",
                    blocks=[
                        section(
                            f":lock: Your access to {code(request.role)} was revoked by {mention(user)}. {note}"
                        )
                    ],
                ),
            )

    @app.action(ActionId.ACCESS_REVOKE.value)
    def on_revoke(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        end(BlockAction.from_body(body), client, done=False)

    @app.action(ActionId.ACCESS_DONE.value)
    def on_done(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        end(BlockAction.from_body(body), client, done=True)

    @app.action(ActionId.ACCESS_REISSUE.value)
    def on_reissue(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        action = BlockAction.from_body(body)
        request = load(action, client)
        if request is None:
            return
        if not member_is_active(
            client, services, action.user.id
        ):  # offboarding: never credentials for a leaver
            return tell(client, action.user.id, action.channel_id, INACTIVE_MEMBER)
        try:
            creds = access.reissue(services, request.id, action.user.id)
        except AccessError as exc:
            tell(client, action.user.id, action.channel_id, escape(exc))
            return
        deliver(services, client, request, creds, channel=action.channel_id)

    @app.action(ActionId.ACCESS_EXTEND.value)
    def on_extend(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        action = BlockAction.from_body(body)
        request = load(action, client)
        if request is None:
            return
        try:
            extension = access.request_extension(services, request.id, action.user.id)
        except AccessError as exc:
            tell(client, action.user.id, action.channel_id, escape(exc))
            return
        try:
            post_request(services, client, extension)
        except UserError as exc:
            tell(client, action.user.id, action.channel_id, str(exc))
            return
        tell(
            client,
            action.user.id,
            action.channel_id,
            f"Asked for {access.format_duration(extension.duration)} more on {code(request.role)} "
            f"({code(extension.id)}); your current access continues meanwhile.",
        )

    @app.action(ActionId.ACCESS_REVIEW.value)
    def on_review(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        action = BlockAction.from_body(body)
        request = load(action, client)
        if request is None:
            return
        if not io_for(client).is_security_team(action.user.id):
            tell(client, action.user.id, action.channel_id, "Break-glass reviews are for the security team.")
            return
        try:
            reviewed = access.review(services, request.id, action.user.id)
        except AccessError as exc:
            tell(client, action.user.id, action.channel_id, escape(exc))
            return
        if reviewed is None:
            tell(client, action.user.id, action.channel_id, f"{request.id} was already reviewed.")
            return
        refresh(services, client, request.id)
        tell(client, action.user.id, action.channel_id, f"Marked {code(request.id)} as reviewed.")

    @app.action(ActionId.ACCESS_CONSOLE.value)
    def on_console(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL, we only acknowledge

    @app.view(CallbackId.ACCESS_REQUEST_MODAL.value)
    def on_request_submit(ack: Ack, body: dict, client: WebClient) -> None:
        submission = ViewSubmission.from_body(body)
        user = submission.user.id
        role_name = submission.value(BlockId.ACCESS_ROLE.value) or ""
        duration = submission.value(BlockId.ACCESS_DURATION.value) or ""
        reason = submission.value(BlockId.ACCESS_REASON.value) or ""
        ticket = submission.value(BlockId.ACCESS_TICKET.value)
        try:
            origin = json.loads(submission.private_metadata or "{}").get("channel")
        except ValueError:
            origin = None
        errors = _validate_form(services, role_name, duration, reason, ticket)
        departed: list[str] = []
        if not errors:
            try:
                departed = _check_someone_can_approve(client, services, role_name, user)
            except UserError:
                errors[BlockId.ACCESS_ROLE.value] = (
                    "Nobody can approve this role right now; ask the security team."
                )
        if errors:
            ack(response_action="errors", errors=errors)
            return
        try:
            request = access.create_request(
                services,
                requester=user,
                role_name=role_name,
                duration=duration,
                reason=reason,
                ticket=ticket,
                origin_channel=origin,
                members_of=members_resolver(client, services),
            )
        except (AccessError, DirectoryError) as exc:
            ack(response_action="errors", errors={BlockId.ACCESS_ROLE.value: str(exc)[:150]})
            return
        ack()
        try:
            post_request(services, client, request)
        except UserError as exc:
            tell(client, user, origin, str(exc))
            return
        confirmation = _requested_message(services, request, departed)
        try:
            client.chat_postEphemeral(channel=origin or user, user=user, **confirmation.as_kwargs())
        except SlackApiError:
            dm(client, user, confirmation)


def _validate_form(
    services: Services, role_name: str, duration: str, reason: str, ticket: str | None
) -> dict:
    errors: dict[str, str] = {}
    role = services.config.role(role_name)
    if role is None:
        errors[BlockId.ACCESS_ROLE.value] = "Choose a role."
        return errors
    try:
        access.parse_request_duration(services, role, duration)
    except AccessError as exc:
        errors[BlockId.ACCESS_DURATION.value] = str(exc)[:150]
    if not reason.strip():
        errors[BlockId.ACCESS_REASON.value] = "Give a reason: approvers and the audit log need to know why."
    try:
        access.check_ticket(role, ticket)
    except AccessError as exc:
        errors[BlockId.ACCESS_TICKET.value] = str(exc)[:150]
    return errors
