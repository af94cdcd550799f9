"""Access listeners: payload → typed model → one domain call → render."""

from __future__ import annotations

import json
import logging

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import access
from bot.access import AccessError, intents
from bot.services import Services
from handlers.access.commands import _check_someone_can_approve, _requested_message
from handlers.access.notifier import (
    SlackNotifier,
    active_port,
    announce_outcome,
    deliver,
    dm,
    members_resolver,
    post_request,
    tell,
)
from handlers.access.views import deny_modal, when
from handlers.background import ack_then, slow_work
from handlers.blocks import (
    Message,
    code,
    escape,
    mention,
    section,
)
from handlers.commands import CommandIO, UserError
from handlers.identity import DirectoryError
from handlers.ids import ActionId, BlockId, CallbackId
from handlers.models import BlockAction, ViewSubmission

log = logging.getLogger(__name__)

# -- interactions ------------------------------------------------------------------------------------


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners. Each acks first, then makes one domain intent call
    (``bot.access.intents``) and renders its outcome; the domain re-renders the request's messages
    through the SlackNotifier."""

    def tell_outcome(client: WebClient, action: BlockAction, outcome: intents.Outcome) -> None:
        if outcome.message:
            tell(client, action.user.id, action.channel_id, escape(outcome.message))

    @app.action(ActionId.ACCESS_APPROVE.value)
    @ack_then(services)
    def on_approve(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        try:
            outcome = intents.approve(
                services,
                action.value,
                action.user.id,
                members_of=members_resolver(client, services),
                notifier=SlackNotifier(services, client),
                is_active=active_port(client, services),
            )
        except DirectoryError as exc:
            tell(
                client,
                action.user.id,
                action.channel_id,
                f"{escape(exc)}. Your approval was not counted; try again shortly.",
            )
            return
        render_approval(services, client, action, outcome)

    @app.action(ActionId.ACCESS_DENY.value)
    @ack_then(services)
    def on_deny(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        try:
            decision = intents.may_decide(
                services, action.value, action.user.id, members_of=members_resolver(client, services)
            )
        except DirectoryError as exc:
            tell(client, action.user.id, action.channel_id, escape(exc))
            return
        if decision.status != "allowed" or decision.request is None:
            tell_outcome(client, action, decision)
            return
        client.views_open(trigger_id=action.trigger_id, view=deny_modal(decision.request))

    @app.view(CallbackId.ACCESS_DENY_MODAL.value)
    @ack_then(services)
    def on_deny_submit(body: dict, client: WebClient) -> None:
        submission = ViewSubmission.from_body(body)
        user = submission.user.id
        try:
            outcome = intents.deny(
                services,
                submission.private_metadata,
                user,
                submission.value(BlockId.ACCESS_DENY_REASON.value),
                members_of=members_resolver(client, services),
                notifier=SlackNotifier(services, client),
            )
        except DirectoryError as exc:
            tell(client, user, None, f"{escape(exc)}. Nothing was denied; try again shortly.")
            return
        if outcome.status != "denied" or outcome.request is None:
            tell(client, user, None, escape(outcome.message))
            return
        denied = outcome.request
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

    @app.action(ActionId.ACCESS_WITHDRAW.value)
    @ack_then(services)
    def on_withdraw(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        outcome = intents.withdraw(
            services, action.value, action.user.id, notifier=SlackNotifier(services, client)
        )
        tell_outcome(client, action, outcome)

    def end(action: BlockAction, client: WebClient, *, done: bool) -> None:
        user = action.user.id
        try:
            outcome = intents.end(
                services,
                action.value,
                user,
                done=done,
                members_of=members_resolver(client, services),
                is_security_team=CommandIO(services=services, client=client).is_security_team,
                notifier=SlackNotifier(services, client),
            )
        except DirectoryError as exc:
            tell(client, user, action.channel_id, escape(exc))
            return
        if outcome.revocation is None or outcome.request is None:
            tell_outcome(client, action, outcome)
            return
        request, revocation = outcome.request, outcome.revocation
        if revocation.policy_written:
            note = "Live sessions were cut off: the role now denies sessions issued to them before now."
        else:
            note = (
                f"I could not stop live sessions ({escape(revocation.problem or 'unknown error')}); "
                "I keep retrying. "
                f"The credentials already issued stay valid until {when(revocation.credentials_expire_at)} at most. "
                "The security team has been told."
            )
            SlackNotifier(services, client).revocation_not_written(
                request, user, revocation.problem or "unknown error", when(revocation.credentials_expire_at)
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
    @ack_then(services)
    def on_revoke(body: dict, client: WebClient) -> None:
        end(BlockAction.from_body(body), client, done=False)

    @app.action(ActionId.ACCESS_DONE.value)
    @ack_then(services)
    def on_done(body: dict, client: WebClient) -> None:
        end(BlockAction.from_body(body), client, done=True)

    @app.action(ActionId.ACCESS_REISSUE.value)
    @ack_then(services)
    def on_reissue(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        outcome = intents.get_credentials(
            services, action.value, action.user.id, is_active=active_port(client, services)
        )
        if outcome.credentials is None or outcome.request is None:
            tell_outcome(client, action, outcome)
            return
        deliver(services, client, outcome.request, outcome.credentials, channel=action.channel_id)

    @app.action(ActionId.ACCESS_EXTEND.value)
    @ack_then(services)
    def on_extend(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        outcome = intents.extend(
            services, action.value, action.user.id, notifier=SlackNotifier(services, client)
        )
        if outcome.status != "requested" or outcome.request is None:
            tell_outcome(client, action, outcome)
            return
        try:
            post_request(services, client, outcome.request)
        except UserError as exc:
            tell(client, action.user.id, action.channel_id, str(exc))
            return
        tell_outcome(client, action, outcome)

    @app.action(ActionId.ACCESS_REVIEW.value)
    @ack_then(services)
    def on_review(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        outcome = intents.review(
            services,
            action.value,
            action.user.id,
            is_security_team=CommandIO(services=services, client=client).is_security_team,
            notifier=SlackNotifier(services, client),
        )
        tell_outcome(client, action, outcome)

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
        # The form's own mistakes are answered in the ack (no Slack or AWS call needed for them).
        errors = _validate_form(services, role_name, duration, reason, ticket)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        # The rest needs Slack and AWS: it runs on SlowWork. The outbox may run it again when Slack
        # is unavailable, so the request is created once and a second run only finishes posting it.
        made: dict = {}

        def submit_request() -> None:
            try:
                if "request" not in made:
                    made["departed"] = _check_someone_can_approve(client, services, role_name, user)
                    made["request"] = access.create_request(
                        services,
                        requester=user,
                        role_name=role_name,
                        duration=duration,
                        reason=reason,
                        ticket=ticket,
                        origin_channel=origin,
                        members_of=members_resolver(client, services),
                    )
                request = made["request"]
                if "posted" not in made:
                    post_request(services, client, request)
                    made["posted"] = True
            except UserError as exc:
                tell(client, user, origin, str(exc))
                return
            except (AccessError, DirectoryError) as exc:
                tell(client, user, origin, escape(exc))
                return
            confirmation = _requested_message(services, request, made["departed"])
            try:
                client.chat_postEphemeral(channel=origin or user, user=user, **confirmation.as_kwargs())
            except SlackApiError:
                dm(client, user, confirmation)

        slow_work(services).submit(
            "access request", submit_request, on_failure=lambda text: tell(client, user, origin, text)
        )


def render_approval(
    services: Services, client: WebClient, action: BlockAction | None, outcome: intents.Outcome
) -> None:
    """What the approver and the requester see after an approval (also the sweep's grants)."""
    if action is not None and outcome.status in (
        "refused",
        "missing",
        "not_pending",
        "already_counted",
        "recorded",
    ):
        tell(client, action.user.id, action.channel_id, escape(outcome.message))
        return
    announce_outcome(services, client, outcome)


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
