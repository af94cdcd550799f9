"""The bot's own AWS permissions, by feature: one source for the shipped policy documents
(``policies/*.json``, ``deploy/iamwarden-role.yaml``), for the "which policy grants it" sentence of
every AccessDenied, and for ``iamwarden policy`` / ``iamwarden check``.

Each feature is one least-privilege document. Resources that depend on the deployment are
placeholders (``${JitRoleArns}``, ``${AlertsQueueArn}``, ``${AuditRoleName}``) that
``render_policy`` fills from the configuration, the way the CloudFormation template's parameters do.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.findings import Finding
from bot.settings import Config


@dataclass(frozen=True)
class FeaturePolicy:
    feature: str
    file: str  # path in the repository, as the README and error messages name it
    description: str
    statements: tuple[dict[str, Any], ...]

    @property
    def actions(self) -> tuple[str, ...]:
        out: list[str] = []
        for statement in self.statements:
            actions = statement["Action"]
            out.extend([actions] if isinstance(actions, str) else actions)
        return tuple(out)

    def document(self) -> dict[str, Any]:
        """The shipped document, placeholders and all (what ``policies/<file>`` contains)."""
        return {"Version": "2012-10-17", "Statement": [copy.deepcopy(s) for s in self.statements]}


JIT_ROLES = "${JitRoleArns}"
ALERTS_QUEUE = "${AlertsQueueArn}"
AUDIT_ROLE = "arn:aws:iam::*:role/${AuditRoleName}"

SCAN = FeaturePolicy(
    "scan",
    "policies/scan.json",
    "read-only: the hygiene scan and every answer (always needed)",
    (
        {
            "Sid": "ScanReadOnly",
            "Effect": "Allow",
            "Action": [
                "iam:GenerateCredentialReport",
                "iam:GetCredentialReport",
                "iam:GetAccountAuthorizationDetails",
                "iam:GetAccountSummary",
                "iam:GetAccountPasswordPolicy",
                "iam:ListAccountAliases",
                "iam:ListRoles",
                "iam:GetRole",
                "iam:ListPolicies",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:ListVirtualMFADevices",
                "iam:ListServerCertificates",
                "iam:ListSAMLProviders",
                "iam:ListOpenIDConnectProviders",
                "access-analyzer:ListAnalyzers",
                "access-analyzer:ListFindings",  # also authorizes ListFindingsV2 (no IAM action of its own)
                "sts:GetCallerIdentity",
            ],
            "Resource": "*",
        },
    ),
)

JIT = FeaturePolicy(
    "jit",
    "policies/jit.json",
    "just-in-time access: grant, re-issue and revoke sessions of the [[roles]] only",
    (
        {
            "Sid": "JustInTimeGrants",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Resource": [JIT_ROLES],
        },
        {
            "Sid": "JustInTimeRevocation",
            "Effect": "Allow",
            "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            "Resource": [JIT_ROLES],
        },
    ),
)

OFFBOARDING = FeaturePolicy(
    "offboarding",
    "policies/offboarding.json",
    "offboarding: deactivate an IAM user's access keys and delete its console password",
    (
        {
            "Sid": "OffboardingDisableAccess",
            "Effect": "Allow",
            "Action": ["iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:DeleteLoginProfile"],
            "Resource": "arn:aws:iam::*:user/*",
        },
    ),
)

ALERTS = FeaturePolicy(
    "alerts",
    "policies/alerts.json",
    "alerts: read the named queue and CloudTrail's event history",
    (
        {
            "Sid": "AlertsQueue",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": ALERTS_QUEUE,
        },
        {
            # LookupEvents supports no resource-level permissions: "*" is the only form AWS accepts.
            "Sid": "AlertsEventHistory",
            "Effect": "Allow",
            "Action": ["cloudtrail:LookupEvents"],
            "Resource": "*",
        },
    ),
)

ORG_SCAN = FeaturePolicy(
    "org-scan",
    "policies/org-scan.json",
    "scanning other accounts: list the organization and assume the audit role in each member",
    (
        {
            "Sid": "OrganizationList",
            "Effect": "Allow",
            "Action": ["organizations:DescribeOrganization", "organizations:ListAccounts"],
            "Resource": "*",
        },
        {
            "Sid": "AssumeAuditRole",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole"],
            "Resource": AUDIT_ROLE,
        },
    ),
)

FEATURE_POLICIES: dict[str, FeaturePolicy] = {
    p.feature: p for p in (SCAN, JIT, OFFBOARDING, ALERTS, ORG_SCAN)
}

# Operations AWS authorizes as another action (the batch forms of single-message calls).
_AUTHORIZED_AS = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "access-analyzer:ListFindingsV2": "access-analyzer:ListFindings",
}
# The service prefix for each operation the bot calls, by operation name (unique across our services).
_ACTION_OF_OPERATION: dict[str, str] = {
    action.split(":", 1)[1]: action for policy in FEATURE_POLICIES.values() for action in policy.actions
} | {op.split(":", 1)[1]: action for op, action in _AUTHORIZED_AS.items()}


def policies_for_action(action: str) -> list[FeaturePolicy]:
    """The feature policies that grant ``action`` (``service:Operation``), e.g. sts:AssumeRole is in
    jit (the [[roles]]) and org-scan (the audit role)."""
    action = _AUTHORIZED_AS.get(action, action).lower()
    return [p for p in FEATURE_POLICIES.values() if any(a.lower() == action for a in p.actions)]


_PERFORM = re.compile(r"perform:?\s+([a-z0-9-]+:[A-Za-z0-9]+)")


def denied_action(exc: BaseException) -> str | None:
    """The IAM action a denied call needed: from AWS's message, else from the operation name."""
    response = getattr(exc, "response", None)
    message = str((response or {}).get("Error", {}).get("Message", "")) if isinstance(response, dict) else ""
    match = _PERFORM.search(message)
    if match:
        return _AUTHORIZED_AS.get(match.group(1), match.group(1))
    operation = getattr(exc, "operation_name", None)
    return _ACTION_OF_OPERATION.get(operation) if operation else None


