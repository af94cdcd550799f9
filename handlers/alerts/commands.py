"""``/iam alerts`` (open alerts) and ``/iam alerts rules`` (the catalog with this deployment's overrides)."""

from __future__ import annotations

from bot import alerts as alert_store
from handlers.alerts.views import OPEN_ALERTS_SHOWN, open_alerts_message, rules_message
from handlers.blocks import Message, code
from handlers.commands import CommandIO, UserError, subcommand
from handlers.models import SlashCommand


@subcommand(
    "alerts",
    usage="alerts [rules]",
    summary="Open (unacknowledged) alerts, or the alert rules and their settings.",
    team_only=True,
)
def show_alerts(cmd: SlashCommand, io: CommandIO) -> Message:
    args = [a.lower() for a in cmd.args]
    if args == ["rules"]:
        return rules_message(alert_store.rule_catalog(io.services.config))
    if args:
        raise UserError(f"Usage: {code('/iam alerts')} or {code('/iam alerts rules')}")
    store = io.services.store
    return open_alerts_message(
        alert_store.open_alerts(store, limit=OPEN_ALERTS_SHOWN), alert_store.count_open(store)
    )
