"""The rule catalog: each rule's id, severity, optional threshold/window and dedupe window, beside
its description. ``[alerts.rules.RULE_ID]`` in the TOML file overrides any of them (or disables the
rule); ``bot.settings`` checks the ids it is given against ``RULES``.

A new rule: an id here, a ``Rule`` in ``RULES``, and a method on one of the evaluator's rule groups
(``sign_ins``, ``iam_changes``, ``account_guards``) called from ``evaluation._Evaluator.run``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from bot.findings import Severity
from bot.settings import Config

ROOT_ACTIVITY = "ROOT_ACTIVITY"
ROOT_LOGIN_FAILED = "ROOT_LOGIN_FAILED"
CONSOLE_LOGIN_FAILURES = "CONSOLE_LOGIN_FAILURES"
PASSWORD_SPRAY = "PASSWORD_SPRAY"
CONSOLE_LOGIN_NO_MFA = "CONSOLE_LOGIN_NO_MFA"
IAM_POLICY_CHANGE = "IAM_POLICY_CHANGE"
ADMIN_POLICY_ATTACHED = "ADMIN_POLICY_ATTACHED"
ACCESS_KEY_CREATED_FOR_OTHER_USER = "ACCESS_KEY_CREATED_FOR_OTHER_USER"
MFA_DEACTIVATED = "MFA_DEACTIVATED"
CLOUDTRAIL_TAMPERING = "CLOUDTRAIL_TAMPERING"
ACCESS_ANALYZER_FINDING = "ACCESS_ANALYZER_FINDING"
CLOUDTRAIL_SELECTORS_CHANGED = "CLOUDTRAIL_SELECTORS_CHANGED"
UNAUTHORIZED_API_CALLS = "UNAUTHORIZED_API_CALLS"
CONSOLE_SIGNIN_TOKEN = "CONSOLE_SIGNIN_TOKEN"
LOGIN_PROFILE_FOR_OTHER_USER = "LOGIN_PROFILE_FOR_OTHER_USER"
ROLE_TRUST_OPENED = "ROLE_TRUST_OPENED"
KEY_QUARANTINED = "KEY_QUARANTINED"
IAM_PRINCIPAL_CREATED = "IAM_PRINCIPAL_CREATED"
SAML_PROVIDER_CHANGE = "SAML_PROVIDER_CHANGE"
LEAVE_ORGANIZATION = "LEAVE_ORGANIZATION"
SECURITY_SERVICE_DISABLED = "SECURITY_SERVICE_DISABLED"


@dataclass(frozen=True)
class Rule:
    """One alert rule: metadata beside the code, overridable per rule in ``[alerts.rules.ID]``."""

    id: str
    title: str
    severity: Severity
    dedupe_window: timedelta
    description: str
    threshold: int | None = None
    window: timedelta | None = None
    cis: tuple[str, ...] = ()
    enabled: bool = True


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            ROOT_ACTIVITY,
            "Root user activity",
            Severity.CRITICAL,
            timedelta(hours=1),
            "Any root sign-in or API call not made by an AWS service on root's behalf.",
            cis=("1.7", "4.3"),
        ),
        Rule(
            ROOT_LOGIN_FAILED,
            "Failed root sign-in",
            Severity.HIGH,
            timedelta(hours=1),
            "A console sign-in as the root user failed.",
        ),
        Rule(
            CONSOLE_LOGIN_FAILURES,
            "Repeated console sign-in failures",
            Severity.MEDIUM,
            timedelta(hours=1),
            "At least `threshold` failed console sign-ins for one user within `window`.",
            threshold=5,
            window=timedelta(minutes=15),
            cis=("4.6",),
        ),
        Rule(
            PASSWORD_SPRAY,
            "Possible password spray",
            Severity.HIGH,
            timedelta(hours=1),
            "Failed console sign-ins for more than `threshold` distinct users within `window`.",
            threshold=5,
            window=timedelta(hours=1),
        ),
        Rule(
            CONSOLE_LOGIN_NO_MFA,
            "Console sign-in without MFA",
            Severity.MEDIUM,
            timedelta(hours=24),
            "An IAM user signed in to the console without MFA (SSO and federated sessions excluded).",
            cis=("4.2",),
        ),
        Rule(
            IAM_POLICY_CHANGE,
            "IAM policy changed",
            Severity.MEDIUM,
            timedelta(minutes=15),
            "A CIS 4.4 policy change, SetDefaultPolicyVersion, UpdateAssumeRolePolicy or a permissions "
            "boundary change; critical when it touches a critical role/policy or a JIT role.",
            cis=("4.4",),
        ),
        Rule(
            ADMIN_POLICY_ATTACHED,
            "Administrator access granted",
            Severity.HIGH,
            timedelta(minutes=15),
            "An admin managed policy attached, or an inline policy allowing * on *.",
        ),
        Rule(
            ACCESS_KEY_CREATED_FOR_OTHER_USER,
            "Access key created for another user",
            Severity.HIGH,
            timedelta(hours=1),
            "Someone created an access key for a different IAM user (a persistence technique).",
        ),
        Rule(
            MFA_DEACTIVATED,
            "MFA deactivated",
            Severity.HIGH,
            timedelta(hours=1),
            "An MFA device was deactivated or a virtual MFA device deleted.",
        ),
        Rule(
            CLOUDTRAIL_TAMPERING,
            "CloudTrail tampering",
            Severity.CRITICAL,
            timedelta(hours=1),
            "StopLogging, DeleteTrail or UpdateTrail succeeded, or PutEventSelectors dropped or "
            "narrowed the management events a trail logs.",
            cis=("4.5",),
        ),
        Rule(
            CLOUDTRAIL_SELECTORS_CHANGED,
            "CloudTrail event selectors changed",
            Severity.MEDIUM,
            timedelta(hours=1),
            "PutEventSelectors changed what a trail logs but it still logs every management event.",
        ),
        Rule(
            ACCESS_ANALYZER_FINDING,
            "New external access",
            Severity.HIGH,
            timedelta(hours=24),
            "IAM Access Analyzer reported a new active finding: a resource is reachable from outside.",
        ),
        Rule(
            UNAUTHORIZED_API_CALLS,
            "Unauthorized API calls",
            Severity.MEDIUM,
            timedelta(hours=1),
            "At least `threshold` AccessDenied/UnauthorizedOperation errors for one principal within "
            "`window` (someone probing with stolen credentials), with the most denied actions.",
            threshold=10,
            window=timedelta(minutes=10),
            cis=("4.1",),
        ),
        Rule(
            CONSOLE_SIGNIN_TOKEN,
            "Console session made from API credentials",
            Severity.HIGH,
            timedelta(hours=1),
            "GetSigninToken turned CLI credentials into a console session (bypasses MFA); sessions "
            "this bot issued (recorded JIT grants) excluded.",
        ),
        Rule(
            LOGIN_PROFILE_FOR_OTHER_USER,
            "Console password set for another user",
            Severity.HIGH,
            timedelta(hours=1),
            "CreateLoginProfile/UpdateLoginProfile for a different IAM user; medium when the user "
            "must reset the password at first sign-in.",
        ),
        Rule(
            ROLE_TRUST_OPENED,
            "Role trust opened",
            Severity.HIGH,
            timedelta(hours=1),
            "CreateRole/UpdateAssumeRolePolicy whose trust admits `*` (critical), an account outside "
            "[[accounts]]/the organization without ExternalId or MFA, or drops such a condition.",
        ),
        Rule(
            KEY_QUARANTINED,
            "Access key quarantined by AWS",
            Severity.CRITICAL,
            timedelta(hours=24),
            "AWS attached AWSCompromisedKeyQuarantine* to a user: it found the user's key exposed.",
        ),
        Rule(
            IAM_PRINCIPAL_CREATED,
            "IAM user or access key created",
            Severity.LOW,
            timedelta(hours=1),
            "CreateUser, or CreateAccessKey for oneself, by a principal outside "
            "[alerts] automation_principals.",
        ),
        Rule(
            SAML_PROVIDER_CHANGE,
            "Identity provider changed",
            Severity.HIGH,
            timedelta(hours=1),
            "A SAML or OIDC identity provider was created, updated or deleted.",
        ),
        Rule(
            LEAVE_ORGANIZATION,
            "Account left the organization",
            Severity.CRITICAL,
            timedelta(hours=1),
            "LeaveOrganization (or RemoveAccountFromOrganization): the account escapes the SCPs.",
        ),
        Rule(
            SECURITY_SERVICE_DISABLED,
            "Security service disabled",
            Severity.CRITICAL,
            timedelta(hours=1),
            "GuardDuty detector deleted/disabled, Config recorder stopped/deleted, VPC flow logs "
            "deleted, Security Hub disabled, or an Access Analyzer analyzer deleted.",
        ),
    )
}


def effective_rule(rule: Rule, config: Config) -> Rule:
    """The catalog rule with the TOML overrides applied."""
    override = config.alerts.rules.get(rule.id)
    if override is None:
        return rule
    return replace(
        rule,
        enabled=override.enabled,
        severity=Severity(override.severity) if override.severity else rule.severity,
        threshold=override.threshold if override.threshold is not None else rule.threshold,
        window=override.window if override.window is not None else rule.window,
        dedupe_window=override.dedupe_window if override.dedupe_window is not None else rule.dedupe_window,
    )


def rule_catalog(config: Config) -> list[Rule]:
    return [effective_rule(r, config) for r in RULES.values()]


def human_duration(delta: timedelta | None) -> str:
    if not delta:
        return "0s"
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
