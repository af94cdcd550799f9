"""The daily digest: what changed in IAM since the previous digest, who owns it, what to do.

Pure domain code (no Slack): ``build_digest`` diffs each account's newest snapshot against the
snapshot the previous digest in the same channel was built from, and applies the digest's own state:

- **slots**: a scheduled digest claims ``(kind, channel, slot)`` in SQLite before posting, so two
  instances or a restart never post twice; a slot missed while the bot was down is caught up once,
  within ``config.schedule.catch_up_grace``;
- **snoozes** (reason, who, an end ≤ 90 days away; expiry brings the finding back),
  **acknowledgements**, **marks** ("fixed", "not mine", "access disabled": who did what, used to
  credit the fixer) and **nudges** (at most one DM per finding and owner per ``nudges.every_days``).

State transitions are conditional SQL (``INSERT OR IGNORE``, ``UPDATE … WHERE``) so a double click
or two posters at once can never apply twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlite_utils

from bot.findings import (
    Finding,
    FindingStatus,
    Severity,
    findings_of,
    latest_snapshots,
    sort_findings,
)
from bot.jobs import crontab_trigger
from bot.store import Store, iso, migrations

log = logging.getLogger(__name__)

MAX_SNOOZE_DAYS = 90
# A claimed slot whose poster vanished (crash mid-post) may be taken over after this long.
SLOT_LEASE = timedelta(minutes=15)
OFFBOARDING_CHECKS = ("OFFBOARDED_USER_ACTIVE", "UNOWNED_USER")
INSTANCE_ID = uuid.uuid4().hex[:12]


class DigestError(ValueError):
    """Something a person asked for that cannot be done; the message says why in plain words."""


# -- tables -------------------------------------------------------------------------------------------


@migrations()
def m050_digest(db: sqlite_utils.Database) -> None:
    db["digest_slots"].create(
        {
            "kind": str,  # "digest" | "scan"
            "channel": str,
            "slot": str,  # ISO time of the scheduled fire time
            "status": str,  # "claimed" | "posted" | "failed"
            "claimed_by": str,
            "claimed_at": str,
            "finished_at": str,
            "ts": str,
            "error": str,
        },
        pk=("kind", "channel", "slot"),
    )
    db["digests"].create(
        {
            "id": int,
            "channel": str,
            "slot": str,
            "posted_at": str,
            "ts": str,
            "snapshots": str,  # JSON {account_id: snapshot_id} the digest was built from
            "summary": str,  # JSON counts, for the record
        },
        pk="id",
    )
    db["digests"].create_index(["channel", "id"])
    db["snoozes"].create(
        {
            "id": int,
            "fingerprint": str,
            "account_id": str,
            "check_id": str,
            "principal_arn": str,
            "reason": str,
            "snoozed_by": str,
            "snoozed_at": str,
            "until": str,
            "state": str,  # "active" | "expired"
        },
        pk="id",
    )
    db["snoozes"].create_index(["fingerprint", "state"])
    db["acknowledgements"].create(
        {"fingerprint": str, "acknowledged_by": str, "acknowledged_at": str}, pk="fingerprint"
    )
    db["finding_marks"].create(
        {"id": int, "fingerprint": str, "kind": str, "marked_by": str, "marked_at": str, "note": str},
        pk="id",
    )
    db["finding_marks"].create_index(["fingerprint"])
    db["nudges"].create(
        {"fingerprint": str, "user_id": str, "sent_at": str, "count": int},
        pk=("fingerprint", "user_id"),
    )


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


# -- slots: exactly once per channel per scheduled slot -----------------------------------------------


def due_slot(cron: str, timezone: str, now: datetime, grace: timedelta) -> datetime | None:
    """The newest scheduled fire time in ``(now - grace, now]``, or None when no slot is due.

    A slot older than the grace period is not caught up: a digest about yesterday posted late in the
    afternoon helps nobody.
    """
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


# -- snoozes, acknowledgements, marks -----------------------------------------------------------------


@dataclass(frozen=True)
class Snooze:
    id: int
    fingerprint: str
    reason: str
    snoozed_by: str
    snoozed_at: datetime
    until: datetime


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


def acknowledge(store: Store, finding: Finding, *, by: str, now: datetime) -> bool:
    """Record that ``by`` has seen the finding. True the first time; later clicks change nothing."""
    inserted = store.execute(
        "INSERT OR IGNORE INTO acknowledgements (fingerprint, acknowledged_by, acknowledged_at)"
        " VALUES (?, ?, ?)",
        [finding.fingerprint, by, iso(now)],
    ).rowcount
    if inserted:
        store.audit(
            "finding.acknowledge",
            actor=by,
            at=now,
            account_id=finding.account_id,
            fingerprint=finding.fingerprint,
            check_id=finding.check_id,
            principal_arn=finding.principal_arn,
        )
    return bool(inserted)


def acknowledgements(store: Store) -> dict[str, dict]:
    return {row["fingerprint"]: row for row in store.db["acknowledgements"].rows}


MARK_KINDS = ("fixed", "not_mine", "access_disabled", "notified")


def mark(store: Store, finding: Finding, *, kind: str, by: str, now: datetime, note: str = "") -> None:
    """Record what someone did about a finding (used to credit the fixer) and audit it."""
    if kind not in MARK_KINDS:
        raise ValueError(f"unknown mark {kind!r}")
    store.db["finding_marks"].insert(
        {
            "fingerprint": finding.fingerprint,
            "kind": kind,
            "marked_by": by,
            "marked_at": iso(now),
            "note": note,
        }
    )
    store.audit(
        f"finding.{kind}",
        actor=by,
        at=now,
        account_id=finding.account_id,
        fingerprint=finding.fingerprint,
        check_id=finding.check_id,
        principal_arn=finding.principal_arn,
        note=note or None,
    )


def marks_of(store: Store, fingerprints: Iterable[str], kinds: Iterable[str]) -> dict[str, dict]:
    """The newest mark of the given kinds per fingerprint."""
    fps = list(fingerprints)
    kinds = list(kinds)
    found: dict[str, dict] = {}
    for i in range(0, len(fps), 500):
        chunk = fps[i : i + 500]
        sql = (
            f"SELECT * FROM finding_marks WHERE fingerprint IN ({','.join('?' * len(chunk))})"  # noqa: S608
            f" AND kind IN ({','.join('?' * len(kinds))}) ORDER BY id"
        )
        cur = store.execute(sql, [*chunk, *kinds])
        names = [c[0] for c in cur.description]
        for row in cur.fetchall():
            record = dict(zip(names, row, strict=True))
            found[record["fingerprint"]] = record
    return found


def finding_by_fingerprint(store: Store, fingerprint: str) -> Finding | None:
    """The newest stored version of a finding (from any snapshot)."""
    row = store.execute(
        "SELECT data FROM findings WHERE fingerprint = ? ORDER BY id DESC LIMIT 1", [fingerprint]
    ).fetchone()
    return Finding.model_validate_json(row[0]) if row else None


def is_open(store: Store, finding: Finding) -> bool:
    """Whether the account's newest successful snapshot still has this finding."""
    latest = {s["account_id"]: s["id"] for s in latest_snapshots(store)}
    snapshot_id = latest.get(finding.account_id)
    if snapshot_id is None:
        return False
    row = store.execute(
        "SELECT 1 FROM findings WHERE snapshot_id = ? AND fingerprint = ? LIMIT 1",
        [snapshot_id, finding.fingerprint],
    ).fetchone()
    return row is not None


