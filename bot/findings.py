"""Findings and stored snapshots: the contract between the scan and everything that reads it.

A scan of one account produces one snapshot row (its time, API-call count, status and the
collected inventory as JSON) and that snapshot's findings. Answers, digests and alerts read these
rows; they never call AWS live.

The findings JSON (DESIGN.md) is ``Finding.public()``: ``check_id``, ``severity``, ``principal_arn``,
``principal_name``, ``title``, ``detail``, ``remediation``, ``cis``, ``owner``; plus ``account_id``,
``fingerprint``, ``status`` and suppression fields, which scripts may also use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlite_utils
from pydantic import BaseModel, Field, computed_field

from bot.store import Store, iso, migrations

if TYPE_CHECKING:
    from bot.checks.catalog import Check

log = logging.getLogger(__name__)


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most severe; sort ascending to put critical first."""
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank <= other.rank


_SEVERITY_RANK = {severity: index for index, severity in enumerate(Severity)}


class FindingStatus(StrEnum):
    FAIL = "fail"  # the check evaluated and found a problem
    UNKNOWN = "unknown"  # the check could not evaluate (a source was unavailable); never a pass


class Finding(BaseModel):
    check_id: str
    severity: Severity
    account_id: str
    principal_arn: str | None = None
    principal_name: str | None = None
    title: str
    detail: str = ""
    remediation: str = ""
    cis: list[str] = Field(default_factory=list)
    owner: str | None = None  # Slack user id when known
    status: FindingStatus = FindingStatus.FAIL
    # What makes this finding distinct beyond check+account+principal (e.g. an access key id).
    detail_key: str = ""
    suppressed: bool = False
    suppression_reason: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def fingerprint(self) -> str:
        """Stable across scans: check + account + principal + detail key (computed once: digests
        over tens of thousands of findings read it many times)."""
        raw = "|".join([self.check_id, self.account_id, self.principal_arn or "", self.detail_key])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def check(self) -> Check | None:
        """The catalog entry of this finding's check (its title, severity, risk, remediation and CIS
        controls), looked up when asked (never stored); None for a check this version does not have."""
        from bot.checks.catalog import CHECKS  # late: the catalog imports this module (checks make Findings)

        return CHECKS.get(self.check_id)

    @property
    def risk(self) -> str:
        """Why the finding matters, as its check says ("" when the catalog does not know the check)."""
        check = self.check
        return check.risk if check is not None else ""

    def public(self) -> dict[str, Any]:
        """One object of the findings JSON (the scripted contract). Escalation findings add
        ``hop_count`` and ``escalation_path`` (the hops, each with its statements)."""
        out = self._public()
        if "hop_count" in self.extra:
            out["hop_count"] = self.extra["hop_count"]
            out["escalation_path"] = self.extra.get("hops", [])
        return out

    def _public(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "severity": self.severity.value,
            "principal_arn": self.principal_arn,
            "principal_name": self.principal_name,
            "title": self.title,
            "detail": self.detail,
            "remediation": self.remediation,
            "cis": list(self.cis),
            "owner": self.owner,
            "account_id": self.account_id,
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "suppressed": self.suppressed,
            "suppression_reason": self.suppression_reason,
        }


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.severity.rank, f.check_id, f.principal_name or "", f.detail_key))


def public_of_stored(data: Mapping[str, Any]) -> dict[str, Any]:
    """``Finding.public()`` of a stored finding (its ``findings.data`` JSON, decoded), without
    modelling it again: 38,000 findings of a 10,000-user account took ~1.4 s to re-model."""
    out = {key: data[key] for key in _PUBLIC_KEYS}
    out["cis"] = list(out["cis"])
    extra = data.get("extra") or {}
    if "hop_count" in extra:
        out["hop_count"] = extra["hop_count"]
        out["escalation_path"] = extra.get("hops", [])
    return out


# ``Finding._public``'s keys, in its order (the findings JSON's).
_PUBLIC_KEYS = (
    "check_id",
    "severity",
    "principal_arn",
    "principal_name",
    "title",
    "detail",
    "remediation",
    "cis",
    "owner",
    "account_id",
    "fingerprint",
    "status",
    "suppressed",
    "suppression_reason",
)


