"""``/iam request``, ``/iam breakglass``, ``/iam grants``, ``/iam review``."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import access
from bot.access import AccessError, AccessRequest
from bot.services import Services
from handlers.access.notifier import (
    SlackNotifier,
    active_port,
    approver_availability,
    deliver,
    members_resolver,
    post_request,
)
from handlers.access.views import approvers_text, grants_message, request_modal, when
from handlers.blocks import (
    Message,
    button,
    code,
    escape,
    header,
    mention,
    section,
)
from handlers.commands import CommandIO, UserError, subcommand
from handlers.identity import DirectoryError
from handlers.ids import ActionId
from handlers.models import SlashCommand

log = logging.getLogger(__name__)

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


def validate_request_command(cmd: SlashCommand, io: CommandIO) -> None:
    """Everything about ``/iam request`` that needs neither Slack nor AWS, answered in the ack."""
    services = io.services
    if not services.config.slack.approvals_channel:
        raise UserError("No approvals channel is configured (`[slack] approvals_channel`); ask an admin.")
    if not cmd.rest.strip():
        return
    role_name, duration, reason, ticket = _parse_shorthand(cmd.rest)
    try:
        role = access.role_config(services, role_name)
        access.parse_request_duration(services, role, duration)
        if not reason.strip():
            raise AccessError("Give a reason: approvers and the audit log need to know why.")
        access.check_ticket(role, ticket)
    except AccessError as exc:
        raise _user_error(exc) from None


@subcommand(
    "request",
    usage="request [ROLE DURATION REASON…]",
    summary="Ask for a privileged role for a while; a peer approves it in the approvals channel.",
    slow=True,
    working_text="Asking for approval…",
    validate=validate_request_command,
)
def request_command(cmd: SlashCommand, io: CommandIO) -> Message | None:
    """Runs after the ack (Slack's 3 s never depend on Slack's or AWS's speed)."""
    services, client = io.services, io.client
    members_of = members_resolver(client, services)
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
    try:
        request, creds = access.break_glass(
            services,
            requester=cmd.user_id,
            role_name=words[0],
            reason=words[1],
            origin_channel=cmd.channel_id,
            members_of=members_resolver(client, services),
            notifier=SlackNotifier(services, client),
            is_active=active_port(client, services),
        )
    except (AccessError, DirectoryError) as exc:
        raise _user_error(exc) from None
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
