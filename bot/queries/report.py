"""The security team's findings report: a filter typed as words, the matching open findings, the CSV."""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.checks.catalog import CHECKS
from bot.findings import Finding, FindingStatus, Severity, findings_of
from bot.queries.book import SnapshotBook, SnapshotInfo, current_book, next_scan_at
from bot.services import Services


@dataclass
class FindingsFilter:
    severity: Severity | None = None
    check_ids: set[str] = field(default_factory=set)
    account_ids: set[str] = field(default_factory=set)

    def describe(self) -> str:
        parts = []
        if self.severity:
            parts.append(f"severity {self.severity.value} or worse")
        if self.check_ids:
            parts.append("check " + ", ".join(sorted(self.check_ids)))
        if self.account_ids:
            parts.append("account " + ", ".join(sorted(self.account_ids)))
        return "; ".join(parts) or "all"

    def matches(self, finding: Finding) -> bool:
        if self.severity and not finding.severity.at_least(self.severity):
            return False
        if self.check_ids and finding.check_id.lower() not in self.check_ids:
            return False
        return not (self.account_ids and finding.account_id not in self.account_ids)


class BadFilter(ValueError):
    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


def known_check_ids(services: Services, book: SnapshotBook, catalog: Iterable[str] | None = None) -> set[str]:
    """Check ids a filter may name: the catalog's (``bot.checks.catalog`` unless ``catalog`` is
    given) and any in the latest snapshots (a check a newer or older version ran)."""
    ids = set(CHECKS if catalog is None else catalog)
    if book.snapshot_ids:
        marks = ",".join("?" * len(book.snapshot_ids))
        sql = f"SELECT DISTINCT check_id FROM findings WHERE snapshot_id IN ({marks})"  # noqa: S608
        ids |= {row[0] for row in services.store.execute(sql, book.snapshot_ids).fetchall()}
    return ids


def parse_findings_filter(
    words: list[str], book: SnapshotBook, known_check_ids: Iterable[str]
) -> FindingsFilter:
    """Each word is a severity, a check id or an account (id or name). Raises BadFilter."""
    checks = {c.lower() for c in known_check_ids}
    accounts = {s.account_id: s.account_id for s in book.snapshots}
    accounts.update({s.account_name.lower(): s.account_id for s in book.snapshots if s.account_name})
    result = FindingsFilter()
    for word in words:
        lower = word.lower()
        if lower in {s.value for s in Severity}:
            result.severity = Severity(lower)
        elif lower in checks:
            result.check_ids.add(lower)
        elif lower in accounts:
            result.account_ids.add(accounts[lower])
        elif re.fullmatch(r"\d{12}", word):
            result.account_ids.add(word)  # an account with no snapshot: an honest empty answer
        else:
            options = [s.value for s in Severity] + sorted(checks) + sorted(accounts)
            close = difflib.get_close_matches(lower, options, n=3, cutoff=0.5)
            raise BadFilter(f"`{word}` is not a severity, a check id or an account I know.", close)
    return result


@dataclass
class FindingsReport:
    filter: FindingsFilter
    findings: list[Finding]  # open, matching, most severe first
    suppressed: int
    snapshots: list[SnapshotInfo]
    next_scan: datetime | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(f.severity.value for f in self.findings if f.status == FindingStatus.FAIL)

    @property
    def unknown(self) -> int:
        return sum(1 for f in self.findings if f.status == FindingStatus.UNKNOWN)


def findings_report(
    services: Services, flt: FindingsFilter, *, book: SnapshotBook | None = None
) -> FindingsReport:
    book = book or current_book(services)
    every = [f for f in findings_of(services.store, book.snapshot_ids) if flt.matches(f)]
    open_findings = [f for f in every if not f.suppressed]
    return FindingsReport(
        filter=flt,
        findings=open_findings,
        suppressed=len(every) - len(open_findings),
        snapshots=book.snapshots,
        next_scan=None if book.snapshots else next_scan_at(services),
    )


CSV_COLUMNS = (
    "account_id",
    "severity",
    "status",
    "check_id",
    "principal_name",
    "principal_arn",
    "title",
    "detail",
    "remediation",
    "cis",
    "owner",
    "fingerprint",
)


def findings_csv(findings: Iterable[Finding]) -> str:
    """The findings as CSV (the findings JSON fields); cells that a spreadsheet would run as a
    formula are prefixed with ``'`` (IAM names and tags are attacker-controlled text)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for f in findings:
        data = f.public()
        writer.writerow([csv_cell(";".join(data[c]) if c == "cis" else data.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def csv_cell(value: Any) -> str:
    """One CSV cell as text; a leading ``= + - @`` (or tab, CR) is defused with ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
