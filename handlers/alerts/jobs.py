"""The alert jobs (registered with bot.jobs; tests call them directly after moving a FrozenClock).

- ``poll_alerts``: SQS and/or LookupEvents → ``bot.alerts.ingest`` → ``deliver_alerts``.
- ``escalate_unanswered``: "Did you do this?" left unanswered past ``[alerts] actor_confirm_timeout``
  escalates in the channel, mentioning the security team.
"""

from __future__ import annotations

from slack_sdk import WebClient

from bot import alerts as alert_store
from bot.alerts import consume_queue, poll_lookup_events
from bot.jobs import job
from bot.services import Services
from handlers.alerts.delivery import deliver_alerts, escalate
from handlers.blocks import mention


def _poll_every(services: Services) -> float | None:
    cfg = services.config.alerts
    return cfg.poll_interval.total_seconds() if (cfg.queue_url or cfg.lookup_events) else None


@job("alerts-poll", every_seconds=_poll_every)
def poll_alerts(services: Services, client: WebClient) -> None:
    """Read the configured sources, record alerts, and post them."""
    cfg = services.config.alerts
    if cfg.queue_url:
        consume_queue(services)
    if cfg.lookup_events:
        poll_lookup_events(services)
    deliver_alerts(services, client)
    now = services.clock.now()
    last = services.extras.get("alerts.pruned_at")
    if last is None or (now - last).total_seconds() > 86400:
        alert_store.prune(services.store, now)
        services.extras["alerts.pruned_at"] = now


@job("alerts-actor-timeouts", every_seconds=lambda services: 60.0)
def escalate_unanswered(services: Services, client: WebClient) -> int:
    """Escalate every "Did you do this?" left unanswered past its deadline; returns how many."""
    now = services.clock.now()
    count = 0
    for alert in alert_store.timed_out_asks(services.store, now):
        if not alert_store.expire_ask(services.store, alert.id, now):
            continue
        who = mention(alert.actor_user) if alert.actor_user else "The actor"
        if escalate(services, client, alert, reason=f'{who} did not answer "Did you do this?" in time.'):
            count += 1
    # Also catch up on anything not yet posted (e.g. Slack was down during the last poll).
    deliver_alerts(services, client)
    return count
