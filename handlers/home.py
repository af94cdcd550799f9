"""The App Home tab: a member's own picture. Feature modules contribute sections to it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App
from slack_sdk import WebClient

from bot.services import Services
from handlers.background import ack_then
from handlers.blocks import MAX_BLOCKS_VIEW, actions, button, context, header, section
from handlers.ids import ActionId
from handlers.models import BlockAction

log = logging.getLogger(__name__)

# Each contributor returns blocks for one member's Home; features append to this list.
HOME_SECTIONS: list[Callable[[Services, WebClient, str], list[dict]]] = []


def home_view(services: Services, client: WebClient, user_id: str) -> dict:
    blocks: list[dict] = [header("iamwarden")]
    for contribute in HOME_SECTIONS:
        try:
            blocks += contribute(services, client, user_id)
        except Exception:
            log.exception("home section %s failed for %s", getattr(contribute, "__name__", "?"), user_id)
            blocks.append(context("Part of this page could not be shown right now; it is logged."))
    if len(blocks) == 1:
        blocks.append(section("Type `/iam help` in any channel to see what I can do."))
    blocks.append(actions(button("Refresh", ActionId.HOME_REFRESH)))
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS_VIEW]}


def publish_home(services: Services, client: WebClient, user_id: str) -> None:
    client.views_publish(user_id=user_id, view=home_view(services, client, user_id))


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    @ack_then(services)
    def on_home_opened(event: dict, client: WebClient) -> None:
        user = event.get("user")
        if not isinstance(user, str) or not user:
            log.warning("ignored app_home_opened without a user")
            return
        if event.get("tab", "home") == "home":
            publish_home(services, client, user)

    @app.action(ActionId.HOME_REFRESH.value)
    @ack_then(services)
    def on_refresh(body: dict, client: WebClient) -> None:
        publish_home(services, client, BlockAction.from_body(body).user.id)
