"""What the rules read off an event: the event names each rule watches and small predicates
(who acted, through which service, on which target)."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.alerts.events import CloudTrailEvent
from bot.settings import Config

CIS_POLICY_EVENTS = frozenset(
    {
        "DeleteGroupPolicy",
        "DeleteRolePolicy",
        "DeleteUserPolicy",
        "PutGroupPolicy",
        "PutRolePolicy",
        "PutUserPolicy",
        "CreatePolicy",
        "DeletePolicy",
        "CreatePolicyVersion",
        "DeletePolicyVersion",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "AttachUserPolicy",
        "DetachUserPolicy",
        "AttachGroupPolicy",
        "DetachGroupPolicy",
    }
)
POLICY_CHANGE_EVENTS = CIS_POLICY_EVENTS | {
    "SetDefaultPolicyVersion",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "PutUserPermissionsBoundary",
    "DeleteUserPermissionsBoundary",
}
ATTACH_EVENTS = frozenset({"AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy"})
INLINE_PUT_EVENTS = frozenset({"PutUserPolicy", "PutRolePolicy", "PutGroupPolicy"})
MFA_EVENTS = frozenset({"DeactivateMFADevice", "DeleteVirtualMFADevice"})
TRAIL_TAMPERING_EVENTS = frozenset({"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"})
# Real CloudTrail hides user names that do not exist in the account behind this marker.
HIDDEN_USER = "HIDDEN_DUE_TO_SECURITY_REASONS"
# invokedBy values that mean "root itself, through the console", not an AWS service acting for it.
_CONSOLE_INVOKER = re.compile(
    r"(signin|console)\.amazonaws\.com|(.+\.)?console\.aws\.amazon\.com|aws internal", re.I
)
# additionalEventData keys that mark a federated (SAML/OIDC/IdP) sign-in, not an IAM user's password.
_FEDERATED_MARKERS = ("samlproviderarn", "oidcproviderarn", "identityproviderarn", "webidfederation")
DENIED_ERRORS = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation"}
)
LOGIN_PROFILE_EVENTS = frozenset({"CreateLoginProfile", "UpdateLoginProfile"})
TRUST_EVENTS = frozenset({"CreateRole", "UpdateAssumeRolePolicy"})
QUARANTINE_POLICY_PREFIX = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine"
IDENTITY_PROVIDER_EVENTS = frozenset(
    {
        "CreateSAMLProvider",
        "UpdateSAMLProvider",
        "DeleteSAMLProvider",
        "CreateOpenIDConnectProvider",
        "DeleteOpenIDConnectProvider",
        "UpdateOpenIDConnectProviderThumbprint",
        "AddClientIDToOpenIDConnectProvider",
        "RemoveClientIDFromOpenIDConnectProvider",
    }
)
LEAVE_ORGANIZATION_EVENTS = frozenset({"LeaveOrganization", "RemoveAccountFromOrganization"})
# (eventSource, eventName) → what was switched off. UpdateDetector counts only with enable=false.
SECURITY_SERVICE_EVENTS: dict[tuple[str, str], str] = {
    ("guardduty.amazonaws.com", "DeleteDetector"): "GuardDuty detector deleted",
    ("guardduty.amazonaws.com", "UpdateDetector"): "GuardDuty detector disabled",
    ("config.amazonaws.com", "StopConfigurationRecorder"): "AWS Config recorder stopped",
    ("config.amazonaws.com", "DeleteConfigurationRecorder"): "AWS Config recorder deleted",
    ("config.amazonaws.com", "DeleteDeliveryChannel"): "AWS Config delivery channel deleted",
    ("ec2.amazonaws.com", "DeleteFlowLogs"): "VPC flow logs deleted",
    ("securityhub.amazonaws.com", "DisableSecurityHub"): "Security Hub disabled",
    ("access-analyzer.amazonaws.com", "DeleteAnalyzer"): "IAM Access Analyzer analyzer deleted",
}

# Role session names and SourceIdentity values the access feature gives the sessions it issues.
BOT_SESSION_PREFIX = "iamwarden-"


def _name_of(arn_or_name: str) -> str:
    return arn_or_name.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _policy_grants_everything(document: Any) -> bool:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return False
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow" or "NotAction" in st:
            continue
        acts = st.get("Action")
        res = st.get("Resource")
        acts = [acts] if isinstance(acts, str) else acts or []
        res = [res] if isinstance(res, str) else res or []
        if "*" in acts and "*" in res:
            return True
    return False


def _policy_target(event: CloudTrailEvent) -> tuple[str, str]:
    """(kind, name) of what a policy change touched: ("role", "prod-admin"), ("policy", "X")…"""
    params = event.request_parameters
    for key, kind in (("roleName", "role"), ("userName", "user"), ("groupName", "group")):
        if params.get(key):
            return kind, str(params[key])
    if params.get("policyArn"):
        return "policy", _name_of(str(params["policyArn"]))
    if params.get("policyName"):
        return "policy", str(params["policyName"])
    return "resource", "unknown"


def _critical_names(config: Config) -> tuple[set[str], set[str]]:
    roles = {_name_of(r) for r in config.alerts.critical_roles}
    roles |= {_name_of(r.arn) for r in config.roles} | {r.name for r in config.roles}
    policies = {_name_of(p) for p in config.alerts.critical_policies + config.scan.critical_policies}
    return roles, policies


def _actor(event: CloudTrailEvent) -> str:
    return event.user_identity.display_name


def _by_service(event: CloudTrailEvent) -> bool:
    """An AWS service acting (for root or anyone). A console host in ``invokedBy`` is not a
    service: that is the principal's own click (root creating its own access key in the console)."""
    ident = event.user_identity
    if ident.invoked_by and not _CONSOLE_INVOKER.fullmatch(ident.invoked_by.strip()):
        return True
    return event.event_type == "AwsServiceEvent" or ident.type == "AWSService"


