"""The App Home section: the newest open alerts, for the security team only."""

from __future__ import annotations

from slack_sdk import WebClient

from bot import alerts as alert_store
from bot.services import Services
from handlers.alerts.views import when
from handlers.blocks import SEVERITY_ICON, escape, section, truncate
from handlers.commands import CommandIO
from handlers.home import HOME_SECTIONS


def home_alerts(services: Services, client: WebClient, user_id: str) -> list[dict]:
    """App Home contribution: the newest open alerts, for the security team only."""
    if not CommandIO(services=services, client=client).is_security_team(user_id):
        return []
    store = services.store
    total = alert_store.count_open(store)
    if not total:
        return [section(":white_check_mark: *Alerts*: none open.")]
    shown = alert_store.open_alerts(store, limit=5)
    lines = [
        f"{SEVERITY_ICON.get(a.severity, '')} {escape(truncate(a.title, 150))} · {when(a.first_seen)} · #{a.id}"
        for a in shown
    ]
    more = f"\n_{total - len(shown)} more: `/iam alerts`_" if total > len(shown) else ""
    return [section(f"*Open alerts ({total})*\n" + "\n".join(lines) + more)]


HOME_SECTIONS.append(home_alerts)
