"""Queries listeners: the App Home buttons (payload -> the clicking member -> one question -> a modal)
and the App Home section. The subcommands register themselves with ``/iam`` on import
(``handlers.queries.commands``)."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import queries
from bot.services import Services
from handlers.background import ack_then
from handlers.home import HOME_SECTIONS
from handlers.ids import ActionId
from handlers.models import BlockAction
from handlers.queries.home import home_section
from handlers.queries.views import keys_message, modal, risks_message

log = logging.getLogger(__name__)


def show_risks(services: Services, client: WebClient, action: BlockAction) -> None:
    """ "See my risks and fixes": always the clicking member's own answer (the value is never trusted)."""
    risks = queries.member_risks(services, action.user.id)
    _open_modal(client, action.trigger_id, modal("Your IAM risks", risks_message(risks)))


def show_keys(services: Services, client: WebClient, action: BlockAction) -> None:
    """ "How to rotate my keys": the clicking member's own keys."""
    keys = queries.member_keys(services, action.user.id)
    _open_modal(
        client, action.trigger_id, modal("Your access keys", keys_message(keys, services.clock.now()))
    )


def _open_modal(client: WebClient, trigger_id: str, view: dict) -> None:
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:  # an expired trigger: nothing else to do but log it
        log.warning(
            "could not open the modal: %s", exc.response.get("error") if exc.response is not None else exc
        )


def register(app: App, services: Services) -> None:
    """The App Home section and its buttons (the subcommands register themselves on import)."""
    if home_section not in HOME_SECTIONS:
        HOME_SECTIONS.append(home_section)

    @app.action(ActionId.QUERIES_SHOW_RISKS.value)
    @ack_then(services)
    def on_show_risks(body: dict, client: WebClient) -> None:
        show_risks(services, client, BlockAction.from_body(body))

    @app.action(ActionId.QUERIES_SHOW_KEYS.value)
    @ack_then(services)
    def on_show_keys(body: dict, client: WebClient) -> None:
        show_keys(services, client, BlockAction.from_body(body))