# -- nudges ---------------------------------------------------------------------------------------------


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


# -- building a digest ------------------------------------------------------------------------------------


@dataclass
class ResolvedItem:
    finding: Finding
    fixer: str | None = None  # Slack user id credited with the fix, when known
    how: str = ""  # "fixed" | "access_disabled"


@dataclass
class AgedItem:
    finding: Finding
    first_seen: datetime


@dataclass
class AccountDigest:
    account_id: str
    account_name: str
    snapshot_id: int | None
    scanned_at: str | None
    previous_snapshot_id: int | None
    scan_error: str | None = None
    findings: list[Finding] = field(default_factory=list)  # everything in the snapshot
    active: list[Finding] = field(default_factory=list)  # not suppressed, not snoozed, evaluated
    counts: dict[Severity, int] = field(default_factory=dict)
    previous_counts: dict[Severity, int] | None = None
    new: list[Finding] = field(default_factory=list)
    back_from_snooze: list[Finding] = field(default_factory=list)
    resolved: list[ResolvedItem] = field(default_factory=list)
    oldest_critical: list[AgedItem] = field(default_factory=list)
    offboarding: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    snoozed: list[Finding] = field(default_factory=list)
    unknown: list[Finding] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.account_name} ({self.account_id})" if self.account_name else self.account_id

    def last_good(self, now: datetime) -> str:
        """ "last good snapshot 3 h old" (the one shown instead of a failed scan) / "no earlier snapshot"."""
        from bot.scan import snapshot_age  # late: bot.scan imports much of the bot

        return snapshot_age(_parse(self.scanned_at) if self.snapshot_id is not None else None, now)

    def failure(self, now: datetime) -> str:
        """The latest scan's failure and the age of the snapshot shown instead."""
        return f"{self.scan_error or 'not scanned'} ({self.last_good(now)})"

    def change(self, severity: Severity) -> int | None:
        if self.previous_counts is None:
            return None
        return self.counts.get(severity, 0) - self.previous_counts.get(severity, 0)


