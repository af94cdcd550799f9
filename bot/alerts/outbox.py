"""Delivery bookkeeping: an alert row with ``dirty > 0`` still has to be posted or its message
updated, so a crash or restart between recording and posting loses nothing and repeats nothing.
Two deliverers racing on a new alert: only the holder of the post claim posts."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.alerts.model import Alert, alerts
from bot.store import Store, iso


def pending_delivery(store: Store) -> list[Alert]:
    """Alerts recorded but not yet posted, or whose message needs an update (counter, state)."""
    return alerts(store, where="dirty > 0")


def mark_delivered(store: Store, alert: Alert, *, channel: str, ts: str) -> None:
    """Store where the message lives. ``dirty`` counts changes since the last render: it is cleared
    only if nothing changed while we were posting what ``alert`` held (else the next delivery
    renders again), so a click racing a poll is never lost."""
    store.execute(
        "UPDATE alerts SET channel = ?, ts = ?, dirty = CASE WHEN dirty = ? THEN 0 ELSE dirty END "
        "WHERE id = ?",
        [channel, ts, alert.dirty, alert.id],
    )


def claim_first_post(
    store: Store, alert_id: int, now: datetime, *, lease: timedelta = timedelta(minutes=2)
) -> bool:
    """True for the one deliverer that may post this not-yet-posted alert. A claim whose holder died
    lapses after ``lease``; ``release_post_claim`` gives it up at once after a failed post."""
    return bool(
        store.execute(
            "UPDATE alerts SET post_claimed_until = ? WHERE id = ? AND ts IS NULL "
            "AND (post_claimed_until IS NULL OR post_claimed_until <= ?)",
            [iso(now + lease), alert_id, iso(now)],
        ).rowcount
    )


def release_post_claim(store: Store, alert_id: int) -> None:
    store.execute("UPDATE alerts SET post_claimed_until = NULL WHERE id = ? AND ts IS NULL", [alert_id])


def mark_dirty(store: Store, alert_id: int) -> None:
    store.execute("UPDATE alerts SET dirty = dirty + 1 WHERE id = ?", [alert_id])