def sort_stored(datas: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Stored findings (decoded ``findings.data``) in ``sort_findings``' order."""
    return sorted(
        datas,
        key=lambda d: (
            Severity(d["severity"]).rank,
            d["check_id"],
            d["principal_name"] or "",
            d["detail_key"],
        ),
    )


@migrations()
def m010_snapshots_and_findings(db: sqlite_utils.Database) -> None:
    db["snapshots"].create(
        {
            "id": int,
            "account_id": str,
            "account_name": str,
            "scanned_at": str,
            "api_calls": int,
            "status": str,  # "ok" | "failed"
            "error": str,
            "inventory": str,  # JSON of the collected snapshot (credential report rows, GAAD, …)
        },
        pk="id",
    )
    db["snapshots"].create_index(["account_id", "scanned_at"])
    db["findings"].create(
        {
            "id": int,
            "snapshot_id": int,
            "account_id": str,
            "fingerprint": str,
            "check_id": str,
            "severity": str,
            "status": str,
            "principal_arn": str,
            "principal_name": str,
            "owner": str,
            "suppressed": int,
            "data": str,  # Finding JSON
        },
        pk="id",
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )
    db["findings"].create_index(["snapshot_id"])
    db["findings"].create_index(["principal_arn"])
    db["findings"].create_index(["fingerprint"])


def finding_rows(findings: Iterable[Finding]) -> list[tuple]:
    """The ``findings`` table's columns after ``snapshot_id`` (``FINDING_COLUMNS[1:]``), one
    tuple a finding: made where the checks ran (a worker process), stored by the scan."""
    return [
        (
            f.account_id,
            f.fingerprint,
            f.check_id,
            f.severity.value,
            f.status.value,
            f.principal_arn,
            f.principal_name,
            f.owner,
            int(f.suppressed),
            f.model_dump_json(),
        )
        for f in findings
    ]


def inventory_json(inventory: dict[str, Any] | None) -> str | None:
    return json.dumps(inventory, default=str) if inventory is not None else None


def save_snapshot(
    store: Store,
    *,
    account_id: str,
    scanned_at: datetime,
    api_calls: int,
    inventory: dict[str, Any] | None,
    findings: Iterable[Finding] = (),
    account_name: str = "",
    status: str = "ok",
    error: str | None = None,
    rows: list[tuple] | None = None,
    inventory_text: str | None = None,
) -> int:
    """Store one account's snapshot and its findings atomically; returns the snapshot id.
    ``rows`` (``finding_rows``) and ``inventory_text`` (``inventory_json``) stand for
    ``findings`` and ``inventory`` already serialised, by the process that ran the checks."""
    if rows is None:
        rows = finding_rows(findings)
    if inventory_text is None:
        inventory_text = inventory_json(inventory)
    with store.transaction() as db:
        snapshot_id = (
            db["snapshots"]
            .insert(
                {
                    "account_id": account_id,
                    "account_name": account_name,
                    "scanned_at": iso(scanned_at),
                    "api_calls": api_calls,
                    "status": status,
                    "error": error,
                    "inventory": inventory_text,
                }
            )
            .last_pk
        )
        # The table's columns are fixed by its migration: one prepared INSERT for every row
        # (sqlite-utils' insert_all re-derived the columns and listed the tables per batch).
        db.conn.executemany(
            f"INSERT INTO findings ({', '.join(FINDING_COLUMNS)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' * len(FINDING_COLUMNS))})",
            ((snapshot_id, *row) for row in rows),
        )
    return snapshot_id


FINDING_COLUMNS = (
    "snapshot_id",
    "account_id",
    "fingerprint",
    "check_id",
    "severity",
    "status",
    "principal_arn",
    "principal_name",
    "owner",
    "suppressed",
    "data",
)


def latest_snapshots(store: Store, *, status: str | None = "ok") -> list[dict[str, Any]]:
    """The newest snapshot row per account (without the inventory JSON)."""
    where = "WHERE status = ?" if status else ""
    params = [status] if status else []
    sql = f"""
        SELECT id, account_id, account_name, scanned_at, api_calls, status, error FROM snapshots s
        WHERE id = (SELECT max(id) FROM snapshots t WHERE t.account_id = s.account_id {where.replace("WHERE", "AND")})
        ORDER BY account_id
    """  # noqa: S608 - only fixed fragments are interpolated
    return [
        dict(zip([c[0] for c in cur.description], row, strict=True))
        for cur in [store.execute(sql, params)]
        for row in cur.fetchall()
    ]


def snapshot_inventory(store: Store, snapshot_id: int) -> dict[str, Any] | None:
    row = store.execute("SELECT inventory FROM snapshots WHERE id = ?", [snapshot_id]).fetchone()
    return json.loads(row[0]) if row and row[0] else None


class StoredFindings(Sequence["Finding"]):
    """One stored snapshot's findings, read from the database each time they are iterated: a
    scan's result names its findings without holding them (1,000 accounts' 155,000 findings were
    ~600 MB held until the scan ended). Same order as when stored; ``len`` needs no read."""

    def __init__(self, store: Store, snapshot_id: int, count: int) -> None:
        self._store, self._snapshot_id, self._count = store, snapshot_id, count

    def _load(self) -> list[Finding]:
        return findings_of(self._store, [self._snapshot_id])

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Finding]:
        return iter(self._load())

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"StoredFindings(snapshot {self._snapshot_id}, {self._count} findings)"