@dataclass
class Digest:
    channel: str
    at: datetime
    accounts: list[AccountDigest]
    previous_at: datetime | None
    snoozes: dict[str, Snooze]
    acks: dict[str, dict]
    first_seen: dict[str, datetime]
    # Newest "fixed" answer per still-open finding: the owner said it is fixed; the scan disagrees
    # (or has not run since).
    fixed_claims: dict[str, dict] = field(default_factory=dict)

    @property
    def snapshot_ids(self) -> dict[str, int]:
        return {a.account_id: a.snapshot_id for a in self.accounts if a.snapshot_id is not None}

    def total(self, attr: str) -> int:
        return sum(len(getattr(a, attr)) for a in self.accounts)

    def counts(self) -> dict[Severity, int]:
        total: Counter[Severity] = Counter()
        for account in self.accounts:
            total.update(account.counts)
        return {s: total.get(s, 0) for s in Severity}

    def summary(self) -> dict[str, Any]:
        return {
            "counts": {s.value: n for s, n in self.counts().items()},
            "new": self.total("new"),
            "resolved": self.total("resolved"),
            "snoozed": self.total("snoozed"),
            "suppressed": self.total("suppressed"),
            "offboarding": self.total("offboarding"),
            "accounts": len(self.accounts),
        }

    def csv(self) -> str:
        """Every finding (open, new, snoozed, suppressed, unevaluated, resolved): nothing is cut."""
        out = io.StringIO()
        columns = [
            "account_id",
            "account_name",
            "state",
            "severity",
            "check_id",
            "principal_name",
            "principal_arn",
            "title",
            "detail",
            "remediation",
            "owner",
            "first_seen",
            "snoozed_until",
            "snooze_reason",
            "snoozed_by",
            "acknowledged_by",
            "resolved_by",
            "fingerprint",
        ]
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for account in self.accounts:
            new = {f.fingerprint for f in account.new}
            for f in account.findings:
                snooze = self.snoozes.get(f.fingerprint)
                if f.suppressed:
                    state = "suppressed"
                elif snooze is not None:
                    state = "snoozed"
                elif f.status == FindingStatus.UNKNOWN:
                    state = "could_not_evaluate"
                elif f.fingerprint in new:
                    state = "new"
                else:
                    state = "open"
                writer.writerow(
                    _csv_row(account, f, state, self)
                    | {
                        "snoozed_until": iso(snooze.until) if snooze else "",
                        "snooze_reason": _csv_safe(snooze.reason) if snooze else "",
                        "snoozed_by": snooze.snoozed_by if snooze else "",
                    }
                )
            for item in account.resolved:
                writer.writerow(
                    _csv_row(account, item.finding, "resolved", self) | {"resolved_by": item.fixer or ""}
                )
        return out.getvalue()


