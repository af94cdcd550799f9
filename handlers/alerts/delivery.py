"""Posting alerts: new alerts posted, changed ones updated, escalations announced once.

``deliver_alerts`` renders every alert ``bot.alerts`` marks dirty (recorded but not yet posted, or
changed since: repeat counter, acknowledgement, actor answer). Safe to call any time, from anywhere:
clicks, jobs and restarts all render through it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import alerts as alert_store
from bot.alerts import Alert
from bot.services import Services
from handlers.alerts.views import alert_message, escalation_message
from handlers.blocks import Message, escape, mention

log = logging.getLogger(__name__)

_deliver_lock = threading.Lock()


def alerts_channel(services: Services) -> str | None:
    slack = services.config.slack
    return slack.alerts_channel or slack.security_channel


def _post(client: WebClient, channel: str, message: Message, **extra: Any) -> dict:
    return client.chat_postMessage(channel=channel, **message.as_kwargs(), **extra).data


def deliver_alerts(services: Services, client: WebClient) -> int:
    """Post new alerts and update changed ones; returns how many messages were posted or updated."""
    channel = alerts_channel(services)
    if channel is None:
        pending = alert_store.pending_delivery(services.store)
        if pending:
            log.warning(
                "%d alert(s) recorded but no [slack] alerts_channel/security_channel set", len(pending)
            )
        return 0
    done = 0
    with _deliver_lock:
        for alert in alert_store.pending_delivery(services.store):
            try:
                done += _deliver_one(services, client, alert, channel)
            except SlackApiError as exc:
                # Stays dirty: the next poll tries again.
                log.warning("alert #%s: Slack refused the message (%s)", alert.id, exc.response.get("error"))
    return done


def _deliver_one(services: Services, client: WebClient, alert: Alert, channel: str) -> bool:
    """Post or update one alert's message; False when another deliverer holds the post claim."""
    message = alert_message(alert)
    if alert.ts and alert.channel:
        try:
            client.chat_update(channel=alert.channel, ts=alert.ts, **message.as_kwargs())
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                raise
            # Someone deleted the alert message: post it again rather than retrying forever.
            posted = _post(client, channel, message)
            alert_store.mark_delivered(services.store, alert, channel=posted["channel"], ts=posted["ts"])
            return True
        alert_store.mark_delivered(services.store, alert, channel=alert.channel, ts=alert.ts)
        return True
    else:
        # Another instance may be posting this very alert: only the claim holder posts. A crash
        # between the post and recording its ts would post once more after the claim lapses:
        # the one window where a repeat is possible, kept as small as a single call.
        if not alert_store.claim_first_post(services.store, alert.id, services.clock.now()):
            return False
        try:
            posted = _post(client, channel, message)
        except Exception:
            alert_store.release_post_claim(services.store, alert.id)
            raise
        alert_store.mark_delivered(services.store, alert, channel=posted["channel"], ts=posted["ts"])
        return True


def _team_mentions(services: Services, client: WebClient) -> list[str]:
    """Mentions for the configured security team: members as <@U…>, user groups as <!subteam^S…>."""
    out: list[str] = []
    groups: list[dict] | None = None
    for entry in services.config.slack.security_team:
        if entry.startswith("@"):
            if groups is None:
                try:
                    groups = client.usergroups_list()["usergroups"]
                except SlackApiError:
                    groups = []
            match = next((g for g in groups if g.get("handle") == entry[1:]), None)
            out.append(f"<!subteam^{match['id']}>" if match else escape(entry))
        elif entry.startswith("S"):
            out.append(f"<!subteam^{entry}>")
        else:
            out.append(mention(entry))
    return out


def escalate(services: Services, client: WebClient, alert: Alert, *, reason: str) -> bool:
    """Post the escalation in the alert's thread (broadcast to the channel) once per alert."""
    if not alert_store.claim_escalation(services.store, alert.id, services.clock.now()):
        return False
    channel = alert.channel or alerts_channel(services)
    if channel:
        extra: dict[str, Any] = {"thread_ts": alert.ts, "reply_broadcast": True} if alert.ts else {}
        _post(
            client,
            channel,
            escalation_message(alert, _team_mentions(services, client), reason=reason),
            **extra,
        )
    deliver_alerts(services, client)
    return True
