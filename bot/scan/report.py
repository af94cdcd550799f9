"""What a scan found, said: per-account summary lines, a failed account's snapshot age, and the
findings as the JSON document, CSV and table ``iamwarden scan`` prints."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.findings import FINDING_COLUMNS, Finding, FindingStatus, Severity, public_of_stored, sort_stored
from bot.scan.orchestration import AccountScan
from bot.store import iso


def summary_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Open (failed, unsuppressed) findings per severity, plus "unknown" and "suppressed"."""
    counts = {s.value: 0 for s in Severity} | {"unknown": 0, "suppressed": 0}
    for f in findings:
        if f.suppressed:
            counts["suppressed"] += 1
        elif f.status == FindingStatus.UNKNOWN:
            counts["unknown"] += 1
        else:
            counts[f.severity.value] += 1
    return counts


def snapshot_age(last_good_at: datetime | None, now: datetime) -> str:
    """ "last good snapshot 3 h old" / "no earlier snapshot": what answers use while an account fails."""
    if last_good_at is None:
        return "no earlier snapshot"
    minutes = max(0, int((now - last_good_at).total_seconds() // 60))
    if minutes < 60:
        age = f"{minutes} min"
    elif minutes < 48 * 60:
        age = f"{minutes // 60} h"
    else:
        age = f"{minutes // (24 * 60)} days"
    return f"last good snapshot {age} old"


def failure_text(scan: AccountScan) -> str:
    """Why the account failed and how old the snapshot answers still use is."""
    return f"{scan.error} ({snapshot_age(scan.last_good_at, scan.scanned_at or datetime.now(UTC))})"


def summary_line(scan: AccountScan) -> str:
    if scan.error:
        return f"{scan.name or scan.account_id or 'this account'}: could not be scanned: {failure_text(scan)}"
    c = summary_counts(scan.findings)
    parts = [f"{c[s.value]} {s.value}" for s in Severity if c[s.value]]
    tail = []
    if c["unknown"]:
        tail.append(f"{c['unknown']} could not evaluate")
    if c["suppressed"]:
        tail.append(f"{c['suppressed']} suppressed")
    head = ", ".join(parts) if parts else "no open findings"
    label = f"{scan.account_id}" + (f" ({scan.name})" if scan.name else "")
    return f"{label}: {head}" + (f"; {', '.join(tail)}" if tail else "") + f" · {scan.api_calls} API calls"


def _requests_by_operation(scan: AccountScan) -> dict[str, int]:
    return dict(scan.requests_by_operation)


def public_findings(scan: AccountScan) -> list[dict[str, Any]]:
    """The account's findings as the findings JSON's objects (``Finding.public()``), in the stored
    order: from the rows the scan kept (``scan_accounts(keep_rows=True)``) when it kept them, else
    read back from the store."""
    if scan.kept_rows is None:
        return [f.public() for f in scan.findings]
    data = FINDING_COLUMNS.index("data") - 1  # rows are the columns after snapshot_id
    return [public_of_stored(d) for d in sort_stored(json.loads(row[data]) for row in scan.kept_rows)]


def scan_document(scans: list[AccountScan], scanned_at: datetime) -> dict[str, Any]:
    """The findings JSON document (DESIGN.md): accounts, scanned_at, api_calls, findings.

    ``api_calls`` counts HTTP requests sent, retries included; ``api_requests_by_operation``
    breaks them down (``"iam:GetAccountAuthorizationDetails": 3``)."""
    by_operation: dict[str, int] = {}
    for s in scans:
        for operation, count in _requests_by_operation(s).items():
            by_operation[operation] = by_operation.get(operation, 0) + count
    doc: dict[str, Any] = {
        "scanned_at": iso(scanned_at),
        "api_calls": sum(s.api_calls for s in scans),
        "api_requests_by_operation": dict(sorted(by_operation.items())),
        "accounts": [
            {
                "account_id": s.account_id,
                "name": s.name,
                "snapshot_id": s.snapshot_id,
                "api_calls": s.api_calls,
                "api_requests_by_operation": dict(sorted(_requests_by_operation(s).items())),
                "status": "ok" if s.ok else "failed",
                "error": s.error,
            }
            for s in scans
        ],
        "findings": [f for s in scans for f in public_findings(s)],
    }
    if len(scans) == 1:
        doc["account_id"] = scans[0].account_id
    return doc


CSV_FIELDS = [
    "account_id",
    "check_id",
    "severity",
    "status",
    "principal_arn",
    "principal_name",
    "title",
    "detail",
    "cis",
    "owner",
    "fingerprint",
    "suppressed",
    "suppression_reason",
    "remediation",
]


def write_csv(scans: list[AccountScan], out: Any) -> None:
    """Every finding of ``scans`` as CSV rows (``CSV_FIELDS``), CIS controls space-separated."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for s in scans:
        for row in public_findings(s):
            row["cis"] = " ".join(row["cis"])
            writer.writerow(row)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def write_table(scans: list[AccountScan], out: Any) -> None:
    """The findings as a terminal table, then one summary line per account."""
    rows = []
    for s in scans:
        for f in s.findings:
            mark = (
                "suppressed"
                if f.suppressed
                else ("?unknown" if f.status == FindingStatus.UNKNOWN else f.severity.value)
            )
            rows.append(
                (mark, f.check_id, f.account_id, _clip(f.principal_name or "-", 28), _clip(f.detail, 90))
            )
    header = ("SEVERITY", "CHECK", "ACCOUNT", "PRINCIPAL", "DETAIL")
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for r in [header, *rows]:
            out.write("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] + "\n")
        out.write("\n")
    for s in scans:
        out.write(summary_line(s) + "\n")
