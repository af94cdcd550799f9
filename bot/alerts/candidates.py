"""What rules say about an event (``Candidate``) and what the rule groups share while evaluating
it (``RuleContext``: effective rules, window signals and counts, the candidate builder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from bot.alerts.events import CloudTrailEvent, UserIdentity
from bot.alerts.rules import RULES, Rule, effective_rule
from bot.findings import Severity
from bot.settings import Config
from bot.store import iso


@dataclass
class Candidate:
    """What one rule says about one event, before dedupe."""

    rule: Rule
    dedupe_key: str
    title: str
    severity: Severity
    context: dict[str, Any] = field(default_factory=dict)
    # Whose Slack member owns the alert when that is not the actor (the quarantined key's user).
    owner_identity: UserIdentity | None = None


class _EffectiveRules(dict):
    """Rule id → the rule with this config's overrides, computed on first use (most events touch
    two or three rules; building all twenty per event costs more than evaluating them)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def __missing__(self, rule_id: str) -> Rule:
        rule = self[rule_id] = effective_rule(RULES[rule_id], self.config)
        return rule


# Tables other features own that some rules read (access_grants, snapshots). Migrations create
# every table at start-up, so a table seen once stays; only "present" is remembered.
_TABLES_SEEN: set[tuple[int, str]] = set()


def _has_table(db: sqlite_utils.Database, name: str) -> bool:
    key = (id(db.conn), name)
    if key in _TABLES_SEEN:
        return True
    present = (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()
        is not None
    )
    if present:
        _TABLES_SEEN.add(key)
    return present


class RuleContext:
    """What every rule group shares while one event is evaluated: the config, the transaction's
    database, the effective rules, window signals and the candidate builder."""

    def __init__(self, config: Config, db: sqlite_utils.Database):
        self.config = config
        self.db = db
        self.rules = _EffectiveRules(config)

    def enabled(self, rule_id: str) -> bool:
        return self.rules[rule_id].enabled

    def candidate(self, rule_id: str, key: str, title: str, **context: Any) -> Candidate:
        rule = self.rules[rule_id]
        severity = context.pop("severity", None) or rule.severity
        owner_identity = context.pop("owner_identity", None)
        return Candidate(rule, f"{rule_id}|{key}", title, severity, context, owner_identity)

    def _window_count(
        self, rule: Rule, account: str, at: datetime, *, distinct: bool, subject: str = ""
    ) -> int:
        """The largest count (or number of distinct subjects) in any window of ``rule.window`` that
        contains ``at``. Looking past ``at`` too means a late, out-of-order event still completes
        a burst whose later events arrived first."""
        window = rule.window or timedelta(0)
        where = "rule_id = ? AND account_id = ? AND at > ? AND at <= ?"
        params: list[Any] = [rule.id, account, iso(at - window), iso(at)]
        if not distinct:
            where += " AND subject = ?"
            params.append(subject)
        what = "COUNT(DISTINCT subject)" if distinct else "COUNT(*)"
        best = int(self.db.execute(f"SELECT {what} FROM alert_signals WHERE {where}", params).fetchone()[0])  # noqa: S608
        later_sql = (
            "SELECT DISTINCT at FROM alert_signals WHERE rule_id = ? AND account_id = ? AND at > ? AND at < ?"
        )
        later_params: list[Any] = [rule.id, account, iso(at), iso(at + window)]
        if not distinct:
            later_sql += " AND subject = ?"
            later_params.append(subject)
        later = [
            datetime.fromisoformat(r[0]) for r in self.db.execute(later_sql + " ORDER BY at", later_params)
        ]
        # Events arrived out of order: windows ending after `at` that still contain it.
        for end in later:
            params[2:4] = [iso(end - window), iso(end)]
            count = self.db.execute(f"SELECT {what} FROM alert_signals WHERE {where}", params).fetchone()[0]  # noqa: S608
            best = max(best, int(count))
        return best

    def signal(self, rule_id: str, e: CloudTrailEvent, subject: str, detail: str | None = None) -> None:
        """Record what a windowed rule counts, at the event's own time."""
        self.db.execute(
            "INSERT INTO alert_signals (rule_id, account_id, subject, at, event_id, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [rule_id, e.account_id, subject, iso(e.event_time), e.event_id, detail],
        )
