"""Least-privilege checks, on ``bot.policy`` and ``bot.escalation`` (never an approximation of our own).

A principal's effective policy is the union of its inline, attached and group policies. Findings
about a policy that comes through a group are reported on the group, not on every member, except
where the member is what matters (``ADMIN_NO_MFA``, ``PRIVILEGE_ESCALATION``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bot.checks.catalog import CheckContext, Hit, check
from bot.findings import Severity
from bot.inventory import AWS_POLICY_PREFIX, attached_policy_names
from bot.policy import (
    PolicyParseError,
    PolicySource,
    is_full_admin,
    parse_policy,
)

ADMIN_POLICY = "AdministratorAccess"
CLOUDSHELL_POLICY = "AWSCloudShellFullAccess"
# AWS-managed policies whose service wildcard is required (CIS 1.17's support role) or reported by
# a check of its own (CloudShell): SERVICE_WILDCARD does not repeat them.
WILDCARD_EXEMPT = frozenset({"AWSSupportAccess", CLOUDSHELL_POLICY})
SERVICE_LINKED_PATH = "/aws-service-role/"
ASSUME_ACTIONS = ("sts:assumerole", "sts:assumerole*", "sts:*", "*", "sts:assume*")
ALLOWED_TRUST_CONDITIONS = ("sts:externalid", "aws:multifactorauthpresent", "aws:multifactorauthage")


def _kind_entries(ctx: CheckContext) -> Iterator[tuple[str, Mapping[str, Any], str, str]]:
    """(kind, entry, arn, name) for every user, group and role a customer controls.

    Service-linked roles are left out: only their AWS service can assume them, and their policies
    belong to AWS and cannot be changed, so a finding on one could never be acted on."""
    for user in ctx.inventory.get("users") or []:
        yield "user", user, user["Arn"], user["UserName"]
    for group in ctx.inventory.get("groups") or []:
        yield "group", group, group["Arn"], group["GroupName"]
    for role in ctx.inventory.get("roles") or []:
        if not role.get("Path", "").startswith(SERVICE_LINKED_PATH):
            yield "role", role, role["Arn"], role["RoleName"]


def _label(kind: str) -> str:
    return {"user": "User", "group": "Group", "role": "Role"}[kind]


def _via(decision: Any) -> str:
    return "; ".join(s.describe() for s in decision.deciding)


@check(
    "ADMIN_POLICY_ATTACHED",
    title="Administrator access attached to a user, group or role",
    severity=Severity.HIGH,
    cis=("1.16",),
    risk="Full `*:*` access turns any mistake or stolen credential of this principal into a full account compromise.",
    console="IAM → {kind}s → {name} → Permissions → remove AdministratorAccess (or the `*:*` policy) "
    "and attach only what the job needs; grant admin just in time instead.",
    cli="aws iam detach-{kind}-policy --{kind}-name {name} --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
)
def admin_policy_attached(ctx: CheckContext) -> Iterator[Hit]:
    for kind, entry, arn, name in _kind_entries(ctx):
        attached = ADMIN_POLICY in set(attached_policy_names(entry))
        admin = ctx.full_admin(arn, own_only=True)
        if not attached and admin is None:
            _, problems = ctx.effective(arn, own_only=True)
            if problems:
                yield ctx.unknown("; ".join(problems), principal_arn=arn, principal_name=name)
            continue
        how = f"via {_via(admin)}" if admin is not None else "AdministratorAccess is attached"
        cond = " (under conditions we could not evaluate)" if admin is not None and admin.conditional else ""
        yield Hit(
            arn, name, f"{_label(kind)} is effectively administrator{cond}: {how}.", fields={"kind": kind}
        )


@check(
    "FULL_ADMIN_CUSTOM_POLICY",
    title="Customer-managed policy allows `*` on `*`",
    severity=Severity.HIGH,
    cis=("1.16",),
    risk="A home-made admin policy hides full access behind an innocent name and spreads with every attachment.",
    console="IAM → Policies → {name} → edit the JSON to list the actions and resources actually needed "
    "(or delete it and use AdministratorAccess just in time).",
    cli="aws iam create-policy-version --policy-arn {arn} --policy-document file://least-privilege.json --set-as-default",
)
def full_admin_custom_policy(ctx: CheckContext) -> Iterator[Hit]:
    for policy in ctx.inventory.get("policies") or []:
        arn = policy.get("Arn", "")
        if arn.startswith(AWS_POLICY_PREFIX):
            continue
        name = policy.get("PolicyName") or arn.rsplit("/", 1)[-1]
        document = next(
            (
                v.get("Document")
                for v in policy.get("PolicyVersionList") or []
                if v.get("IsDefaultVersion", True)
            ),
            None,
        )
        if document is None:
            yield ctx.unknown(
                "the policy's default version is not in the snapshot", principal_arn=arn, principal_name=name
            )
            continue
        try:
            statements = parse_policy(document, PolicySource("managed", name, arn))
        except PolicyParseError as exc:
            yield ctx.unknown(str(exc), principal_arn=arn, principal_name=name)
            continue
        admin = is_full_admin(statements)
        if admin is not None:
            attached = policy.get("AttachmentCount", 0)
            yield Hit(
                arn,
                name,
                f"Allows every action on every resource ({_via(admin)}); attached {attached} times.",
            )


@check(
    "PRIVILEGE_ESCALATION",
    title="Principal can escalate its own privileges",
    severity=Severity.HIGH,
    risk="A principal that can rewrite or borrow permissions is an administrator in waiting.",
    console="IAM → {kind}s → {name} → Permissions → remove or scope down the statements named in the "
    "finding (limit the Resource to what the job needs, or add a Deny).",
    cli="aws iam simulate-principal-policy --policy-source-arn {arn} --action-names {actions}",
)
def privilege_escalation(ctx: CheckContext) -> Iterator[Hit]:
    graph = ctx.escalation_graph
    for kind, arn, name in graph.principals():
        for route in graph.routes(arn):
            first = route.first
            cond = " (under conditions we could not evaluate)" if route.conditional else ""
            yield Hit(
                arn,
                name,
                f"{first.title}{cond}: {', '.join(first.actions)} allowed by "
                + ("; ".join(first.statements) or "the target's trust policy")
                + f". {route.explain()}",
                key=first.method,
                fields={"kind": kind, "actions": " ".join(first.actions)},
                extra={
                    "method": first.method,
                    "actions": list(first.actions),
                    "statements": list(first.statements),
                    "conditional": route.conditional,
                    "hop_count": route.hop_count,
                    "admin": route.admin,
                    "hops": [h.to_dict() for h in route.hops],
                    "path": [h.describe() for h in route.hops],
                    "condition_keys": route.condition_keys,
                    "possible_denies": route.possible_denies,
                },
            )
        problems = graph.principal_errors.get(arn)
        if problems:
            yield ctx.unknown("; ".join(dict.fromkeys(problems)), principal_arn=arn, principal_name=name)
    if graph.errors:
        yield ctx.unknown("; ".join(sorted(graph.errors)), key="methods")


def _probe(ctx: CheckContext) -> str:
    return f"arn:aws:iam::{ctx.account_id or '123456789012'}:role/iamwarden-any-role-probe-7f3a"


@check(
    "PASSROLE_OR_ASSUMEROLE_WILDCARD",
    title="iam:PassRole or sts:AssumeRole on any role",
    severity=Severity.MEDIUM,
    risk="Passing or assuming any role lets this principal borrow the permissions of the most powerful role in the account.",
    console="IAM → {kind}s → {name} → Permissions → limit the Resource of iam:PassRole / "
    "sts:AssumeRole to the specific role ARNs needed (and iam:PassedToService for PassRole).",
    cli="aws iam get-account-authorization-details --filter {kind_title}  # find and edit the statement named in the finding",
)
def passrole_or_assumerole_wildcard(ctx: CheckContext) -> Iterator[Hit]:
    probe = _probe(ctx)
    for kind, _entry, arn, name in _kind_entries(ctx):
        if ctx.full_admin(arn, own_only=True) is not None:
            continue  # reported as ADMIN_POLICY_ATTACHED
        for action in ("iam:PassRole", "sts:AssumeRole"):
            decision = ctx.decide(arn, action, probe, own_only=True)
            if not decision.allowed:
                continue
            cond = " (under conditions we could not evaluate)" if decision.conditional else ""
            yield Hit(
                arn,
                name,
                f"{action} on any role{cond} via {_via(decision)}.",
                key=action,
                fields={"kind": kind, "kind_title": _label(kind)},
            )


@check(
    "SERVICE_WILDCARD",
    title="Service-wide wildcard (`service:*` on `*`)",
    severity=Severity.MEDIUM,
    risk="Every action of a service, including its admin and destructive ones, on every resource is rarely what a job needs.",
    console="IAM → {kind}s → {name} → Permissions → replace `service:*` with the actions used "
    "(IAM Access Advisor shows which), scoped to the resources needed.",
    cli="aws iam generate-service-last-accessed-details --arn {arn}",
)
def service_wildcard(ctx: CheckContext) -> Iterator[Hit]:
    for kind, _entry, arn, name in _kind_entries(ctx):
        found = [
            (service, stmt)
            for service, stmt in ctx.service_wildcards(arn, own_only=True)
            if not (stmt.source.arn or "").startswith(AWS_POLICY_PREFIX)
            or stmt.source.name not in WILDCARD_EXEMPT
        ]
        if found:
            # `iam:*` beside a Deny of `iam:*` on every resource grants nothing: not a wildcard
            statements = ctx.effective(arn, own_only=True)[0]
            found = [(svc, stmt) for svc, stmt in found if not _service_denied(statements, svc)]
        if not found:
            continue
        services = sorted({service for service, _ in found})
        via = "; ".join(sorted({stmt.describe() for _, stmt in found}))
        yield Hit(
            arn,
            name,
            f"Allows {', '.join(s + ':*' for s in services)} on every resource via {via}.",
            fields={"kind": kind},
            extra={"services": services},
        )


def _service_denied(statements: list[Any], service: str) -> bool:
    """Does an unconditional Deny on every resource cover every action of ``service``?"""
    every = re.compile(r"\*|\*:\*|" + re.escape(service) + r":\*+", re.IGNORECASE)
    for stmt in statements:
        if stmt.effect != "Deny" or stmt.conditions or stmt.actions is None:
            continue
        if stmt.resources is None or "*" not in stmt.resources:
            continue
        if any(every.fullmatch(p.strip()) for p in stmt.actions):
            return True
    return False


@check(
    "USER_DIRECT_POLICIES",
    title="User with policies attached directly",
    severity=Severity.LOW,
    cis=("1.15",),
    risk="Permissions granted person by person drift apart and are forgotten when people change jobs.",
    console="IAM → Users → {name} → Permissions → move each policy to a group (or a role) and add "
    "the user to it; then remove the user's own policies.",
    cli="aws iam list-attached-user-policies --user-name {name} && aws iam list-user-policies --user-name {name}",
)
def user_direct_policies(ctx: CheckContext) -> Iterator[Hit]:
    for user in ctx.inventory.get("users") or []:
        inline = [p["PolicyName"] for p in user.get("UserPolicyList") or []]
        managed = list(attached_policy_names(user))
        if inline or managed:
            parts = []
            if managed:
                parts.append("managed " + ", ".join(managed))
            if inline:
                parts.append("inline " + ", ".join(inline))
            yield Hit(user["Arn"], user["UserName"], "Policies on the user itself: " + "; ".join(parts) + ".")


# -- role trust ------------------------------------------------------------------------------------


def _trust_statements(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        import json
        import urllib.parse

        document = json.loads(urllib.parse.unquote(document))
    raw = document.get("Statement") or []
    return [s for s in ([raw] if isinstance(raw, dict) else raw) if isinstance(s, dict)]


def _allows_assume(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    actions = statement.get("Action") or []
    actions = [actions] if isinstance(actions, str) else actions
    return any(
        a.lower() in ("*", "sts:*") or a.lower().startswith("sts:assumerole") or a.lower() == "sts:assume*"
        for a in actions
    )


def _aws_principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if not isinstance(principal, Mapping):
        return []
    value = principal.get("AWS") or []
    return [value] if isinstance(value, str) else list(value)


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for block in (statement.get("Condition") or {}).values():
        if isinstance(block, Mapping):
            keys.update(k.lower() for k in block)
    return keys


def _account_of(principal: str) -> str | None:
    if principal.isdigit() and len(principal) == 12:
        return principal
    parts = principal.split(":")
    if len(parts) > 4 and parts[0] == "arn" and parts[4].isdigit():
        return parts[4]
    return None


@check(
    "ROLE_TRUST_PUBLIC",
    title="Role trust policy lets anyone assume it",
    severity=Severity.CRITICAL,
    risk="Any AWS account in the world can assume this role and use its permissions.",
    console="IAM → Roles → {name} → Trust relationships → Edit trust policy: replace the `*` "
    "principal with the accounts or roles that need it.",
    cli="aws iam update-assume-role-policy --role-name {name} --policy-document file://trust.json",
)
def role_trust_public(ctx: CheckContext) -> Iterator[Hit]:
    for role in ctx.inventory.get("roles") or []:
        for index, statement in enumerate(_trust_statements(role)):
            if (
                _allows_assume(statement)
                and "*" in _aws_principals(statement)
                and not statement.get("Condition")
            ):
                yield Hit(
                    role["Arn"],
                    role["RoleName"],
                    f"Trust statement #{index + 1} allows principal `*` with no condition.",
                    key=str(index),
                )


@check(
    "ROLE_TRUST_EXTERNAL_NO_CONDITION",
    title="Role trusts an outside account without ExternalId or MFA",
    severity=Severity.HIGH,
    risk="Anyone in the trusted account who is allowed to assume roles can use this one "
    "(the confused-deputy problem when it is a vendor).",
    console="IAM → Roles → {name} → Trust relationships → add a Condition on `sts:ExternalId` "
    "(vendors) or `aws:MultiFactorAuthPresent` (people).",
    cli="aws iam update-assume-role-policy --role-name {name} --policy-document file://trust-with-external-id.json",
)
def role_trust_external_no_condition(ctx: CheckContext) -> Iterator[Hit]:
    own = ctx.account_id
    for role in ctx.inventory.get("roles") or []:
        for statement in _trust_statements(role):
            if not _allows_assume(statement):
                continue
            if _condition_keys(statement) & set(ALLOWED_TRUST_CONDITIONS):
                continue
            for principal in _aws_principals(statement):
                account = _account_of(principal)
                if account and account != own and account not in ctx.known_accounts:
                    yield Hit(
                        role["Arn"],
                        role["RoleName"],
                        f"Account {account} may assume it ({principal}) with no ExternalId or MFA condition.",
                        key=account,
                    )


@check(
    "ROLE_UNUSED",
    title="Role unused",
    severity=Severity.LOW,
    risk="A role nobody uses keeps its permissions and its trust open for whoever finds it.",
    console="IAM → Roles → {name} → check Last activity, then delete the role (or tag why it must stay).",
    cli="aws iam get-role --role-name {name} --query Role.RoleLastUsed && aws iam delete-role --role-name {name}",
)
def role_unused(ctx: CheckContext) -> Iterator[Hit]:
    limit = ctx.settings.role_unused_days
    for role in ctx.inventory.get("roles") or []:
        if role.get("Path", "").startswith(SERVICE_LINKED_PATH):
            continue
        last = (role.get("RoleLastUsed") or {}).get("LastUsedDate")
        idle = ctx.days_since(last) if last else None
        if idle is not None:
            if idle > limit:
                yield Hit(role["Arn"], role["RoleName"], f"Last used {idle:.0f} days ago (limit {limit}).")
            continue
        age = ctx.days_since(role.get("CreateDate"))
        if age is not None and age > limit:
            yield Hit(
                role["Arn"], role["RoleName"], f"Never used in the {age:.0f} days since it was created."
            )


@check(
    "CLOUDSHELL_FULL_ACCESS",
    title="AWSCloudShellFullAccess attached",
    severity=Severity.MEDIUM,
    cis=("1.22",),
    risk="CloudShell full access allows uploading and downloading files from a shell inside the "
    "account, a ready path for data exfiltration.",
    console="IAM → {kind}s → {name} → Permissions → remove AWSCloudShellFullAccess.",
    cli="aws iam detach-{kind}-policy --{kind}-name {name} --policy-arn arn:aws:iam::aws:policy/AWSCloudShellFullAccess",
)
def cloudshell_full_access(ctx: CheckContext) -> Iterator[Hit]:
    for kind, entry, arn, name in _kind_entries(ctx):
        if CLOUDSHELL_POLICY in set(attached_policy_names(entry)):
            yield Hit(
                arn, name, f"{_label(kind)} has AWSCloudShellFullAccess attached.", fields={"kind": kind}
            )