def missing_permission(exc: BaseException) -> str:
    """``"iam:ListRoles, granted by policies/scan.json"`` (or as much of it as is known)."""
    action = denied_action(exc)
    if action is None:
        return "a permission; see the policies in policies/ (README: The bot's AWS permissions)"
    policies = policies_for_action(action)
    if not policies:
        return action
    return f"{action}, granted by " + " or ".join(p.file for p in policies)


# --------------------------------------------------------------------------- deployment


def enabled_features(config: Config) -> list[str]:
    """The features this configuration uses (scan always; offboarding whenever the bot posts to Slack)."""
    features = ["scan"]
    if config.roles:
        features.append("jit")
    features.append("offboarding")
    if config.alerts.queue_url or config.alerts.lookup_events:
        features.append("alerts")
    if config.organizations.enabled or any(a.role_arn for a in config.accounts):
        features.append("org-scan")
    return features


def queue_arn(queue_url: str) -> str:
    """``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`` → ``arn:aws:sqs:REGION:ACCOUNT:NAME``."""
    from urllib.parse import urlparse

    parsed = urlparse(queue_url)
    parts = [p for p in parsed.path.split("/") if p]
    host = parsed.hostname or ""
    region = host.split(".")[1] if host.startswith("sqs.") and host.count(".") >= 3 else "*"
    if len(parts) < 2:
        return "*"
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


def _fill(value: Any, values: dict[str, list[str]]) -> Any:
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            filled = _fill(item, values)
            out.extend(filled if isinstance(filled, list) else [filled])
        return out
    if isinstance(value, str):
        for name, replacement in values.items():
            token = "${" + name + "}"
            if value == token:
                return list(replacement)
            if token in value:
                filled = [value.replace(token, r) for r in replacement]
                return filled if len(filled) != 1 else filled[0]
        return value
    return value


def render_policy(feature: str, config: Config) -> dict[str, Any]:
    """The feature's document with this deployment's roles, queue and audit role filled in."""
    roles = sorted({r.arn for r in config.roles}) or ["arn:aws:iam::*:role/NO-ROLES-CONFIGURED"]
    audit = [config.organizations.audit_role_name]
    values = {
        "JitRoleArns": roles,
        "AlertsQueueArn": [queue_arn(config.alerts.queue_url)] if config.alerts.queue_url else [],
        "AuditRoleName": audit,
    }
    document = FEATURE_POLICIES[feature].document()
    statements = []
    for statement in document["Statement"]:
        resource = _fill(statement["Resource"], values)
        if resource == []:  # e.g. no queue configured: the statement grants nothing, leave it out
            continue
        statement["Resource"] = resource
        statements.append(statement)
    if feature == "org-scan":
        readers = sorted({a.role_arn for a in config.accounts if a.role_arn})
        if readers:
            statements.append(
                {
                    "Sid": "AssumeAccountReaderRoles",
                    "Effect": "Allow",
                    "Action": ["sts:AssumeRole"],
                    "Resource": readers,
                }
            )
    document["Statement"] = statements
    return document


