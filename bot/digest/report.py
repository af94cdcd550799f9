"""The digest as readable text (``iamwarden digest --dry-run``)."""

from __future__ import annotations

from bot.digest.model import Digest
from bot.findings import Finding, Severity
from bot.store import iso


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