def _federated_sign_in(event: CloudTrailEvent) -> bool:
    keys = {k.lower() for k in event.additional_event_data}
    if any(marker in key for key in keys for marker in _FEDERATED_MARKERS):
        return True
    context = event.user_identity.session_context
    return event.user_identity.type in ("FederatedUser", "SAMLUser", "WebIdentityUser") or bool(
        context and context.attributes.get("webIdFederationData")
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def selectors_drop_management_events(params: dict[str, Any]) -> str | None:
    """Why a PutEventSelectors request drops or narrows management events, or None when the trail
    still logs every management event (read and write, from every source)."""
    basic = [s for s in _as_list(params.get("eventSelectors")) if isinstance(s, dict)]
    advanced = [s for s in _as_list(params.get("advancedEventSelectors")) if isinstance(s, dict)]
    if not basic and not advanced:
        return "no event selectors: the trail logs no management events"
    reasons: list[str] = []
    full = False
    for selector in basic:
        if selector.get("includeManagementEvents") is False:
            continue
        rw = str(selector.get("readWriteType") or "All")
        excluded = _as_list(selector.get("excludeManagementEventSources"))
        if rw != "All":
            reasons.append(f"management events reduced to {rw}")
        elif excluded:
            reasons.append(f"management events from {', '.join(map(str, excluded))} excluded")
        else:
            full = True
    for selector in advanced:
        fields = [f for f in _as_list(selector.get("fieldSelectors")) if isinstance(f, dict)]
        category = next((f for f in fields if f.get("field") == "eventCategory"), None)
        if not category or "Management" not in _as_list(category.get("equals")):
            continue
        others = [f for f in fields if f is not category]
        if others:
            names = ", ".join(sorted({str(f.get("field")) for f in others}))
            reasons.append(f"management events filtered by {names}")
        else:
            full = True
    if full:
        return None
    return "; ".join(reasons) or "management events excluded"


def _session_names(event: CloudTrailEvent) -> list[str]:
    ident = event.user_identity
    return [n for n in (ident.session_name, ident.source_identity) if n]


def _flow_log_ids(value: Any) -> list[str]:
    """``fl-…`` ids anywhere in DeleteFlowLogs' parameters (CloudTrail nests them in an EC2 query shape)."""
    if isinstance(value, str):
        return [value] if value.startswith("fl-") else []
    if isinstance(value, dict):
        return [i for v in value.values() for i in _flow_log_ids(v)]
    if isinstance(value, list):
        return [i for v in value for i in _flow_log_ids(v)]
    return []
