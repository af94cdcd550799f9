"""Offboarding in Slack: the ``user_change`` event and the alert's **Disable access** button. Each
listener translates: payload → typed values → one ``bot.identity`` call → render its outcome.

``user_change`` needs only the ``users:read`` scope. Bolt acknowledges events before the listener
runs, so the 3-second budget holds whatever AWS and Slack do afterwards.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import identity
from bot.services import Services
from handlers.background import ack_then
from handlers.blocks import section
from handlers.commands import CommandIO
from handlers.identity.notifier import SlackOffboardingNotifier
from handlers.identity.views import disable_outcome_text
from handlers.ids import ActionId
from handlers.models import BlockAction

log = logging.getLogger(__name__)

_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")  # used with fullmatch: no trailing newline slips through


def handle_user_change(services: Services, client: WebClient, body: dict[str, Any]) -> str:
    """One ``user_change`` event: cache the member, then offboard or close their offboarding.
    Returns what happened, for the log."""
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    user = event.get("user")
    if (
        not isinstance(user, dict)
        or not isinstance(user.get("id"), str)
        or not _MEMBER_ID.fullmatch(user["id"])
    ):
        log.warning("user_change without a usable user object; ignored")
        return "ignored"
    event_id = body.get("event_id") if isinstance(body.get("event_id"), str) else None
    return identity.member_changed(
        services, user, SlackOffboardingNotifier(services, client), event_id=event_id
    )


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners."""

    @app.event("user_change")
    @ack_then(services)
    def on_user_change(body: dict, client: WebClient) -> None:
        # Acked at once; revocation (AWS, Web API) runs on SlowWork, never on Bolt's ack threads.
        # claim() dedupes, so a run the outbox repeats finds the offboarding already taken.
        outcome = handle_user_change(services, client, body)
        log.info("user_change: %s", outcome)

    @app.action(ActionId.OFFBOARDING_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        disable_from_alert(services, client, action, body)


def _tell(client: WebClient, channel: str | None, user: str, text: str) -> None:
    try:
        if channel and not channel.startswith("D"):
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("could not answer %s: %s", user, exc.response.get("error"))


def disable_from_alert(services: Services, client: WebClient, action: Any, body: dict) -> None:
    """**Disable access** on an offboarding alert: security team only, and only for an IAM user
    that the stored offboarding's member is linked to (the button's value is never trusted alone)."""
    user = action.user.id
    if not CommandIO(services=services, client=client).is_security_team(user):
        _tell(client, action.channel_id, user, "Disable access is for the security team.")
        return
    parts = (action.value or "").split("|")
    if len(parts) == 3 and parts[0].isdigit():
        offboarding_id, account_id, user_name = int(parts[0]), parts[1], parts[2]
    else:
        offboarding_id, account_id, user_name = None, "", ""
    outcome = identity.disable_for_offboarding(services, offboarding_id, account_id, user_name, actor=user)
    text = disable_outcome_text(outcome, user)
    if outcome.status in ("not_stored", "not_linked"):
        _tell(client, action.channel_id, user, text)
        return
    thread = (body.get("message") or {}).get("ts")
    if action.channel_id and not action.channel_id.startswith("D"):
        try:
            client.chat_postMessage(
                channel=action.channel_id, thread_ts=thread, text=text, blocks=[section(text)]
            )
            return
        except SlackApiError as exc:
            log.warning("could not post in the offboarding thread: %s", exc.response.get("error"))
    _tell(client, action.channel_id, user, text)