def render_policies(config: Config, features: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    return {f: render_policy(f, config) for f in (features or enabled_features(config))}


def shipped_json(feature: str) -> str:
    """The exact text of ``policies/<feature>.json``."""
    return json.dumps(FEATURE_POLICIES[feature].document(), indent=2) + "\n"


# --------------------------------------------------------------------------- the bot's own principal

OWN_PRINCIPAL_REASON = "iamwarden's own role: privileges are by design"


def own_principal_matcher(arns: Iterable[str]) -> Callable[[str | None], bool]:
    """A test for "is this principal the bot itself": its IAM user, or the role behind its
    assumed-role session (``arn:aws:sts::A:assumed-role/NAME/session`` is role NAME, any path)."""
    exact: set[str] = set()
    roles: set[tuple[str, str]] = set()
    for arn in arns:
        parts = arn.split(":", 5)
        if len(parts) < 6:
            continue
        account, resource = parts[4], parts[5]
        if resource.startswith("assumed-role/"):
            roles.add((account, resource.split("/")[1]))
        elif resource.startswith("role/"):
            roles.add((account, resource.rsplit("/", 1)[-1]))
        else:
            exact.add(arn)

    def is_own(principal_arn: str | None) -> bool:
        if not principal_arn:
            return False
        if principal_arn in exact:
            return True
        parts = principal_arn.split(":", 5)
        if len(parts) < 6 or not parts[5].startswith("role/"):
            return False
        return (parts[4], parts[5].rsplit("/", 1)[-1]) in roles

    return is_own


def suppress_own_principal(findings: list[Finding], own_arns: Iterable[str]) -> list[Finding]:
    """The bot's own principal holds what its features need (AssumeRole and PutRolePolicy on the
    JIT roles look like escalation): listed as suppressed with the reason, never hidden."""
    is_own = own_principal_matcher(own_arns)
    return [
        f.model_copy(update={"suppressed": True, "suppression_reason": OWN_PRINCIPAL_REASON})
        if not f.suppressed and is_own(f.principal_arn)
        else f
        for f in findings
    ]


# --------------------------------------------------------------------------- CloudFormation

_CFN_FLAGS = {
    "jit": "EnableJit",
    "offboarding": "EnableOffboarding",
    "alerts": "EnableAlerts",
    "org-scan": "EnableOrgScan",
}
_CFN_CONDITIONS = {
    "jit": "JitEnabled",
    "offboarding": "OffboardingEnabled",
    "alerts": "AlertsEnabled",
    "org-scan": "OrgScanEnabled",
}
_CFN_POLICY_NAMES = {
    "scan": "iamwarden-scan",
    "jit": "iamwarden-jit",
    "offboarding": "iamwarden-offboarding",
    "alerts": "iamwarden-alerts",
    "org-scan": "iamwarden-org-scan",
}


def _cfn_resource(value: Any) -> Any:
    if isinstance(value, list):
        if value == [JIT_ROLES]:
            return {"Ref": "JitRoleArns"}
        return [_cfn_resource(v) for v in value]
    if value == ALERTS_QUEUE:
        return {"Ref": "AlertsQueueArn"}
    if value == AUDIT_ROLE:
        return {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${AuditRoleName}"}
    return value


def cloudformation_template() -> dict[str, Any]:
    """``deploy/iamwarden-role.json``: the bot's role with exactly the features chosen (parameters),
    each feature's inline policy being its ``policies/*.json`` document."""
    flag = {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false"}
    parameters: dict[str, Any] = {
        "AssumedByService": {
            "Type": "String",
            "Default": "ecs-tasks.amazonaws.com",
            "Description": "The AWS service that runs the bot and assumes this role (ecs-tasks, ec2, ...)",
        },
        "EnableJit": {**flag, "Description": FEATURE_POLICIES["jit"].description},
        "JitRoleArns": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "ARNs of the [[roles]] the bot may grant, re-issue and revoke",
        },
        "EnableOffboarding": {**flag, "Description": FEATURE_POLICIES["offboarding"].description},
        "EnableAlerts": {**flag, "Description": FEATURE_POLICIES["alerts"].description},
        "AlertsQueueArn": {
            "Type": "String",
            "Default": "",
            "Description": "ARN of the [alerts] queue_url queue",
        },
        "EnableOrgScan": {**flag, "Description": FEATURE_POLICIES["org-scan"].description},
        "AuditRoleName": {
            "Type": "String",
            "Default": "OrganizationAccountAccessRole",
            "Description": "[organizations] audit_role_name, the role assumed in each member account",
        },
    }
    conditions = {
        "JitEnabled": {
            "Fn::And": [
                {"Fn::Equals": [{"Ref": "EnableJit"}, "true"]},
                {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "JitRoleArns"}]}, ""]}]},
            ]
        },
        "OffboardingEnabled": {"Fn::Equals": [{"Ref": "EnableOffboarding"}, "true"]},
        "AlertsEnabled": {
            "Fn::And": [
                {"Fn::Equals": [{"Ref": "EnableAlerts"}, "true"]},
                {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertsQueueArn"}, ""]}]},
            ]
        },
        "OrgScanEnabled": {"Fn::Equals": [{"Ref": "EnableOrgScan"}, "true"]},
    }
    policies: list[Any] = []
    for feature, policy in FEATURE_POLICIES.items():
        document = policy.document()
        for statement in document["Statement"]:
            statement["Resource"] = _cfn_resource(statement["Resource"])
        entry = {"PolicyName": _CFN_POLICY_NAMES[feature], "PolicyDocument": document}
        if feature in _CFN_CONDITIONS:
            policies.append({"Fn::If": [_CFN_CONDITIONS[feature], entry, {"Ref": "AWS::NoValue"}]})
        else:
            policies.append(entry)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "iamwarden's own IAM role: the read-only scan policy plus the features chosen. "
        "Generated from bot/permissions.py (iamwarden policy --cloudformation); do not edit by hand.",
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": {
            "IamwardenRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "iamwarden",
                    "Description": "iamwarden Slack bot",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": {"Ref": "AssumedByService"}},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": policies,
                },
            }
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["IamwardenRole", "Arn"]}}},
    }


def cloudformation_json() -> str:
    return json.dumps(cloudformation_template(), indent=2) + "\n"
