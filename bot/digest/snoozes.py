"""Snoozes: a finding hidden from the digest until a date (reason and who recorded, at most 90 days);
expiry brings it back."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.digest.model import DigestError, Snooze
from bot.findings import Finding
from bot.store import Store, iso

MAX_SNOOZE_DAYS = 90


def _snooze_of(row: dict) -> Snooze:
    return Snooze(
        id=row["id"],
        fingerprint=row["fingerprint"],
        reason=row["reason"],
        snoozed_by=row["snoozed_by"],
        snoozed_at=datetime.fromisoformat(row["snoozed_at"]),
        until=datetime.fromisoformat(row["until"]),
    )


def parse_snooze_end(text: str | date | None, now: datetime) -> datetime:
    """The end of a snooze from a date (``YYYY-MM-DD``): end of that day in UTC, at most 90 days away."""
    if text is None or text == "":
        raise DigestError("Pick the date the snooze ends.")
    try:
        day = text if isinstance(text, date) else date.fromisoformat(str(text).strip())
    except ValueError:
        raise DigestError(f"'{text}' is not a date; use YYYY-MM-DD.") from None
    until = datetime(day.year, day.month, day.day, tzinfo=now.tzinfo) + timedelta(days=1)
    if until <= now:
        raise DigestError("The snooze must end in the future.")
    if until - now > timedelta(days=MAX_SNOOZE_DAYS + 1):
        raise DigestError(f"A snooze can last at most {MAX_SNOOZE_DAYS} days; pick an earlier date.")
    return until


def snooze(
    store: Store,
    finding: Finding,
    *,
    by: str,
    reason: str,
    until: datetime,
    now: datetime,
) -> Snooze:
    """Snooze one finding until ``until`` (≤ 90 days), recorded with who and why, and audited.

    A new snooze replaces an active one for the same finding.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DigestError("Say why the finding is snoozed; the reason is kept in the audit log.")
    if until <= now:
        raise DigestError("The snooze must end in the future.")
    if until - now > timedelta(days=MAX_SNOOZE_DAYS, hours=24):
        raise DigestError(f"A snooze can last at most {MAX_SNOOZE_DAYS} days.")
    with store.transaction() as db:
        db.execute(
            "UPDATE snoozes SET state = 'replaced' WHERE fingerprint = ? AND state = 'active'",
            [finding.fingerprint],
        )
        snooze_id = (
            db["snoozes"]
            .insert(
                {
                    "fingerprint": finding.fingerprint,
                    "account_id": finding.account_id,
                    "check_id": finding.check_id,
                    "principal_arn": finding.principal_arn,
                    "reason": reason,
                    "snoozed_by": by,
                    "snoozed_at": iso(now),
                    "until": iso(until),
                    "state": "active",
                }
            )
            .last_pk
        )
    store.audit(
        "finding.snooze",
        actor=by,
        at=now,
        account_id=finding.account_id,
        reason=reason,
        fingerprint=finding.fingerprint,
        check_id=finding.check_id,
        principal_arn=finding.principal_arn,
        until=iso(until),
    )
    return Snooze(snooze_id, finding.fingerprint, reason, by, now.replace(microsecond=0), until)


def expire_snoozes(store: Store, now: datetime) -> list[Snooze]:
    """End snoozes whose time is up (each exactly once) and audit it; the findings come back."""
    rows = list(store.db["snoozes"].rows_where("state = 'active' AND until <= ?", [iso(now)]))
    ended: list[Snooze] = []
    for row in rows:
        changed = store.execute(
            "UPDATE snoozes SET state = 'expired' WHERE id = ? AND state = 'active'", [row["id"]]
        ).rowcount
        if changed:
            ended.append(_snooze_of(row))
            store.audit(
                "finding.snooze_expired",
                actor="iamwarden",
                at=now,
                account_id=row["account_id"],
                fingerprint=row["fingerprint"],
                check_id=row["check_id"],
                principal_arn=row["principal_arn"],
                snoozed_by=row["snoozed_by"],
            )
    return ended


def active_snoozes(store: Store, now: datetime) -> dict[str, Snooze]:
    rows = store.db["snoozes"].rows_where("state = 'active' AND until > ?", [iso(now)], order_by="id")
    return {row["fingerprint"]: _snooze_of(row) for row in rows}


def snoozes_ended_between(store: Store, start: datetime | None, end: datetime) -> dict[str, Snooze]:
    """Snoozes whose end fell in ``(start, end]`` (the findings are back since the last digest)."""
    rows = store.db["snoozes"].rows_where(
        "state IN ('active', 'expired') AND until <= ? AND until > ?",
        [iso(end), iso(start) if start else ""],
        order_by="id",
    )
    return {row["fingerprint"]: _snooze_of(row) for row in rows}