def findings_of(
    store: Store, snapshot_ids: Iterable[int], *, principal_arns: Iterable[str] | None = None
) -> list[Finding]:
    ids = list(snapshot_ids)
    if not ids:
        return []
    sql = f"SELECT data FROM findings WHERE snapshot_id IN ({','.join('?' * len(ids))})"  # noqa: S608
    params: list[Any] = list(ids)
    if principal_arns is not None:
        arns = list(principal_arns)
        if not arns:
            return []
        sql += f" AND principal_arn IN ({','.join('?' * len(arns))})"
        params += arns
    return sort_findings(Finding.model_validate_json(row[0]) for row in store.execute(sql, params).fetchall())


def latest_findings(store: Store, *, principal_arns: Iterable[str] | None = None) -> list[Finding]:
    """Findings of the newest successful snapshot of every account."""
    return findings_of(store, [s["id"] for s in latest_snapshots(store)], principal_arns=principal_arns)


def is_open(finding: Finding) -> bool:
    """An open finding: the check evaluated and failed, and no suppression applies. A check that
    could not evaluate is not open (nor a pass): it is counted and listed as "could not evaluate"."""
    return finding.status == FindingStatus.FAIL and not finding.suppressed


def open_count(findings: Iterable[Finding]) -> int:
    """How many open findings there are: the one count every surface (scan, /iam findings, digest,
    App Home, the demo) shows."""
    return sum(1 for f in findings if is_open(f))


def _digest_references(store: Store) -> set[int]:
    """Snapshot ids the newest digest of each channel was built from: the next digest diffs against them."""
    if not store.db["digests"].exists():
        return set()
    rows = store.execute(
        "SELECT snapshots FROM digests d WHERE id IN (SELECT max(id) FROM digests GROUP BY channel)"
        " OR id IN (SELECT max(id) FROM digests WHERE ts IS NOT NULL GROUP BY channel)"
    ).fetchall()
    return {int(v) for (doc,) in rows for v in json.loads(doc or "{}").values()}


def snapshots_to_keep(
    rows: Iterable[tuple[int, str, str, str]], *, keep: int, weekly_days: int, now: datetime
) -> set[int]:
    """Which of (id, account_id, scanned_at, status) to keep: per account its newest ``keep``, its
    newest successful one (what answers read), and the newest successful one of each ISO week of the
    last ``weekly_days`` days."""
    kept: set[int] = set()
    by_account: dict[str, list[tuple[int, str, str]]] = {}
    for snapshot_id, account_id, scanned_at, status in rows:
        by_account.setdefault(account_id, []).append((snapshot_id, scanned_at, status))
    since = iso(now - timedelta(days=weekly_days))
    for snapshots in by_account.values():
        snapshots.sort(key=lambda s: s[0], reverse=True)  # newest first
        kept |= {s[0] for s in snapshots[:keep]}
        kept |= {next((s[0] for s in snapshots if s[2] == "ok"), snapshots[0][0])}
        weeks: set[tuple[int, int]] = set()
        for snapshot_id, scanned_at, status in snapshots:
            week = datetime.fromisoformat(scanned_at).isocalendar()[:2]
            if status == "ok" and scanned_at >= since and week not in weeks:
                weeks.add(week)
                kept.add(snapshot_id)
    return kept


def prune_snapshots(store: Store, *, keep: int, weekly_days: int, now: datetime) -> int:
    """Delete the snapshots (and their findings) retention does not keep, then give the space back.
    Never an account's latest snapshot nor one the newest digest of a channel diffs against.
    Returns how many snapshots were deleted."""
    rows = store.execute("SELECT id, account_id, scanned_at, status FROM snapshots").fetchall()
    kept = snapshots_to_keep(rows, keep=keep, weekly_days=weekly_days, now=now) | _digest_references(store)
    doomed = [row[0] for row in rows if row[0] not in kept]
    for start in range(0, len(doomed), 500):
        chunk = doomed[start : start + 500]
        marks = ",".join("?" * len(chunk))
        with store.transaction() as db:
            db.execute(f"DELETE FROM findings WHERE snapshot_id IN ({marks})", chunk)  # noqa: S608
            db.execute(f"DELETE FROM snapshots WHERE id IN ({marks})", chunk)  # noqa: S608
    if doomed:
        store.reclaim_space(at=now)
    return len(doomed)


def apply_retention(store: Store, scan: Any, *, now: datetime) -> int:
    """Retention after a scan is stored: ``[scan] keep_snapshots`` and ``keep_weekly_days``. A failure
    (another process holding the lock past the busy timeout) is logged and retried after the next scan:
    the scan itself is stored and stands."""
    try:
        return prune_snapshots(store, keep=scan.keep_snapshots, weekly_days=scan.keep_weekly_days, now=now)
    except sqlite3.Error as exc:
        log.warning("snapshot retention deferred to the next scan: %s", exc)
        return 0