def _csv_safe(value: Any) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ is shown as text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(account: AccountDigest, f: Finding, state: str, digest: Digest) -> dict[str, str]:
    first = digest.first_seen.get(f.fingerprint)
    ack = digest.acks.get(f.fingerprint)
    return {
        "account_id": f.account_id,
        "account_name": _csv_safe(account.account_name),
        "state": state,
        "severity": f.severity.value,
        "check_id": f.check_id,
        "principal_name": _csv_safe(f.principal_name),
        "principal_arn": _csv_safe(f.principal_arn),
        "title": _csv_safe(f.title),
        "detail": _csv_safe(f.detail),
        "remediation": _csv_safe(f.remediation),
        "owner": f.owner or "",
        "first_seen": iso(first) if first else "",
        "acknowledged_by": ack["acknowledged_by"] if ack else "",
        "fingerprint": f.fingerprint,
    }


def previous_digest(store: Store, channel: str) -> dict | None:
    row = store.execute(
        "SELECT id, channel, slot, posted_at, ts, snapshots FROM digests"
        " WHERE channel = ? AND ts IS NOT NULL ORDER BY id DESC LIMIT 1",
        [channel],
    ).fetchone()
    if row is None:
        return None
    return {
        "id": row[0],
        "channel": row[1],
        "slot": row[2],
        "posted_at": row[3],
        "ts": row[4],
        "snapshots": {k: int(v) for k, v in json.loads(row[5] or "{}").items()},
    }


def record_digest(store: Store, digest: Digest, *, ts: str, slot: str | None, now: datetime) -> int:
    """Remember what a posted digest was built from: the next digest diffs against it."""
    return (
        store.db["digests"]
        .insert(
            {
                "channel": digest.channel,
                "slot": slot,
                "posted_at": iso(now),
                "ts": ts,
                "snapshots": json.dumps(digest.snapshot_ids, sort_keys=True),
                "summary": json.dumps(digest.summary(), sort_keys=True),
            }
        )
        .last_pk
    )


def _snapshot_before(store: Store, account_id: str, snapshot_id: int) -> int | None:
    row = store.execute(
        "SELECT max(id) FROM snapshots WHERE account_id = ? AND status = 'ok' AND id < ?",
        [account_id, snapshot_id],
    ).fetchone()
    return row[0] if row and row[0] is not None else None


def _first_seen(store: Store, fingerprints: list[str]) -> dict[str, datetime]:
    """When each finding first appeared in any stored snapshot."""
    seen: dict[str, datetime] = {}
    for i in range(0, len(fingerprints), 500):
        chunk = fingerprints[i : i + 500]
        marks = ",".join("?" * len(chunk))
        sql = (
            "SELECT f.fingerprint, min(s.scanned_at) FROM findings f JOIN snapshots s ON s.id = f.snapshot_id"  # noqa: S608
            " WHERE f.fingerprint IN (" + marks + ") GROUP BY f.fingerprint"
        )
        for fingerprint, first in store.execute(sql, chunk).fetchall():
            seen[fingerprint] = datetime.fromisoformat(first)
    return seen


def _counts(findings: Iterable[Finding]) -> dict[Severity, int]:
    counted = Counter(f.severity for f in findings)
    return {s: counted.get(s, 0) for s in Severity}


