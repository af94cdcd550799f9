"""A stored alert, as the Slack surface renders it, and reading alerts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.alerts.rules import RULES, Rule
from bot.findings import Severity
from bot.store import Store


@dataclass
class Alert:
    """A stored alert, as the Slack surface renders it."""

    id: int
    rule_id: str
    severity: Severity
    title: str
    account_id: str
    region: str
    event_name: str
    event_source: str
    principal_arn: str | None
    principal_type: str | None
    principal_name: str | None
    owner: str | None
    source_ip: str | None
    user_agent: str | None
    first_seen: str
    last_seen: str
    count: int
    jit_request_id: str | None
    jit_requester: str | None
    context: dict[str, Any]
    state: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    actor_status: str
    actor_user: str | None
    actor_asked_by: str | None
    actor_deadline: str | None
    actor_answered_at: str | None
    escalated_at: str | None
    channel: str | None
    ts: str | None
    dm_channel: str | None
    dm_ts: str | None
    dirty: int = 0

    @property
    def rule(self) -> Rule:
        return RULES[self.rule_id]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        names = cls.__dataclass_fields__
        data = {k: row.get(k) for k in names}
        data["severity"] = Severity(row["severity"])
        data["context"] = json.loads(row.get("context") or "{}")
        data["actor_status"] = row.get("actor_status") or ""
        data["count"] = int(row.get("count") or 1)
        data["dirty"] = int(row.get("dirty") or 0)
        return cls(**data)


def get_alert(store: Store, alert_id: int | str) -> Alert | None:
    try:
        key = int(alert_id)
    except (TypeError, ValueError):
        return None
    rows = list(store.db["alerts"].rows_where("id = ?", [key]))
    return Alert.from_row(rows[0]) if rows else None


def alerts(
    store: Store,
    *,
    where: str | None = None,
    params: Iterable[Any] = (),
    newest_first: bool = False,
    limit: int | None = None,
) -> list[Alert]:
    rows = store.db["alerts"].rows_where(
        where, list(params), order_by="id DESC" if newest_first else "id", limit=limit
    )
    return [Alert.from_row(r) for r in rows]


def open_alerts(store: Store, *, limit: int) -> list[Alert]:
    """The newest ``limit`` alerts nobody has acknowledged yet."""
    return alerts(store, where="state = 'open'", newest_first=True, limit=limit)


def count_open(store: Store) -> int:
    """How many alerts nobody has acknowledged yet."""
    return int(store.db.execute("SELECT COUNT(*) FROM alerts WHERE state = 'open'").fetchone()[0])
