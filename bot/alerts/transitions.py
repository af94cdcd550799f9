"""The alert's state changes, each one conditional ``UPDATE … WHERE`` so a double click or two
instances at once change it once:

    open ──Acknowledge──▶ acknowledged

    actor_status: '' ──Ask the actor──▶ asked ──Yes──▶ confirmed
                                          ├──No──▶ denied ─────────▶ escalated (once)
                                          └──deadline passed──▶ timed_out ─▶ escalated (once)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.alerts.model import Alert, alerts
from bot.store import Store, iso


def acknowledge(store: Store, alert_id: int, user_id: str, at: datetime) -> bool:
    """Open → acknowledged, once. Returns False when it was already acknowledged (or missing)."""
    changed = store.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, dirty = dirty + 1 "
        "WHERE id = ? AND state = 'open'",
        [user_id, iso(at), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.acknowledge", actor=user_id, at=at, reason=f"alert {alert_id}")
    return bool(changed)


def ask_actor(
    store: Store, alert_id: int, *, actor: str, asked_by: str, at: datetime, timeout: timedelta
) -> bool:
    """Record that ``actor`` was asked "did you do this?"; once per alert. False if already asked."""
    changed = store.execute(
        "UPDATE alerts SET actor_status = 'asked', actor_user = ?, actor_asked_by = ?, actor_asked_at = ?, "
        "actor_deadline = ?, dirty = dirty + 1 WHERE id = ? AND COALESCE(actor_status, '') = ''",
        [actor, asked_by, iso(at), iso(at + timeout), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.ask_actor", actor=asked_by, at=at, reason=f"alert {alert_id}", asked=actor)
    return bool(changed)


def set_actor_dm(store: Store, alert_id: int, channel: str, ts: str) -> None:
    store.execute("UPDATE alerts SET dm_channel = ?, dm_ts = ? WHERE id = ?", [channel, ts, alert_id])


def answer_actor(store: Store, alert_id: int, *, user_id: str, confirmed: bool, at: datetime) -> bool:
    """The asked member answers Yes (confirmed) or No (denied → escalate). Only them, only once."""
    status = "confirmed" if confirmed else "denied"
    changed = store.execute(
        "UPDATE alerts SET actor_status = ?, actor_answered_at = ?, dirty = dirty + 1 "
        "WHERE id = ? AND actor_status = 'asked' AND actor_user = ?",
        [status, iso(at), alert_id, user_id],
    ).rowcount
    if changed:
        store.audit(f"alert.actor_{status}", actor=user_id, at=at, reason=f"alert {alert_id}")
    return bool(changed)


def timed_out_asks(store: Store, now: datetime) -> list[Alert]:
    """Asked alerts whose actor did not answer in time, as of ``now``."""
    return alerts(store, where="actor_status = 'asked' AND actor_deadline <= ?", params=[iso(now)])


def expire_ask(store: Store, alert_id: int, at: datetime) -> bool:
    changed = store.execute(
        "UPDATE alerts SET actor_status = 'timed_out', dirty = dirty + 1 WHERE id = ? AND actor_status = 'asked' "
        "AND actor_deadline <= ?",
        [alert_id, iso(at)],
    ).rowcount
    return bool(changed)


def claim_escalation(store: Store, alert_id: int, at: datetime) -> bool:
    """Escalate once: True for the single caller that records the escalation."""
    changed = store.execute(
        "UPDATE alerts SET escalated_at = ?, dirty = dirty + 1 WHERE id = ? AND escalated_at IS NULL",
        [iso(at), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.escalate", actor="iamwarden", at=at, reason=f"alert {alert_id}")
    return bool(changed)
