"""Ingest: one event recorded exactly once, atomically (the event id claimed, window signals
counted, an alert created or its counter bumped), and the pruning of that bookkeeping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlite_utils

from bot.alerts.candidates import Candidate
from bot.alerts.enrichment import Enrichment, enrich, owner_of_identity
from bot.alerts.evaluation import _Evaluator
from bot.alerts.events import CloudTrailEvent
from bot.alerts.rules import RULES
from bot.settings import Config
from bot.store import Store, iso


@dataclass
class IngestResult:
    event_id: str
    duplicate: bool = False
    alert_ids: list[int] = field(default_factory=list)
    new_alert_ids: list[int] = field(default_factory=list)


def ingest(
    config: Config, store: Store, event: CloudTrailEvent, *, source: str, now: datetime
) -> IngestResult:
    """Record one event: claim its id, evaluate the rules, create or bump alerts. All or nothing.

    A second call with the same event id changes nothing and returns ``duplicate=True``.
    """
    result = IngestResult(event_id=event.event_id)
    if store.db.execute("SELECT 1 FROM alert_events WHERE event_id = ?", [event.event_id]).fetchone():
        result.duplicate = True
        return result
    with store.transaction() as db:
        claimed = db.execute(
            "INSERT OR IGNORE INTO alert_events (event_id, source, event_name, event_time, account_id, "
            "processed_at) VALUES (?, ?, ?, ?, ?, ?)",
            [event.event_id, source, event.event_name, iso(event.event_time), event.account_id, iso(now)],
        ).rowcount
        if not claimed:
            result.duplicate = True
            return result
        candidates = _Evaluator(config, db).run(event)
        # Who is behind the event matters only when something fired (most events raise nothing).
        extra = enrich(config, store, event) if candidates else Enrichment()
        for cand in candidates:
            if cand.owner_identity is not None:
                # The alert is about someone other than the actor (AWS quarantined their key).
                extra = replace(extra, owner=owner_of_identity(config, store, cand.owner_identity))
            alert_id, created = _upsert_alert(db, cand, event, extra, now)
            result.alert_ids.append(alert_id)
            if created:
                result.new_alert_ids.append(alert_id)
        db.execute(
            "UPDATE alert_events SET alert_ids = ? WHERE event_id = ?",
            [json.dumps(result.alert_ids), event.event_id],
        )
    return result


def _upsert_alert(
    db: sqlite_utils.Database, cand: Candidate, event: CloudTrailEvent, extra: Enrichment, now: datetime
) -> tuple[int, bool]:
    at = iso(event.event_time)
    window_start = iso(event.event_time - cand.rule.dedupe_window)
    row = db.execute(
        "SELECT id FROM alerts WHERE dedupe_key = ? AND first_seen > ? AND first_seen <= ? "
        "ORDER BY first_seen DESC LIMIT 1",
        [cand.dedupe_key, window_start, at],
    ).fetchone()
    if row:
        # A repeat inside the dedupe window: count it, keep the latest details, re-render the message.
        db.execute(
            "UPDATE alerts SET count = count + 1, last_seen = MAX(last_seen, ?), last_event_id = ?, "
            "title = ?, dirty = dirty + 1 WHERE id = ?",
            [at, event.event_id, cand.title, row[0]],
        )
        return int(row[0]), False
    ident = event.user_identity
    record = {
        "rule_id": cand.rule.id,
        "severity": str(cand.severity),
        "dedupe_key": cand.dedupe_key,
        "title": cand.title,
        "account_id": event.account_id,
        "region": event.aws_region,
        "event_name": event.event_name,
        "event_source": event.event_source,
        "first_event_id": event.event_id,
        "last_event_id": event.event_id,
        "principal_arn": ident.arn,
        "principal_type": ident.type,
        "principal_name": ident.display_name,
        "owner": extra.owner,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "first_seen": at,
        "last_seen": at,
        "count": 1,
        "jit_request_id": extra.jit_request_id,
        "jit_requester": extra.jit_requester,
        "context": json.dumps(
            {
                **{k: v for k, v in cand.context.items() if v not in (None, "")},
                **({"source_identity": ident.source_identity} if ident.source_identity else {}),
                **({"session_name": ident.session_name} if ident.session_name else {}),
            },
            default=str,
        ),
        "state": "open",
        "actor_status": "",
        "dirty": 1,
        "created_at": iso(now),
    }
    alert_id = db["alerts"].insert(record).last_pk
    return int(alert_id), True


def prune(store: Store, now: datetime, *, keep: timedelta = timedelta(days=30)) -> None:
    """Forget old window signals and processed event ids (alerts themselves are kept)."""
    longest = max((r.window or timedelta(0)) for r in RULES.values())
    with store.transaction() as db:
        db.execute("DELETE FROM alert_signals WHERE at < ?", [iso(now - max(longest * 2, timedelta(days=1)))])
        db.execute("DELETE FROM alert_events WHERE processed_at < ?", [iso(now - keep)])