def build_digest(
    store: Store,
    *,
    channel: str,
    now: datetime,
    owners: Any = None,
    oldest_limit: int = 5,
) -> Digest:
    """Diff each account's newest snapshot against the previous digest's (or, for the first digest,
    the snapshot before it). Reads SQLite only; expires due snoozes as a side effect.

    ``owners``, when given, is an object with ``owner_of(principal_arn) -> str | None`` used for
    findings the scan stored without an owner.
    """
    expire_snoozes(store, now)
    previous = previous_digest(store, channel)
    previous_at = _parse(previous["posted_at"]) if previous else None
    snoozes = active_snoozes(store, now)
    back = snoozes_ended_between(store, previous_at, now)
    acks = acknowledgements(store)
    latest_ok = {s["account_id"]: s for s in latest_snapshots(store)}
    latest_any = {s["account_id"]: s for s in latest_snapshots(store, status=None)}
    accounts: list[AccountDigest] = []
    for account_id in sorted(set(latest_ok) | set(latest_any)):
        snap = latest_ok.get(account_id)
        newest = latest_any[account_id]
        scan_error = None
        if newest["status"] != "ok" and (snap is None or newest["id"] > snap["id"]):
            scan_error = newest.get("error") or "the scan failed"
        if snap is None:
            accounts.append(
                AccountDigest(
                    account_id=account_id,
                    account_name=newest.get("account_name") or "",
                    snapshot_id=None,
                    scanned_at=newest["scanned_at"],
                    previous_snapshot_id=None,
                    scan_error=scan_error,
                )
            )
            continue
        baseline = (previous or {}).get("snapshots", {}).get(account_id)
        if previous is None or baseline is None:
            baseline = _snapshot_before(store, account_id, snap["id"])
        if baseline == snap["id"]:
            # No new scan since the previous digest: compare with what that digest compared against.
            baseline = _snapshot_before(store, account_id, snap["id"])
        current = findings_of(store, [snap["id"]])
        before = findings_of(store, [baseline]) if baseline else []
        for f in current:
            if f.owner is None and owners is not None and f.principal_arn:
                f.owner = owners.owner_of(f.principal_arn)
        digest = AccountDigest(
            account_id=account_id,
            account_name=snap.get("account_name") or "",
            snapshot_id=snap["id"],
            scanned_at=snap["scanned_at"],
            previous_snapshot_id=baseline,
            scan_error=scan_error,
            findings=current,
        )
        for f in current:
            if f.suppressed:
                digest.suppressed.append(f)
            elif f.fingerprint in snoozes:
                digest.snoozed.append(f)
            elif f.status == FindingStatus.UNKNOWN:
                digest.unknown.append(f)
            else:
                digest.active.append(f)
        digest.counts = _counts(digest.active)
        before_fps = {f.fingerprint for f in before}
        if baseline:
            prior_at = previous_at or now
            snoozed_then = _snoozed_at(store, prior_at)
            prior_active = [
                f
                for f in before
                if not f.suppressed
                and f.status != FindingStatus.UNKNOWN
                and f.fingerprint not in snoozed_then
            ]
            digest.previous_counts = _counts(prior_active)
        digest.new = [f for f in digest.active if f.fingerprint not in before_fps]
        digest.back_from_snooze = [
            f for f in digest.active if f.fingerprint in back and f.fingerprint in before_fps
        ]
        current_fps = {f.fingerprint for f in current}
        gone = [
            f
            for f in before
            if f.fingerprint not in current_fps and not f.suppressed and f.status != FindingStatus.UNKNOWN
        ]
        credit = marks_of(store, [f.fingerprint for f in gone], ("fixed", "access_disabled"))
        digest.resolved = [
            ResolvedItem(
                f,
                fixer=(credit.get(f.fingerprint) or {}).get("marked_by"),
                how=(credit.get(f.fingerprint) or {}).get("kind", ""),
            )
            for f in sort_findings(gone)
        ]
        digest.offboarding = [f for f in digest.active if f.check_id in OFFBOARDING_CHECKS]
        accounts.append(digest)
    # First-seen times for everything listed (criticals need them for "oldest unresolved").
    everything = [f.fingerprint for a in accounts for f in a.findings]
    first_seen = _first_seen(store, everything)
    for account in accounts:
        criticals = [f for f in account.active if f.severity == Severity.CRITICAL]
        aged = [AgedItem(f, first_seen.get(f.fingerprint) or now) for f in criticals]
        aged.sort(
            key=lambda item: (item.first_seen, item.finding.check_id, item.finding.principal_name or "")
        )
        account.oldest_critical = aged[:oldest_limit]
    # "Fixed" answers that a later scan contradicts (answers newer than the scan wait for the next one).
    scanned = {f.fingerprint: a.scanned_at or "" for a in accounts for f in a.active}
    claims = marks_of(store, list(scanned), ("fixed",))
    claims = {fp: claim for fp, claim in claims.items() if claim["marked_at"] < scanned[fp]}
    return Digest(
        channel=channel,
        at=now,
        accounts=accounts,
        previous_at=previous_at,
        snoozes=snoozes,
        acks=acks,
        first_seen=first_seen,
        fixed_claims=claims,
    )


