"""Building a digest: each account's newest snapshot diffed against the snapshot the previous digest in
the same channel was built from, with the digest's own state (snoozes, acknowledgements, marks)
applied; and the record of a posted digest, which the next one diffs against."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.digest.marks import acknowledgements, marks_of
from bot.digest.model import (
    OFFBOARDING_CHECKS,
    AccountDigest,
    AgedItem,
    Digest,
    ResolvedItem,
    _parse,
)
from bot.digest.snoozes import active_snoozes, expire_snoozes, snoozes_ended_between
from bot.findings import (
    Finding,
    FindingStatus,
    Severity,
    findings_of,
    latest_snapshots,
    sort_findings,
)
from bot.store import Store, iso


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
