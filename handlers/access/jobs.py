"""The access-sweep job (registered with bot.jobs; tests call the parts directly with a moved clock)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import access
from bot.jobs import job
from bot.services import Services
from handlers.access.notifier import dm, finish_approval, flush_outbox, refresh, refresh_with_extensions
from handlers.access.views import when
from handlers.blocks import (
    Message,
    actions,
    button,
    code,
    mention,
    section,
)
from handlers.ids import ActionId

log = logging.getLogger(__name__)

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


def run_window_reminders(services: Services, client: WebClient) -> None:
    """Ten minutes before the window ends: tell the requester, with Extend and I'm done."""
    for request in access.due_window_reminders(services):
        dm(
            client,
            request.requester,
            Message(
                text=f"Your access to {request.role} ends at {request.window_end:%H:%M} UTC.",
                blocks=[
                    section(
                        f":hourglass_flowing_sand: Your access to {code(request.role)} ({code(request.id)}) ends "
                        f"{when(request.window_end)}. Need longer? *Extend* asks the approvers; finished? "
                        "*I'm done* ends it now."
                    ),
                    actions(
                        button("Extend", ActionId.ACCESS_EXTEND, request.id),
                        button("I'm done", ActionId.ACCESS_DONE, request.id),
                    ),
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
    """Settle approvals a crash interrupted: grant, mark granted, or fail (bot.access.recovery)."""
    for recovered in access.recover_interrupted(services):
        if recovered.action == "grant":
            finish_approval(services, client, recovered.request)
        else:
            refresh(services, client, recovered.request.id)


def run_revocation_sync(services: Services, client: WebClient) -> None:
    """Roles whose revocation policy in AWS lags SQLite (a failed write) are written again."""
    for role_arn, written, problem in access.sync_pending_revocations(services):
        if not written:
            log.warning("revocations of %s still not written: %s", role_arn, problem)


@job("access-sweep", every_seconds=lambda services: 60)
def run_access_sweep(services: Services, client: WebClient) -> None:
    """Revocation writes, stuck approvals, pending expiry, window end, window and review reminders, the Slack outbox;
    catches up after downtime. Each part runs even when another fails."""
    for part in (
        run_revocation_sync,
        run_stuck_approvals,
        run_pending_expiry,
        run_window_end,
        run_window_reminders,
        run_review_reminders,
        flush_outbox,
    ):
        try:
            part(services, client)
        except Exception:
            log.exception("access sweep: %s failed; the next sweep tries again", part.__name__)
