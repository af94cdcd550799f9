"""Account-wide settings: password policy, Access Analyzer, the support role, server certificates."""

from __future__ import annotations

from collections.abc import Iterator

from bot.checks.catalog import CheckContext, Hit, check
from bot.findings import Severity
from bot.inventory import attached_policy_names

SUPPORT_POLICY = "AWSSupportAccess"


@check(
    "PASSWORD_POLICY_WEAK",
    title="Weak or missing account password policy",
    severity=Severity.MEDIUM,
    cis=("1.8", "1.9"),
    risk="Short or reused passwords are guessed and replayed from other breaches.",
    console="IAM → Account settings → Password policy → Edit: minimum length 14 or more, prevent "
    "reuse of the last 24 passwords.",
    cli="aws iam update-account-password-policy --minimum-password-length {min_length} "
    "--password-reuse-prevention {reuse} --require-symbols --require-numbers "
    "--require-uppercase-characters --require-lowercase-characters",
    needs=("password_policy",),
)
def password_policy_weak(ctx: CheckContext) -> Iterator[Hit]:
    want_length = ctx.settings.min_password_length
    want_reuse = ctx.settings.password_reuse_prevention
    fields = {"min_length": want_length, "reuse": want_reuse}
    policy = ctx.inventory.get("password_policy")
    if not policy:
        yield Hit(
            None,
            None,
            "The account has no password policy (AWS defaults allow 8 characters and reuse).",
            fields=fields,
        )
        return
    problems = []
    length = policy.get("MinimumPasswordLength") or 0
    if length < want_length:
        problems.append(f"minimum length {length} (want {want_length})")
    reuse = policy.get("PasswordReusePrevention") or 0
    if reuse < want_reuse:
        problems.append(f"reuse prevention {reuse or 'off'} (want {want_reuse})")
    if problems:
        yield Hit(None, None, "Password policy: " + "; ".join(problems) + ".", fields=fields)


def _external_access_analyzers(ctx: CheckContext) -> list[dict]:
    analyzer = ctx.inventory.get("access_analyzer") or {}
    return [
        a
        for a in analyzer.get("analyzers") or []
        if a.get("status") == "ACTIVE" and a.get("type") in ("ACCOUNT", "ORGANIZATION")
    ]


@check(
    "ACCESS_ANALYZER_DISABLED",
    title="IAM Access Analyzer is not enabled",
    severity=Severity.MEDIUM,
    cis=("1.20",),
    risk="Without an analyzer nobody is told when a bucket, key or role becomes reachable from outside the account.",
    console="IAM → Access analyzer → Create analyzer (zone of trust: this account or the organization).",
    cli="aws accessanalyzer create-analyzer --analyzer-name iamwarden --type ACCOUNT",
    needs=("access_analyzer",),
)
def access_analyzer_disabled(ctx: CheckContext) -> Iterator[Hit]:
    if not _external_access_analyzers(ctx):
        count = len((ctx.inventory.get("access_analyzer") or {}).get("analyzers") or [])
        extra = f" ({count} other analyzer(s) exist, none active for external access)" if count else ""
        yield Hit(None, None, f"No active external-access analyzer in {ctx.account_id}{extra}.")


@check(
    "EXTERNAL_ACCESS",
    title="Resource shared outside the account (Access Analyzer)",
    severity=Severity.HIGH,
    risk="Someone outside the zone of trust can reach this resource.",
    console="IAM → Access analyzer → Findings → {name}: remove the access from the resource policy, "
    "or archive the finding if the sharing is intended.",
    cli="aws accessanalyzer get-finding-v2 --analyzer-arn {analyzer} --id {finding_id}",
    needs=("access_analyzer",),
)
def external_access(ctx: CheckContext) -> Iterator[Hit]:
    analyzer = ctx.inventory.get("access_analyzer") or {}
    for finding in analyzer.get("findings") or []:
        if finding.get("status", "ACTIVE") != "ACTIVE":
            continue
        if finding.get("findingType", "ExternalAccess") != "ExternalAccess":
            continue
        resource = finding.get("resource") or ""
        kind = finding.get("resourceType") or "resource"
        yield Hit(
            resource or None,
            resource.rsplit("/", 1)[-1].rsplit(":", 1)[-1] if resource else None,
            f"{kind} {resource} is accessible from outside the account (finding {finding.get('id')}).",
            key=str(finding.get("id", "")),
            fields={
                "analyzer": finding.get("analyzerArn", "ANALYZER_ARN"),
                "finding_id": finding.get("id", ""),
            },
        )


@check(
    "SUPPORT_ROLE_MISSING",
    title="No one can open AWS Support cases",
    severity=Severity.LOW,
    cis=("1.17",),
    risk="In an incident nobody can open a support case without reaching for the root user or an admin.",
    console="IAM → Roles → Create role (trusted: this account) → attach AWSSupportAccess.",
    cli="aws iam create-role --role-name aws-support --assume-role-policy-document file://trust.json && "
    "aws iam attach-role-policy --role-name aws-support --policy-arn arn:aws:iam::aws:policy/AWSSupportAccess",
)
def support_role_missing(ctx: CheckContext) -> Iterator[Hit]:
    for key in ("users", "groups", "roles"):
        for entry in ctx.inventory.get(key) or []:
            if SUPPORT_POLICY in set(attached_policy_names(entry)):
                return
    yield Hit(None, None, "AWSSupportAccess is attached to no user, group or role.")


@check(
    "EXPIRED_SERVER_CERTIFICATE",
    title="Expired server certificate stored in IAM",
    severity=Severity.MEDIUM,
    cis=("1.19",),
    risk="An expired certificate deployed by mistake breaks TLS for customers, and a stale one invites reuse.",
    console="Delete it with the CLI (IAM server certificates are not shown in the console); use ACM for new ones.",
    cli="aws iam delete-server-certificate --server-certificate-name {name}",
    needs=("server_certificates",),
)
def expired_server_certificate(ctx: CheckContext) -> Iterator[Hit]:
    for cert in ctx.inventory.get("server_certificates") or []:
        expired = ctx.days_since(cert.get("Expiration"))
        if expired is not None and expired > 0:
            yield Hit(
                cert.get("Arn"),
                cert.get("ServerCertificateName"),
                f"Expired {expired:.0f} days ago ({cert.get('Expiration')}).",
            )
