"""The scan's AWS-free half: one inventory in, its findings out (suppressions applied, owners set)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bot.checks.catalog import CheckContext, Owners, iter_checks
from bot.findings import Finding, sort_findings
from bot.settings import Config, SuppressionConfig


def _suppression_expired(rule: SuppressionConfig, now: datetime) -> bool:
    if not rule.expires:
        return False
    try:
        expires = datetime.fromisoformat(rule.expires.replace("Z", "+00:00"))
    except ValueError:
        return True  # an unreadable expiry never hides a finding
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=now.tzinfo)
    return expires <= now


def _suppression_matches(rule: SuppressionConfig, finding: Finding) -> bool:
    if rule.fingerprint:
        return rule.fingerprint == finding.fingerprint
    if not rule.check_id or rule.check_id != finding.check_id:
        return False
    if rule.principal is None or rule.principal == "*":
        return True
    return rule.principal in (finding.principal_arn, finding.principal_name)


def apply_suppressions(
    findings: Iterable[Finding], rules: Iterable[SuppressionConfig], *, now: datetime
) -> list[Finding]:
    """Mark findings matched by an unexpired rule as suppressed (listed, never hidden)."""
    live = [r for r in rules if not _suppression_expired(r, now)]
    out = []
    for finding in findings:
        rule = next((r for r in live if _suppression_matches(r, finding)), None)
        if rule is not None:
            until = f" (until {rule.expires})" if rule.expires else ""
            finding = finding.model_copy(
                update={"suppressed": True, "suppression_reason": rule.reason + until}
            )
        out.append(finding)
    return out


def run_checks(
    inventory: Mapping[str, Any],
    config: Config,
    *,
    now: datetime,
    owners: Owners | None = None,
    known_accounts: Iterable[str] = (),
) -> list[Finding]:
    """Every check of the catalog over one snapshot; suppressions applied, owners set when known.

    ``known_accounts`` are account ids that are ours besides ``[[accounts]]`` (the organization's
    members found by the scan): a role trusting one of them is not trusting an outside account.
    """
    known = frozenset(known_accounts) | {a.id for a in config.accounts}
    ctx = CheckContext(inventory=inventory, config=config, now=now, owners=owners, known_accounts=known)
    findings: list[Finding] = []
    for check in iter_checks():
        findings.extend(check.run(ctx))
    return sort_findings(apply_suppressions(findings, config.suppressions, now=now))
