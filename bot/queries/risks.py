"""A member's risks: the open findings on every IAM principal mapped to them, most severe first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.findings import Finding, FindingStatus, findings_of, is_open, open_count
from bot.identity import PrincipalRef
from bot.queries.book import SnapshotBook, SnapshotInfo, current_book, next_scan_at
from bot.services import Services


@dataclass
class MemberRisks:
    """``status``: ``no-snapshot`` (nothing scanned yet), ``unmapped`` (no IAM principal linked to
    the member) or ``ok`` (``findings`` may be empty: the member is clean)."""

    user_id: str
    status: str
    principals: list[PrincipalRef]
    findings: list[Finding]
    snapshots: list[SnapshotInfo]
    next_scan: datetime | None = None
    tag_key: str = "email"
    email: str | None = None  # the member's Slack email: what an IAM user's tag must say to link

    @property
    def counts(self) -> Counter[str]:
        """Open findings by severity (a check that could not evaluate is not one of them)."""
        return Counter(f.severity.value for f in self.findings if is_open(f))

    @property
    def open_count(self) -> int:
        """The member's open findings, counted as every surface counts them."""
        return open_count(self.findings)

    @property
    def unknown(self) -> int:
        """Checks on the member's principals that could not evaluate (shown, never counted as open)."""
        return sum(1 for f in self.findings if f.status == FindingStatus.UNKNOWN)


def member_risks(services: Services, user_id: str, *, book: SnapshotBook | None = None) -> MemberRisks:
    """The member's open findings across every principal mapped to them, most severe first."""
    book = book or current_book(services)
    base = dict(
        user_id=user_id,
        snapshots=book.snapshots,
        tag_key=services.config.identity.tag_key,
        email=book.identity.email_of(user_id),
    )
    if not book.snapshots:
        return MemberRisks(
            status="no-snapshot", principals=[], findings=[], next_scan=next_scan_at(services), **base
        )
    principals = book.identity.principals_of(user_id)
    if not principals:
        return MemberRisks(status="unmapped", principals=[], findings=[], **base)
    return MemberRisks(
        status="ok", principals=principals, findings=principal_findings(services, book, principals), **base
    )


def principal_findings(
    services: Services, book: SnapshotBook, principals: Iterable[PrincipalRef]
) -> list[Finding]:
    """Open (unsuppressed) findings of these principals in the latest snapshots."""
    arns = [p.arn for p in principals]
    found = findings_of(services.store, book.snapshot_ids, principal_arns=arns)
    return [f for f in found if not f.suppressed]


def principal_risks(
    services: Services, book: SnapshotBook, principals: list[PrincipalRef], *, asked_by: str
) -> MemberRisks:
    """The open findings of principals someone named (``/iam risks``), shaped as a member's risks
    so they render alike; ``asked_by`` is the member who asked."""
    return MemberRisks(
        user_id=asked_by,
        status="ok",
        principals=principals,
        findings=principal_findings(services, book, principals),
        snapshots=book.snapshots,
    )
