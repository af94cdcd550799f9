"""Access listeners: payload → typed model → one domain call → render."""

from __future__ import annotations

import json
import logging

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import access
from bot.access import AccessError, AccessRequest, Approval, State
from bot.services import Services
from handlers.access.commands import _check_someone_can_approve, _requested_message
from handlers.access.notifier import (
    deliver,
    dm,
    finish_approval,
    members_resolver,
    post_request,
    refresh,
    refresh_with_extensions,
    tell,
)
from handlers.access.views import deny_modal, when
from handlers.blocks import (
    Message,
    code,
    escape,
    mention,
    section,
)
from handlers.commands import CommandIO, UserError
from handlers.directory import DirectoryError
from handlers.ids import ActionId, BlockId, CallbackId
from handlers.models import BlockAction, ViewSubmission

log = logging.getLogger(__name__)

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
