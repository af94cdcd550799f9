"""Slack work that must happen eventually, kept in SQLite so a Slack outage or a crash loses none.

Rows carry no message content (never secrets): the Slack side renders each from the request's state
when it sends. The domain enqueues in the same transaction as the state change; the Slack side
tries at once and marks the row done; the sweep retries what is due, with backoff, until Slack
accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from bot.services import Services
from bot.store import iso

# A delivery is left to the click that made the grant for this long before the sweep takes it over.
DELIVERY_GRACE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(minutes=10)


@dataclass
class OutboxItem:
    id: int
    kind: str
    request_id: str
    attempts: int


def enqueue(
    db: sqlite_utils.Database, kind: str, request_id: str, *, now: datetime, delay: timedelta = timedelta(0)
) -> int:
    """Add one item (inside the caller's transaction). Returns its id."""
    cursor = db.execute(
        "INSERT INTO access_outbox (kind, request_id, created_at, due_at, attempts) VALUES (?, ?, ?, ?, 0)",
        [kind, request_id, iso(now), iso(now + delay)],
    )
    return cursor.lastrowid


def open_items(services: Services, request_id: str, kind: str) -> list[int]:
    rows = services.store.execute(
        "SELECT id FROM access_outbox WHERE request_id = ? AND kind = ? AND done_at IS NULL",
        [request_id, kind],
    ).fetchall()
    return [r[0] for r in rows]


def complete(services: Services, request_id: str, kind: str) -> None:
    """Every open item of this kind for the request is done (the work just succeeded)."""
    services.store.execute(
        "UPDATE access_outbox SET done_at = ? WHERE request_id = ? AND kind = ? AND done_at IS NULL",
        [iso(services.clock.now()), request_id, kind],
    )


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=15) * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def claim_due(services: Services) -> list[OutboxItem]:
    """Items due now, each claimed by pushing its due time out (one sweeper takes each)."""
    now = services.clock.now()
    rows = services.store.execute(
        "SELECT id, kind, request_id, attempts, due_at FROM access_outbox WHERE done_at IS NULL AND due_at <= ? "
        "ORDER BY id",
        [iso(now)],
    ).fetchall()
    claimed: list[OutboxItem] = []
    for item_id, kind, request_id, attempts, due_at in rows:
        won = services.store.execute(
            "UPDATE access_outbox SET due_at = ?, attempts = attempts + 1 WHERE id = ? AND due_at = ? "
            "AND done_at IS NULL",
            [iso(now + backoff(attempts + 1)), item_id, due_at],
        ).rowcount
        if won == 1:
            claimed.append(OutboxItem(id=item_id, kind=kind, request_id=request_id, attempts=attempts + 1))
    return claimed


def finish(services: Services, item_id: int) -> None:
    services.store.execute(
        "UPDATE access_outbox SET done_at = ?, last_error = NULL WHERE id = ?",
        [iso(services.clock.now()), item_id],
    )


def failed(services: Services, item_id: int, error: str) -> None:
    """Leave it for the next try (its due time was already pushed out by the claim)."""
    services.store.execute("UPDATE access_outbox SET last_error = ? WHERE id = ?", [error[:300], item_id])


def pending(services: Services, request_id: str | None = None) -> list[tuple[int, str, str]]:
    sql = "SELECT id, kind, request_id FROM access_outbox WHERE done_at IS NULL"
    params: list = []
    if request_id:
        sql += " AND request_id = ?"
        params.append(request_id)
    return [tuple(r) for r in services.store.execute(sql, params).fetchall()]  # type: ignore[misc]
