"""What people did about a finding: acknowledgements and marks ("fixed", "not mine", "access disabled",
"notified": who did what, used to credit the fixer), and the stored finding a button names."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.findings import Finding, latest_snapshots
from bot.store import Store, iso


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
