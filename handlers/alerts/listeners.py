"""Alert listeners: the alert message's buttons and the actor's Yes / No.

``register`` only binds action ids; each listener parses the click, loads its alert, checks who
clicked, makes one domain call (``bot.alerts``) and re-renders through ``deliver_alerts``. Buttons
carry only the alert id; who may click what is decided from stored state and the config.
"""

from __future__ import annotations

import logging

from slack_bolt import App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import alerts as alert_store
from bot.alerts import Alert
from bot.services import Services
from handlers.alerts.delivery import _post, deliver_alerts, escalate
from handlers.alerts.views import actor_answered, actor_question, quarantined_user_of
from handlers.background import ack_then
from handlers.blocks import code, escape, mention
from handlers.commands import CommandIO
from handlers.digest import run_disable_access
from handlers.ids import ActionId
from handlers.models import BlockAction

log = logging.getLogger(__name__)


def _say_privately(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def _is_security_team(services: Services, client: WebClient, user_id: str) -> bool:
    return CommandIO(services=services, client=client).is_security_team(user_id)


def load_alert(services: Services, action: BlockAction, respond: Respond) -> Alert | None:
    """The clicked alert, or None after telling the clicker it is gone."""
    # Alert ids are SQLite integers: anything else (or too big for one) names no alert.
    if not (action.value.isascii() and action.value.isdigit() and len(action.value) <= 18):
        log.info("ignored alert button value %r from %s", action.value[:40], action.user.id)
        _say_privately(respond, "I can't find that alert any more.")
        return None
    alert = alert_store.get_alert(services.store, action.value)
    if alert is None:
        _say_privately(respond, "I can't find that alert any more.")
    return alert


def acknowledge_clicked(services: Services, action: BlockAction, respond: Respond, client: WebClient) -> None:
    alert = load_alert(services, action, respond)
    if alert is None:
        return
    if not _is_security_team(services, client, action.user.id):
        _say_privately(respond, "Only the security team can acknowledge alerts.")
        return
    if not alert_store.acknowledge(services.store, alert.id, action.user.id, services.clock.now()):
        current = alert_store.get_alert(services.store, alert.id)
        by = mention(current.acknowledged_by) if current and current.acknowledged_by else "someone"
        _say_privately(respond, f"Already acknowledged by {by}.")
        return
    deliver_alerts(services, client)


def ask_actor_clicked(services: Services, action: BlockAction, respond: Respond, client: WebClient) -> None:
    alert = load_alert(services, action, respond)
    if alert is None:
        return
    if not _is_security_team(services, client, action.user.id):
        _say_privately(respond, "Only the security team can ask the actor.")
        return
    if not alert.owner:
        _say_privately(
            respond,
            f"No Slack member is mapped to {code(alert.principal_arn or alert.principal_name or 'this principal')}, "
            "so there is nobody to ask. Map them under `[identity] map` or tag the IAM user with their email.",
        )
        return
    now = services.clock.now()
    timeout = services.config.alerts.actor_confirm_timeout
    if not alert_store.ask_actor(
        services.store, alert.id, actor=alert.owner, asked_by=action.user.id, at=now, timeout=timeout
    ):
        _say_privately(respond, "The actor has already been asked about this alert.")
        return
    asked = alert_store.get_alert(services.store, alert.id)
    try:
        dm = client.conversations_open(users=alert.owner)["channel"]["id"]
        posted = _post(client, dm, actor_question(asked))
    except SlackApiError as exc:
        # Still "asked": without an answer it escalates at the deadline like any other.
        _say_privately(
            respond,
            f"I could not DM {mention(alert.owner)} ({escape(exc.response.get('error', 'error'))}); "
            "without an answer this escalates at the deadline.",
        )
    else:
        alert_store.set_actor_dm(services.store, alert.id, posted["channel"], posted["ts"])
    deliver_alerts(services, client)


def disable_access_clicked(
    services: Services, action: BlockAction, body: dict, respond: Respond, client: WebClient
) -> None:
    """KEY_QUARANTINED's one click: the digest's Disable access flow on the quarantined user."""
    alert = load_alert(services, action, respond)
    if alert is None:
        return
    if not _is_security_team(services, client, action.user.id):
        _say_privately(respond, "Disable access is for the security team.")
        return
    user_name = quarantined_user_of(alert)
    if not user_name:
        _say_privately(respond, "This alert is not about a quarantined IAM user's key.")
        return
    run_disable_access(
        services,
        client,
        action,
        body,
        account_id=alert.account_id,
        user_name=user_name,
        reason=f"alert {alert.id} {alert.rule_id}",
    )


def answer_clicked(
    services: Services, action: BlockAction, respond: Respond, client: WebClient, *, confirmed: bool
) -> None:
    """The asked member's Yes (recorded) or No (escalated)."""
    alert = load_alert(services, action, respond)
    if alert is None:
        return
    now = services.clock.now()
    if not alert_store.answer_actor(
        services.store, alert.id, user_id=action.user.id, confirmed=confirmed, at=now
    ):
        if alert.actor_user != action.user.id:
            _say_privately(respond, "This question was not addressed to you.")
        else:
            _say_privately(respond, "Your answer was already recorded (or the question timed out).")
        return
    answered = alert_store.get_alert(services.store, alert.id)
    if answered.dm_channel and answered.dm_ts:
        client.chat_update(
            channel=answered.dm_channel,
            ts=answered.dm_ts,
            **actor_answered(answered, confirmed).as_kwargs(),
        )
    if confirmed:
        deliver_alerts(services, client)
    else:
        escalate(
            services,
            client,
            answered,
            reason=f"{mention(action.user.id)} says they did not do this.",
        )


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners (each acks first, then runs on the slow-work pool)."""

    @app.action(ActionId.ALERT_ACKNOWLEDGE.value)
    @ack_then(services)
    def on_acknowledge(body: dict, respond: Respond, client: WebClient) -> None:
        acknowledge_clicked(services, BlockAction.from_body(body), respond, client)

    @app.action(ActionId.ALERT_ASK_ACTOR.value)
    @ack_then(services)
    def on_ask_actor(body: dict, respond: Respond, client: WebClient) -> None:
        ask_actor_clicked(services, BlockAction.from_body(body), respond, client)

    @app.action(ActionId.ALERT_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, respond: Respond, client: WebClient) -> None:
        disable_access_clicked(services, BlockAction.from_body(body), body, respond, client)

    def on_answer(confirmed: bool):  # noqa: ANN202 - returns a Bolt listener
        @ack_then(services)
        def listener(body: dict, respond: Respond, client: WebClient) -> None:
            answer_clicked(services, BlockAction.from_body(body), respond, client, confirmed=confirmed)

        return listener

    app.action(ActionId.ALERT_ACTOR_YES.value)(on_answer(True))
    app.action(ActionId.ALERT_ACTOR_NO.value)(on_answer(False))
