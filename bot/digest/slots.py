"""Slots: a scheduled digest (or scan) claims ``(kind, channel, slot)`` in SQLite before it runs, so
two instances or a restart never post twice; a slot missed while the bot was down is caught up once,
within ``config.schedule.catch_up_grace``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from bot.store import Store, iso

# A claimed slot whose poster vanished (crash mid-post) may be taken over after this long.
SLOT_LEASE = timedelta(minutes=15)
INSTANCE_ID = uuid.uuid4().hex[:12]


def due_slot(cron: str, timezone: str, now: datetime, grace: timedelta) -> datetime | None:
    """The newest scheduled fire time in ``(now - grace, now]``, or None when no slot is due.

    A slot older than the grace period is not caught up: a digest about yesterday posted late in the
    afternoon helps nobody.
    """
    # late: bot.jobs loads apscheduler, which the store's migrations (they import this package) and
    # so every `iamwarden scan` would load for nothing
    from bot.jobs import crontab_trigger

    trigger = crontab_trigger(cron, timezone)
    start = now - grace
    slot = None
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return slot


def claim_slot(
    store: Store,
    *,
    kind: str,
    channel: str,
    slot: datetime | str,
    now: datetime,
    instance: str = INSTANCE_ID,
) -> bool:
    """Claim one slot for this instance. True for exactly one caller per (kind, channel, slot).

    A failed attempt, or a claim whose poster vanished more than ``SLOT_LEASE`` ago, may be claimed
    again; a posted slot never is.
    """
    key = slot if isinstance(slot, str) else iso(slot)
    with store.transaction() as db:
        inserted = db.execute(
            "INSERT OR IGNORE INTO digest_slots (kind, channel, slot, status, claimed_by, claimed_at)"
            " VALUES (?, ?, ?, 'claimed', ?, ?)",
            [kind, channel, key, instance, iso(now)],
        ).rowcount
        if inserted:
            return True
        retaken = db.execute(
            "UPDATE digest_slots SET status = 'claimed', claimed_by = ?, claimed_at = ?, error = NULL"
            " WHERE kind = ? AND channel = ? AND slot = ?"
            " AND (status = 'failed' OR (status = 'claimed' AND claimed_at < ?))",
            [instance, iso(now), kind, channel, key, iso(now - SLOT_LEASE)],
        ).rowcount
        return bool(retaken)


def finish_slot(
    store: Store,
    *,
    kind: str,
    channel: str,
    slot: datetime | str,
    now: datetime,
    ts: str | None = None,
    error: str | None = None,
) -> None:
    key = slot if isinstance(slot, str) else iso(slot)
    store.execute(
        "UPDATE digest_slots SET status = ?, finished_at = ?, ts = ?, error = ?"
        " WHERE kind = ? AND channel = ? AND slot = ?",
        ["failed" if error else "posted", iso(now), ts, error, kind, channel, key],
    )


def slot_rows(store: Store, *, kind: str | None = None) -> list[dict]:
    where, params = ("kind = ?", [kind]) if kind else (None, None)
    return list(store.db["digest_slots"].rows_where(where, params, order_by="slot"))
