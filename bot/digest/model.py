"""What a digest is: per account, the findings it lists and how they changed; the errors and records
the rest of the package shares."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.findings import Finding, FindingStatus, Severity
from bot.scan import snapshot_age
from bot.store import iso

OFFBOARDING_CHECKS = ("OFFBOARDED_USER_ACTIVE", "UNOWNED_USER")


class DigestError(ValueError):
    """Something a person asked for that cannot be done; the message says why in plain words."""


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


@dataclass(frozen=True)
class Snooze:
    id: int
    fingerprint: str
    reason: str
    snoozed_by: str
    snoozed_at: datetime
    until: datetime


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