def _snoozed_at(store: Store, moment: datetime) -> set[str]:
    """Fingerprints that were snoozed at ``moment`` (a snooze made that very second came after it)."""
    rows = store.execute(
        "SELECT fingerprint FROM snoozes WHERE snoozed_at < ? AND until > ?", [iso(moment), iso(moment)]
    ).fetchall()
    return {row[0] for row in rows}


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


def text_report(digest: Digest) -> str:
    """The digest as readable text (``iamwarden digest --dry-run``)."""
    lines = [f"IAM hygiene digest for {digest.channel} at {iso(digest.at)}"]
    if digest.previous_at:
        lines.append(f"Changes since the previous digest ({iso(digest.previous_at)})")
    if not digest.accounts:
        lines.append("No scan has been stored yet: run `iamwarden scan` first.")
    for account in digest.accounts:
        lines.append("")
        if account.snapshot_id is None:
            # Never "0 critical": no successful scan means nothing is known about this account.
            lines.append(f"Account {account.label}: no successful scan yet")
            lines.append(f"  ! {account.failure(digest.at) if account.scan_error else 'not scanned'}")
            continue
        lines.append(f"Account {account.label}: scanned {account.scanned_at or 'never'}")
        if account.scan_error:
            lines.append(f"  ! the latest scan failed: {account.failure(digest.at)}")
        parts = []
        for severity in Severity:
            change = account.change(severity)
            delta = f" ({change:+d})" if change else ""
            parts.append(f"{account.counts.get(severity, 0)} {severity.value}{delta}")
        lines.append("  " + ", ".join(parts))
        lines.append(
            f"  {len(account.new)} new, {len(account.resolved)} resolved, {len(account.snoozed)} snoozed,"
            f" {len(account.suppressed)} suppressed, {len(account.unknown)} could not be evaluated"
        )
        sections = [
            ("Offboarding", account.offboarding),
            ("New since the previous digest", account.new),
            ("Back from snooze", account.back_from_snooze),
        ]
        for title, items in sections:
            if items:
                lines.append(f"  {title}:")
                lines += [f"    - {_line(f)}" for f in items]
        if account.resolved:
            lines.append("  Resolved:")
            for item in account.resolved:
                credit = f" (fixed by {item.fixer})" if item.fixer else ""
                lines.append(f"    - {_line(item.finding)}{credit}")
        if account.oldest_critical:
            lines.append("  Oldest unresolved critical:")
            for aged in account.oldest_critical:
                lines.append(f"    - {_line(aged.finding)} since {aged.first_seen.date().isoformat()}")
    return "\n".join(lines) + "\n"


def _line(f: Finding) -> str:
    owner = f" owner {f.owner}" if f.owner else ""
    return f"[{f.severity.value}] {f.check_id} {f.principal_name or f.account_id}: {f.title}{owner}"
