"""Nudges: at most one DM per finding and owner per ``nudges.every_days``, claimed before it is sent."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.digest.model import Digest, _parse
from bot.findings import Finding
from bot.store import Store, iso


def claim_nudge(store: Store, finding: Finding, user_id: str, *, now: datetime, every: timedelta) -> bool:
    """Claim the right to DM ``user_id`` about ``finding`` now: at most once per ``every``."""
    changed = store.execute(
        "INSERT INTO nudges (fingerprint, user_id, sent_at, count) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (fingerprint, user_id) DO UPDATE SET sent_at = excluded.sent_at, count = count + 1"
        " WHERE nudges.sent_at <= ?",
        [finding.fingerprint, user_id, iso(now), iso(now - every)],
    ).rowcount
    return bool(changed)


def release_nudge(store: Store, finding: Finding, user_id: str, *, sent_at: datetime) -> None:
    """Undo a claim whose DM could not be delivered, so the next run tries again."""
    store.execute(
        "DELETE FROM nudges WHERE fingerprint = ? AND user_id = ? AND sent_at = ? AND count = 1",
        [finding.fingerprint, user_id, iso(sent_at)],
    )


def nudge_rows(store: Store) -> list[dict]:
    return list(store.db["nudges"].rows_where(order_by="fingerprint"))


def due_nudges(store: Store, digest: Digest, *, now: datetime, every: timedelta) -> dict[str, list[Finding]]:
    """Owners and their open findings that have not been DMed within ``every`` (not yet claimed)."""
    sent = {(r["fingerprint"], r["user_id"]): _parse(r["sent_at"]) for r in nudge_rows(store)}
    due: dict[str, list[Finding]] = {}
    for account in digest.accounts:
        for f in account.active:
            if not f.owner:
                continue
            last = sent.get((f.fingerprint, f.owner))
            if last is not None and last > now - every:
                continue
            due.setdefault(f.owner, []).append(f)
    return due
