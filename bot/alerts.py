"""Alerts on suspicious IAM activity: CloudTrail events in, stored alerts out.

The pieces, in the order an event meets them:

- ``CloudTrailEvent``: one normalised event, parsed from an EventBridge envelope (SQS) or from a
  LookupEvents record (whose ``CloudTrailEvent`` is a JSON string). Access Analyzer findings are
  normalised into the same model (``kind="access_analyzer"``).
- ``RULES``: the catalog. Each rule has an id, a severity, an optional threshold/window and a dedupe
  window; ``[alerts.rules.RULE_ID]`` in the TOML file overrides any of them (or disables the rule).
- ``ingest()``: in ONE SQLite transaction, claims the event id (a redelivered or re-read event is
  processed once), records the signals windowed rules count, and creates an alert or bumps the
  counter of the open alert with the same dedupe key. Posting to Slack is the handlers' job: an
  alert row with ``dirty > 0`` still has to be posted or its message updated, so a crash or restart
  between recording and posting loses nothing and repeats nothing.

Windows and dedupe use the events' own times (CloudTrail delivers late and out of order), so the
same events always produce the same alerts, whichever source delivered them and whenever.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.findings import Severity
from bot.settings import Config
from bot.store import Store, iso, migrations

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# The normalised event


class EventParseError(ValueError):
    """The message is not an event we can read (malformed JSON, missing ids): a poison message."""


class SessionIssuer(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: str | None = None
    arn: str | None = None
    user_name: str | None = Field(default=None, alias="userName")
    account_id: str | None = Field(default=None, alias="accountId")


class SessionContext(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    session_issuer: SessionIssuer | None = Field(default=None, alias="sessionIssuer")
    source_identity: str | None = Field(default=None, alias="sourceIdentity")
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def mfa_authenticated(self) -> bool:
        return str(self.attributes.get("mfaAuthenticated", "")).lower() == "true"


class UserIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: str = "Unknown"
    principal_id: str | None = Field(default=None, alias="principalId")
    arn: str | None = None
    account_id: str | None = Field(default=None, alias="accountId")
    access_key_id: str | None = Field(default=None, alias="accessKeyId")
    user_name: str | None = Field(default=None, alias="userName")
    invoked_by: str | None = Field(default=None, alias="invokedBy")
    session_context: SessionContext | None = Field(default=None, alias="sessionContext")

    @property
    def session_name(self) -> str | None:
        """The RoleSessionName of an assumed-role ARN (``…:assumed-role/Role/SESSION``)."""
        if self.type == "AssumedRole" and self.arn and ":assumed-role/" in self.arn:
            return self.arn.rsplit("/", 1)[-1]
        return None

    @property
    def source_identity(self) -> str | None:
        return self.session_context.source_identity if self.session_context else None

    @property
    def display_name(self) -> str:
        if self.type == "Root":
            return "root"
        if self.user_name:
            return self.user_name
        if self.type == "AssumedRole" and self.arn:
            parts = self.arn.split("/")
            return "/".join(parts[-2:]) if len(parts) >= 3 else self.arn
        return self.arn or self.principal_id or self.invoked_by or "unknown"


class CloudTrailEvent(BaseModel):
    """One CloudTrail management event (or Access Analyzer finding), whichever source brought it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    kind: Literal["cloudtrail", "access_analyzer"] = "cloudtrail"
    event_id: str = Field(alias="eventID", min_length=1)
    event_name: str = Field(alias="eventName", min_length=1)
    event_source: str = Field(default="", alias="eventSource")
    event_time: datetime = Field(alias="eventTime")
    event_type: str = Field(default="AwsApiCall", alias="eventType")
    aws_region: str = Field(default="", alias="awsRegion")
    source_ip: str | None = Field(default=None, alias="sourceIPAddress")
    user_agent: str | None = Field(default=None, alias="userAgent")
    account_id: str = Field(default="", alias="recipientAccountId")
    user_identity: UserIdentity = Field(default_factory=UserIdentity, alias="userIdentity")
    request_parameters: dict[str, Any] = Field(default_factory=dict, alias="requestParameters")
    response_elements: dict[str, Any] = Field(default_factory=dict, alias="responseElements")
    additional_event_data: dict[str, Any] = Field(default_factory=dict, alias="additionalEventData")
    error_code: str | None = Field(default=None, alias="errorCode")
    error_message: str | None = Field(default=None, alias="errorMessage")
    read_only: bool | None = Field(default=None, alias="readOnly")

    @field_validator("request_parameters", "response_elements", "additional_event_data", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # CloudTrail writes null for calls without parameters.
        return value if isinstance(value, dict) else {}

    @field_validator("event_time", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime:
        moment = parse_event_time(value)
        if moment is None:
            raise ValueError(f"unreadable time {str(value)[:40]!r}")
        return moment

    @property
    def failure(self) -> str | None:
        """Why the call failed, or None when it succeeded. CloudTrail writes failures three ways:
        ``errorCode``; ``errorMessage`` alone (sign-in events); or ``"Failure"`` as a value in
        ``responseElements`` (``{"ConsoleLogin": "Failure"}``, ``{"PasswordUpdated": "Failure"}``)."""
        if self.error_code:
            return self.error_code
        if self.error_message:
            return self.error_message
        for key, value in self.response_elements.items():
            if isinstance(value, str) and value.strip().lower() == "failure":
                return f"{key}: Failure"
        return None

    @property
    def succeeded(self) -> bool:
        return self.failure is None

    @property
    def is_sign_in(self) -> bool:
        """A console sign-in step (ConsoleLogin, PasswordUpdated, ExternalIdPDirectoryLogin, …)."""
        return self.event_source == "signin.amazonaws.com" or self.event_type == "AwsConsoleSignIn"

    @property
    def principal_arn(self) -> str | None:
        return self.user_identity.arn

    @property
    def action(self) -> str:
        """``iam:AttachUserPolicy``-style name."""
        service = self.event_source.split(".", 1)[0] if self.event_source else "aws"
        return f"{service}:{self.event_name}"

    @property
    def console_login_result(self) -> str | None:
        """ "Success" / "Failure" for ConsoleLogin events, else None."""
        if self.event_name != "ConsoleLogin":
            return None
        return "Success" if self.succeeded else "Failure"


_EVENT_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*(Z|UTC|[+-]\d{2}:?\d{2})?",
    re.I,
)


def parse_event_time(value: Any) -> datetime | None:
    """A CloudTrail time in any shape seen in the wild → aware UTC, whole seconds; None if unreadable.

    ``2026-11-29T12:00:00Z``, with a space instead of ``T``, with milli/micro/nanoseconds, with an
    offset or none (UTC), or epoch seconds/milliseconds (LookupEvents, SQS ``SentTimestamp``).
    """
    if isinstance(value, datetime):
        if value.tzinfo is UTC and not value.microsecond:
            return value
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) / 1000 if value > 10**11 else float(value)
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_event_time(int(text))
        match = _EVENT_TIME.fullmatch(text)
        if not match:
            return None
        day, clock, _fraction, zone = match.groups()
        if clock.count(":") == 1:
            clock += ":00"
        zone = "+00:00" if not zone or zone.upper() in ("Z", "UTC") else zone
        if len(zone) == 5:  # +0100
            zone = f"{zone[:3]}:{zone[3:]}"
        try:
            moment = datetime.fromisoformat(f"{day}T{clock}{zone}")
        except ValueError:
            return None
    else:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def derived_event_id(detail: dict[str, Any]) -> str:
    """A stable id for a record that lacks ``eventID``: the same content always gives the same id,
    so a redelivery is still recognised (and two different records never share one)."""
    canonical = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
    return "derived-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _from_detail(
    detail: dict[str, Any],
    *,
    account: str | None,
    region: str | None,
    fallback_times: Iterable[Any] = (),
) -> CloudTrailEvent:
    """``fallback_times`` (the envelope's time, the delivery time) stand in, in order, for a
    missing or unreadable ``eventTime``: such a record is still an event, never a poison message."""
    data = dict(detail)
    if not isinstance(data.get("eventID"), str) or not data["eventID"].strip():
        data["eventID"] = derived_event_id(detail)
    moment = parse_event_time(data.get("eventTime"))
    if moment is None:
        moment = next((t for t in map(parse_event_time, fallback_times) if t is not None), None)
        if moment is None:
            raise EventParseError("not a CloudTrail record (no readable eventTime and no delivery time)")
    data["eventTime"] = moment  # parsed once: the model's validator takes a datetime as it is
    # Delivered EventBridge envelopes may lack `account`; the record's own recipientAccountId wins.
    if not data.get("recipientAccountId"):
        identity = data.get("userIdentity")
        identity_account = identity.get("accountId") if isinstance(identity, dict) else None
        data["recipientAccountId"] = account or identity_account or ""
    if not data.get("awsRegion") and region:
        data["awsRegion"] = region
    try:
        return CloudTrailEvent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EventParseError(f"not a CloudTrail record ({where}: {first['msg']})") from None


def _from_access_analyzer(envelope: dict[str, Any]) -> CloudTrailEvent:
    detail = envelope.get("detail") or {}
    finding_id = detail.get("id")
    if not finding_id:
        raise EventParseError("Access Analyzer finding without an id")
    updated = detail.get("updatedAt") or detail.get("analyzedAt") or envelope.get("time")
    return CloudTrailEvent(
        kind="access_analyzer",
        event_id=f"access-analyzer:{finding_id}:{detail.get('status', '')}:{updated}",
        event_name="AccessAnalyzerFinding",
        event_source="access-analyzer.amazonaws.com",
        event_time=updated or envelope.get("time"),
        event_type="AwsServiceEvent",
        aws_region=detail.get("region") or envelope.get("region") or "",
        account_id=detail.get("accountId") or envelope.get("account") or "",
        user_identity=UserIdentity(type="AWSService", invoked_by="access-analyzer.amazonaws.com"),
        request_parameters=detail,
    )


def parse_eventbridge(
    body: str | bytes | dict[str, Any], *, delivered_at: Any = None
) -> CloudTrailEvent | None:
    """An EventBridge envelope (an SQS message body) → event; None for event types we do not watch.

    A record without ``eventID`` gets a content-derived id; one without a readable ``eventTime``
    takes the envelope's ``time``, else ``delivered_at`` (SQS ``SentTimestamp``).
    Raises EventParseError for anything unreadable (a poison message).
    """
    if isinstance(body, bytes | str):
        try:
            envelope = json.loads(body)
        except ValueError:
            raise EventParseError("message body is not JSON") from None
    else:
        envelope = body
    if not isinstance(envelope, dict) or not isinstance(envelope.get("detail"), dict):
        raise EventParseError("message is not an EventBridge event (no detail object)")
    detail_type = envelope.get("detail-type", "")
    if detail_type == "Access Analyzer Finding" or (
        envelope.get("source") == "aws.access-analyzer" and not detail_type.endswith("via CloudTrail")
    ):
        # Access Analyzer's own events; its API calls (DeleteAnalyzer) come as CloudTrail records.
        if detail_type != "Access Analyzer Finding":
            return None
        try:
            return _from_access_analyzer(envelope)
        except ValidationError as exc:
            raise EventParseError(f"unreadable Access Analyzer finding ({exc.errors()[0]['msg']})") from None
    if "eventID" not in envelope["detail"] and "eventName" not in envelope["detail"]:
        return None  # some other AWS event routed to the queue: nothing to alert on
    return _from_detail(
        envelope["detail"],
        account=envelope.get("account"),
        region=envelope.get("region"),
        fallback_times=(envelope.get("time"), delivered_at),
    )


def parse_lookup(record: dict[str, Any]) -> CloudTrailEvent:
    """A LookupEvents ``Events[]`` entry → event (its ``CloudTrailEvent`` is a JSON string)."""
    raw = record.get("CloudTrailEvent")
    try:
        detail = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise EventParseError("LookupEvents record with unreadable CloudTrailEvent") from None
    if not isinstance(detail, dict):
        raise EventParseError("LookupEvents record without CloudTrailEvent")
    if not detail.get("eventID") and record.get("EventId"):
        detail["eventID"] = record["EventId"]
    detail.setdefault("eventName", record.get("EventName"))
    return _from_detail(detail, account=None, region=None, fallback_times=(record.get("EventTime"),))


# ---------------------------------------------------------------------------------------------
# The rule catalog

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


# ---------------------------------------------------------------------------------------------
# Tables


@migrations()
def m070_alerts(db: sqlite_utils.Database) -> None:
    # One row per event id ever processed: the exactly-once guard for redeliveries and re-reads.
    db["alert_events"].create(
        {
            "event_id": str,
            "source": str,
            "event_name": str,
            "event_time": str,
            "account_id": str,
            "processed_at": str,
            "alert_ids": str,
        },
        pk="event_id",
    )
    db["alert_events"].create_index(["processed_at"])
    # What windowed rules count (failed sign-ins), by event time.
    db["alert_signals"].create(
        {"id": int, "rule_id": str, "account_id": str, "subject": str, "at": str, "event_id": str},
        pk="id",
    )
    db["alert_signals"].create_index(["rule_id", "account_id", "at"])
    db["alerts"].create(
        {
            "id": int,
            "rule_id": str,
            "severity": str,
            "dedupe_key": str,
            "title": str,
            "account_id": str,
            "region": str,
            "event_name": str,
            "event_source": str,
            "first_event_id": str,
            "last_event_id": str,
            "principal_arn": str,
            "principal_type": str,
            "principal_name": str,
            "owner": str,
            "source_ip": str,
            "user_agent": str,
            "first_seen": str,
            "last_seen": str,
            "count": int,
            "jit_request_id": str,
            "jit_requester": str,
            "context": str,
            "state": str,
            "acknowledged_by": str,
            "acknowledged_at": str,
            "actor_status": str,
            "actor_user": str,
            "actor_asked_by": str,
            "actor_asked_at": str,
            "actor_deadline": str,
            "actor_answered_at": str,
            "escalated_at": str,
            "channel": str,
            "ts": str,
            "dm_channel": str,
            "dm_ts": str,
            "dirty": int,
            "created_at": str,
        },
        pk="id",
        defaults={"count": 1, "state": "open", "actor_status": "", "dirty": 1},
        not_null={"rule_id", "severity", "dedupe_key", "first_seen", "last_seen"},
    )
    db["alerts"].create_index(["dedupe_key", "first_seen"])
    db["alerts"].create_index(["dirty"])
    db["alerts"].create_index(["actor_status", "actor_deadline"])


@migrations()
def m071_alert_post_claims(db: sqlite_utils.Database) -> None:
    # Two instances delivering at once must not both post a new alert: the first claims it.
    db["alerts"].add_column("post_claimed_until", str)


@migrations()
def m072_alert_signal_details(db: sqlite_utils.Database) -> None:
    # What a signal was about (the denied action for UNAUTHORIZED_API_CALLS' "top denied actions").
    db["alert_signals"].add_column("detail", str)
    # Covering indexes: per-subject counts (failures per user, denials per principal) and
    # distinct-subject counts (password spray) read the index alone, never the table.
    db["alert_signals"].create_index(["rule_id", "account_id", "subject", "at"])
    db["alert_signals"].create_index(["rule_id", "account_id", "at", "subject"])
    # The last trust policy seen in events per role, so a change that drops an ExternalId/MFA
    # condition is recognised as one (the scan snapshot is the fallback).
    db["alert_role_trusts"].create(
        {"account_id": str, "role_name": str, "guarded": str, "at": str, "event_id": str},
        pk=("account_id", "role_name"),
    )


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Candidate:
    """What one rule says about one event, before dedupe."""

    rule: Rule
    dedupe_key: str
    title: str
    severity: Severity
    context: dict[str, Any] = field(default_factory=dict)
    # Whose Slack member owns the alert when that is not the actor (the quarantined key's user).
    owner_identity: UserIdentity | None = None


@dataclass
class Enrichment:
    """What we know beyond the event: the mapped Slack member and the JIT request, if any."""

    owner: str | None = None
    jit_request_id: str | None = None
    jit_requester: str | None = None


@dataclass
class IngestResult:
    event_id: str
    duplicate: bool = False
    alert_ids: list[int] = field(default_factory=list)
    new_alert_ids: list[int] = field(default_factory=list)


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
# Trust-policy condition keys that keep "who may assume" narrow.
_TRUST_GUARDS = frozenset({"sts:externalid", "aws:multifactorauthpresent", "aws:multifactorauthage"})
_TRUST_SCOPES = frozenset(
    {
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
    }
)
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


class _EffectiveRules(dict):
    """Rule id → the rule with this config's overrides, computed on first use (most events touch
    two or three rules; building all twenty per event costs more than evaluating them)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def __missing__(self, rule_id: str) -> Rule:
        rule = self[rule_id] = effective_rule(RULES[rule_id], self.config)
        return rule


# Tables other features own that some rules read (access_grants, snapshots). Migrations create
# every table at start-up, so a table seen once stays; only "present" is remembered.
_TABLES_SEEN: set[tuple[int, str]] = set()


def _has_table(db: sqlite_utils.Database, name: str) -> bool:
    key = (id(db.conn), name)
    if key in _TABLES_SEEN:
        return True
    present = (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()
        is not None
    )
    if present:
        _TABLES_SEEN.add(key)
    return present


class _Evaluator:
    def __init__(self, config: Config, db: sqlite_utils.Database):
        self.config = config
        self.db = db
        self.rules = _EffectiveRules(config)

    def run(self, event: CloudTrailEvent) -> list[Candidate]:
        found: list[Candidate] = []
        for check in (
            self.root,
            self.console_failures,
            self.console_no_mfa,
            self.policy_changes,
            self.access_key_for_other,
            self.mfa_deactivated,
            self.trail_tampering,
            self.access_analyzer,
            self.unauthorized_calls,
            self.console_signin_token,
            self.login_profile_for_other,
            self.role_trust_opened,
            self.key_quarantined,
            self.principal_created,
            self.identity_provider_change,
            self.leave_organization,
            self.security_service_disabled,
        ):
            found += check(event)
        # One alert per event: the most specific rule wins over the generic policy-change rule.
        if any(c.rule.id in _MORE_SPECIFIC_THAN_POLICY_CHANGE for c in found):
            found = [c for c in found if c.rule.id != IAM_POLICY_CHANGE]
        return [c for c in found if c.rule.enabled]

    def enabled(self, rule_id: str) -> bool:
        return self.rules[rule_id].enabled

    def candidate(self, rule_id: str, key: str, title: str, **context: Any) -> Candidate:
        rule = self.rules[rule_id]
        severity = context.pop("severity", None) or rule.severity
        owner_identity = context.pop("owner_identity", None)
        return Candidate(rule, f"{rule_id}|{key}", title, severity, context, owner_identity)

    # -- rules ----------------------------------------------------------------------------

    def root(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.user_identity.type != "Root" or _by_service(e):
            return []
        acct = e.account_id
        login = e.console_login_result
        if e.is_sign_in and not e.succeeded:
            # ConsoleLogin, PasswordUpdated, ExternalIdPDirectoryLogin, CredentialVerification…:
            # a failed step of signing in as root, whichever way CloudTrail wrote the failure.
            if e.event_name == "ConsoleLogin":
                title = "Failed console sign-in as the root user"
            elif e.event_name == "PasswordUpdated":
                title = "Failed root password change"
            else:
                title = f"Failed root sign-in ({e.event_name})"
            return [self.candidate(ROOT_LOGIN_FAILED, acct, title, reason=e.failure or "")]
        if login == "Success":
            mfa = str(e.additional_event_data.get("MFAUsed", "")).lower() == "yes"
            return [
                self.candidate(
                    ROOT_ACTIVITY,
                    acct,
                    "Root user signed in to the console" + ("" if mfa else " without MFA"),
                    mfa_used="yes" if mfa else "no",
                )
            ]
        if not e.succeeded:
            title = f"Root user tried {e.action} ({e.error_code or 'failed'})"
        elif e.event_name == "CreateAccessKey" and not e.request_parameters.get("userName"):
            title = "Root user created an access key for itself"
        else:
            title = f"Root user called {e.action}"
        return [self.candidate(ROOT_ACTIVITY, acct, title)]

    def _window_count(
        self, rule: Rule, account: str, at: datetime, *, distinct: bool, subject: str = ""
    ) -> int:
        """The largest count (or number of distinct subjects) in any window of ``rule.window`` that
        contains ``at``. Looking past ``at`` too means a late, out-of-order event still completes
        a burst whose later events arrived first."""
        window = rule.window or timedelta(0)
        where = "rule_id = ? AND account_id = ? AND at > ? AND at <= ?"
        params: list[Any] = [rule.id, account, iso(at - window), iso(at)]
        if not distinct:
            where += " AND subject = ?"
            params.append(subject)
        what = "COUNT(DISTINCT subject)" if distinct else "COUNT(*)"
        best = int(self.db.execute(f"SELECT {what} FROM alert_signals WHERE {where}", params).fetchone()[0])  # noqa: S608
        later_sql = (
            "SELECT DISTINCT at FROM alert_signals WHERE rule_id = ? AND account_id = ? AND at > ? AND at < ?"
        )
        later_params: list[Any] = [rule.id, account, iso(at), iso(at + window)]
        if not distinct:
            later_sql += " AND subject = ?"
            later_params.append(subject)
        later = [
            datetime.fromisoformat(r[0]) for r in self.db.execute(later_sql + " ORDER BY at", later_params)
        ]
        # Events arrived out of order: windows ending after `at` that still contain it.
        for end in later:
            params[2:4] = [iso(end - window), iso(end)]
            count = self.db.execute(f"SELECT {what} FROM alert_signals WHERE {where}", params).fetchone()[0]  # noqa: S608
            best = max(best, int(count))
        return best

    def signal(self, rule_id: str, e: CloudTrailEvent, subject: str, detail: str | None = None) -> None:
        """Record what a windowed rule counts, at the event's own time."""
        self.db.execute(
            "INSERT INTO alert_signals (rule_id, account_id, subject, at, event_id, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [rule_id, e.account_id, subject, iso(e.event_time), e.event_id, detail],
        )

    def console_failures(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.console_login_result != "Failure":
            return []
        root = e.user_identity.type == "Root"
        user = "root" if root else e.user_identity.user_name or e.user_identity.arn or HIDDEN_USER
        found: list[Candidate] = []
        # Root's failures are ROOT_LOGIN_FAILED on their own; they also make one more user sprayed.
        for rule_id in (PASSWORD_SPRAY,) if root else (CONSOLE_LOGIN_FAILURES, PASSWORD_SPRAY):
            self.signal(rule_id, e, user)
        per_user = self.rules[CONSOLE_LOGIN_FAILURES]
        n = (
            0
            if root
            else self._window_count(per_user, e.account_id, e.event_time, distinct=False, subject=user)
        )
        if not root and n >= (per_user.threshold or 1):
            found.append(
                self.candidate(
                    CONSOLE_LOGIN_FAILURES,
                    f"{e.account_id}|{user}",
                    f"{n} failed console sign-ins for {user} within {human_duration(per_user.window)}",
                    failures=n,
                    user=user,
                )
            )
        spray = self.rules[PASSWORD_SPRAY]
        users = self._window_count(spray, e.account_id, e.event_time, distinct=True)
        if users > (spray.threshold or 0):
            found.append(
                self.candidate(
                    PASSWORD_SPRAY,
                    e.account_id,
                    f"Failed console sign-ins for {users} different users within {human_duration(spray.window)}",
                    distinct_users=users,
                )
            )
        return found

    def console_no_mfa(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.console_login_result != "Success" or e.user_identity.type != "IAMUser":
            return []
        if str(e.additional_event_data.get("MFAUsed", "")).lower() != "no" or _federated_sign_in(e):
            return []  # federated sign-ins: the identity provider, not IAM, decides on MFA
        user = e.user_identity.user_name or _actor(e)
        return [
            self.candidate(
                CONSOLE_LOGIN_NO_MFA,
                f"{e.account_id}|{user}",
                f"{user} signed in to the console without MFA",
            )
        ]

    def policy_changes(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_source != "iam.amazonaws.com" or not e.succeeded:
            return []
        found: list[Candidate] = []
        kind, target = _policy_target(e)
        params = e.request_parameters
        admin_arns = set(self.config.alerts.admin_policies)
        if e.event_name in ATTACH_EVENTS and str(params.get("policyArn", "")) in admin_arns:
            policy = _name_of(str(params["policyArn"]))
            found.append(
                self.candidate(
                    ADMIN_POLICY_ATTACHED,
                    f"{e.account_id}|{kind}|{target}|{policy}",
                    f"{_actor(e)} attached {policy} to {kind} {target}",
                    target=f"{kind} {target}",
                    policy=policy,
                )
            )
        elif e.event_name in INLINE_PUT_EVENTS and _policy_grants_everything(params.get("policyDocument")):
            found.append(
                self.candidate(
                    ADMIN_POLICY_ATTACHED,
                    f"{e.account_id}|{kind}|{target}|{params.get('policyName', '')}",
                    f"{_actor(e)} gave {kind} {target} an inline policy allowing everything",
                    target=f"{kind} {target}",
                    policy=str(params.get("policyName", "")),
                )
            )
        if e.event_name in POLICY_CHANGE_EVENTS:
            roles, policies = _critical_names(self.config)
            touched_policy = _name_of(str(params.get("policyArn") or params.get("policyName") or ""))
            critical = (kind == "role" and target in roles) or (touched_policy and touched_policy in policies)
            found.append(
                self.candidate(
                    IAM_POLICY_CHANGE,
                    f"{e.account_id}|{_actor(e)}|{e.event_name}|{kind}|{target}",
                    f"{_actor(e)} called {e.event_name} on {kind} {target}"
                    + (" (critical)" if critical else ""),
                    target=f"{kind} {target}",
                    severity=Severity.CRITICAL if critical else None,
                    policy=touched_policy or None,
                )
            )
        return found

    def access_key_for_other(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "CreateAccessKey" or not e.succeeded:
            return []
        target = e.request_parameters.get("userName")
        if not target:
            return []  # a key for the caller itself
        ident = e.user_identity
        if ident.type == "IAMUser" and ident.user_name == target:
            return []
        key_id = ((e.response_elements or {}).get("accessKey") or {}).get("accessKeyId", "")
        return [
            self.candidate(
                ACCESS_KEY_CREATED_FOR_OTHER_USER,
                f"{e.account_id}|{_actor(e)}|{target}",
                f"{_actor(e)} created an access key for {target}",
                target=f"user {target}",
                access_key_id=key_id,
            )
        ]

    def mfa_deactivated(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name not in MFA_EVENTS or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        params = e.request_parameters
        target = params.get("userName") or _name_of(str(params.get("serialNumber", ""))) or "unknown"
        verb = "deactivated MFA for" if e.event_name == "DeactivateMFADevice" else "deleted the MFA device"
        return [
            self.candidate(
                MFA_DEACTIVATED,
                f"{e.account_id}|{target}",
                f"{_actor(e)} {verb} {target}",
                target=f"user {target}",
            )
        ]

    def trail_tampering(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_source != "cloudtrail.amazonaws.com" or e.event_name not in TRAIL_TAMPERING_EVENTS:
            return []
        if not e.succeeded:
            return []
        trail = _name_of(
            str(e.request_parameters.get("name") or e.request_parameters.get("trailName") or "?")
        )
        if e.event_name == "PutEventSelectors":
            narrowed = selectors_drop_management_events(e.request_parameters)
            if narrowed is None:
                return [
                    self.candidate(
                        CLOUDTRAIL_SELECTORS_CHANGED,
                        f"{e.account_id}|{trail}",
                        f"{_actor(e)} changed the event selectors of trail {trail} "
                        "(management events still logged)",
                        target=f"trail {trail}",
                    )
                ]
            return [
                self.candidate(
                    CLOUDTRAIL_TAMPERING,
                    f"{e.account_id}|{trail}|{e.event_name}",
                    f"{_actor(e)} called {e.event_name} on trail {trail}: {narrowed}",
                    target=f"trail {trail}",
                    change=narrowed,
                )
            ]
        return [
            self.candidate(
                CLOUDTRAIL_TAMPERING,
                f"{e.account_id}|{trail}|{e.event_name}",
                f"{_actor(e)} called {e.event_name} on trail {trail}",
                target=f"trail {trail}",
            )
        ]

    def access_analyzer(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.kind != "access_analyzer":
            return []
        finding = e.request_parameters
        if finding.get("status") != "ACTIVE":
            return []
        resource = str(finding.get("resource", "?"))
        principal = finding.get("principal") or {}
        who = (
            "anyone (public)"
            if finding.get("isPublic")
            else ", ".join(str(v) for v in principal.values()) or "an external principal"
        )
        return [
            self.candidate(
                ACCESS_ANALYZER_FINDING,
                f"{e.account_id}|{finding.get('id')}",
                f"{finding.get('resourceType', 'A resource')} {_name_of(resource)} is accessible by {who}",
                target=resource,
                actions=", ".join(finding.get("action") or [])[:500],
                finding_id=str(finding.get("id")),
            )
        ]

    # -- probing, sessions, persistence ---------------------------------------------------

    def unauthorized_calls(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.error_code not in DENIED_ERRORS or _by_service(e) or e.kind != "cloudtrail":
            return []
        rule = self.rules[UNAUTHORIZED_API_CALLS]
        who = e.principal_arn or _actor(e)
        self.signal(UNAUTHORIZED_API_CALLS, e, who, e.action)
        n = self._window_count(rule, e.account_id, e.event_time, distinct=False, subject=who)
        if n < (rule.threshold or 1):
            return []
        window = rule.window or timedelta(0)
        top = self.db.execute(
            "SELECT detail, COUNT(*) AS n FROM alert_signals WHERE rule_id = ? AND account_id = ? "
            "AND subject = ? AND at > ? AND at <= ? GROUP BY detail ORDER BY n DESC, detail LIMIT 5",
            [UNAUTHORIZED_API_CALLS, e.account_id, who, iso(e.event_time - window), iso(e.event_time)],
        ).fetchall()
        return [
            self.candidate(
                UNAUTHORIZED_API_CALLS,
                f"{e.account_id}|{who}",
                f"{_actor(e)} was denied {n} API calls within {human_duration(rule.window)}",
                denied_calls=n,
                top_denied_actions=", ".join(f"{action} ×{count}" for action, count in top),
            )
        ]

    def _bot_issued_session(self, e: CloudTrailEvent) -> bool:
        """A session the access feature issued: its name carries the bot's prefix AND the grant is
        recorded (a name alone is attacker-chosen and proves nothing)."""
        names = _session_names(e)
        if not any(n.startswith(BOT_SESSION_PREFIX) for n in names):
            return False
        if not _has_table(self.db, "access_grants"):
            return False
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT 1 FROM access_grants WHERE session_name IN ({marks}) LIMIT 1",  # noqa: S608
            names,
        ).fetchone()
        return row is not None

    def console_signin_token(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "GetSigninToken" or not e.succeeded or not e.is_sign_in:
            return []
        if self._bot_issued_session(e):
            return []
        claims = any(n.startswith(BOT_SESSION_PREFIX) for n in _session_names(e))
        return [
            self.candidate(
                CONSOLE_SIGNIN_TOKEN,
                f"{e.account_id}|{e.principal_arn or _actor(e)}",
                f"{_actor(e)} turned API credentials into a console session (GetSigninToken)",
                note="named like an iamwarden session, but no such grant is recorded" if claims else None,
            )
        ]

    def login_profile_for_other(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in LOGIN_PROFILE_EVENTS
            or not e.succeeded
            or e.event_source != "iam.amazonaws.com"
        ):
            return []
        target = e.request_parameters.get("userName")
        ident = e.user_identity
        if not target or (ident.type == "IAMUser" and ident.user_name == target):
            return []  # one's own password
        reset = str(e.request_parameters.get("passwordResetRequired", "")).lower() == "true"
        verb = (
            "created a console password for"
            if e.event_name == "CreateLoginProfile"
            else "changed the console password of"
        )
        return [
            self.candidate(
                LOGIN_PROFILE_FOR_OTHER_USER,
                f"{e.account_id}|{_actor(e)}|{target}",
                f"{_actor(e)} {verb} {target}" + ("" if reset else " (no reset required)"),
                target=f"user {target}",
                password_reset_required="yes" if reset else "no",
                severity=Severity.MEDIUM if reset else None,
            )
        ]

    def _our_accounts(self, e: CloudTrailEvent) -> set[str]:
        ours = {e.account_id} | {a.id for a in self.config.accounts}
        if _has_table(self.db, "snapshots"):
            ours |= {r[0] for r in self.db.execute("SELECT DISTINCT account_id FROM snapshots") if r[0]}
        return ours

    def _previous_guards(self, account: str, role: str, at: datetime) -> set[str] | None:
        """Principals the role's previous trust policy guarded with ExternalId/MFA: from the last
        trust change seen in events, else from the latest scan snapshot; None when unknown."""
        row = self.db.execute(
            "SELECT guarded, at FROM alert_role_trusts WHERE account_id = ? AND role_name = ?",
            [account, role],
        ).fetchone()
        if row and row[1] < iso(at):
            return set(json.loads(row[0]))
        if not _has_table(self.db, "snapshots"):
            return None
        try:
            doc = self.db.execute(
                "SELECT json_extract(j.value, '$.AssumeRolePolicyDocument') FROM snapshots s, "
                "json_each(s.inventory, '$.roles') j WHERE s.account_id = ? AND s.status = 'ok' "
                "AND s.scanned_at < ? AND json_extract(j.value, '$.RoleName') = ? "
                "ORDER BY s.scanned_at DESC LIMIT 1",
                [account, iso(at), role],
            ).fetchone()
        except Exception:  # an unreadable old snapshot must not lose the alert
            return None
        if not doc or not doc[0]:
            return None
        try:
            return trust_summary(doc[0], role, ours=set()).guarded
        except Exception:
            return None

    def role_trust_opened(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name not in TRUST_EVENTS or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        params = e.request_parameters
        role = str(params.get("roleName") or "?")
        document = params.get(
            "policyDocument" if e.event_name == "UpdateAssumeRolePolicy" else "assumeRolePolicyDocument"
        )
        if not document:
            return []
        key = f"{e.account_id}|{role}"
        try:
            trust = trust_summary(document, role, ours=self._our_accounts(e))
        except Exception as exc:  # never a silent pass: say we could not read it
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} set a trust policy on role {role} that could not be read",
                    target=f"role {role}",
                    reason=str(exc)[:300],
                )
            ]
        previous = self._previous_guards(e.account_id, role, e.event_time)
        self.db.execute(
            "INSERT INTO alert_role_trusts (account_id, role_name, guarded, at, event_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (account_id, role_name) DO UPDATE SET guarded = excluded.guarded, at = excluded.at, "
            "event_id = excluded.event_id WHERE excluded.at >= alert_role_trusts.at",
            [e.account_id, role, json.dumps(sorted(trust.guarded)), iso(e.event_time), e.event_id],
        )
        dropped = sorted((previous or set()) & trust.unguarded)
        if trust.public:
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} let anyone (`*`) assume role {role}",
                    target=f"role {role}",
                    severity=Severity.CRITICAL,
                )
            ]
        if trust.outside or dropped:
            what = []
            if trust.outside:
                what.append(f"account {', '.join(trust.outside)} (no ExternalId or MFA condition)")
            if dropped:
                what.append(f"{', '.join(dropped)} without the ExternalId/MFA condition it had")
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} let {' and '.join(what)} assume role {role}",
                    target=f"role {role}",
                    outside_accounts=", ".join(trust.outside) or None,
                    dropped_condition_for=", ".join(dropped) or None,
                )
            ]
        return []

    def key_quarantined(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "AttachUserPolicy" or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        policy = str(e.request_parameters.get("policyArn") or "")
        user = e.request_parameters.get("userName")
        if not policy.startswith(QUARANTINE_POLICY_PREFIX) or not user:
            return []
        user_arn = f"arn:aws:iam::{e.account_id}:user/{user}"
        return [
            self.candidate(
                KEY_QUARANTINED,
                f"{e.account_id}|{user}",
                f"AWS quarantined {user}'s access key: it found the key exposed",
                target=f"user {user}",
                user=str(user),
                user_arn=user_arn,
                policy=_name_of(policy),
                owner_identity=UserIdentity(
                    type="IAMUser", arn=user_arn, user_name=str(user), account_id=e.account_id
                ),
            )
        ]

    def _automation(self, e: CloudTrailEvent) -> bool:
        from bot.policy import arn_matches

        ident = e.user_identity
        arns = [ident.arn]
        if ident.session_context and ident.session_context.session_issuer:
            arns.append(ident.session_context.session_issuer.arn)
        patterns = self.config.alerts.automation_principals
        return any(arn and arn_matches(p, arn) for p in patterns for arn in arns)

    def principal_created(self, e: CloudTrailEvent) -> list[Candidate]:
        # Root's calls are ROOT_ACTIVITY (critical) already; one alert says it.
        if e.event_source != "iam.amazonaws.com" or not e.succeeded or e.user_identity.type == "Root":
            return []
        if e.event_name == "CreateUser":
            target = str(e.request_parameters.get("userName") or "?")
            title = f"{_actor(e)} created IAM user {target}"
        elif e.event_name == "CreateAccessKey":
            ident = e.user_identity
            target = e.request_parameters.get("userName")
            if target and not (ident.type == "IAMUser" and ident.user_name == target):
                return []  # another user's key is ACCESS_KEY_CREATED_FOR_OTHER_USER
            target = ident.user_name or _actor(e)
            title = f"{_actor(e)} created an access key for itself"
        else:
            return []
        if self._automation(e):
            return []
        key_id = ((e.response_elements or {}).get("accessKey") or {}).get("accessKeyId")
        return [
            self.candidate(
                IAM_PRINCIPAL_CREATED,
                f"{e.account_id}|{e.event_name}|{target}",
                title,
                target=f"user {target}",
                access_key_id=key_id,
            )
        ]

    def identity_provider_change(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in IDENTITY_PROVIDER_EVENTS
            or not e.succeeded
            or e.event_source != "iam.amazonaws.com"
        ):
            return []
        params = e.request_parameters
        provider = (
            params.get("sAMLProviderArn")
            or params.get("samlProviderArn")
            or params.get("openIDConnectProviderArn")
            or params.get("name")
            or params.get("url")
            or ((e.response_elements or {}).get("sAMLProviderArn"))
            or ((e.response_elements or {}).get("openIDConnectProviderArn"))
            or "?"
        )
        name = _name_of(str(provider)) if str(provider).startswith("arn:") else str(provider)
        return [
            self.candidate(
                SAML_PROVIDER_CHANGE,
                f"{e.account_id}|{name}",
                f"{_actor(e)} called {e.event_name} on identity provider {name}",
                target=f"identity provider {name}",
            )
        ]

    def leave_organization(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in LEAVE_ORGANIZATION_EVENTS
            or not e.succeeded
            or e.event_source != "organizations.amazonaws.com"
        ):
            return []
        leaving = str(e.request_parameters.get("accountId") or e.account_id)
        return [
            self.candidate(
                LEAVE_ORGANIZATION,
                leaving,
                f"{_actor(e)} took account {leaving} out of the organization ({e.event_name})",
                target=f"account {leaving}",
            )
        ]

    def security_service_disabled(self, e: CloudTrailEvent) -> list[Candidate]:
        what = SECURITY_SERVICE_EVENTS.get((e.event_source, e.event_name))
        if what is None or not e.succeeded:
            return []
        params = e.request_parameters
        if e.event_name == "UpdateDetector" and params.get("enable") is not False:
            return []  # a settings change that keeps the detector on
        resource = (
            params.get("detectorId")
            or params.get("configurationRecorderName")
            or params.get("deliveryChannelName")
            or ", ".join(_flow_log_ids(params))
            or params.get("analyzerName")
            or ""
        )
        return [
            self.candidate(
                SECURITY_SERVICE_DISABLED,
                f"{e.account_id}|{e.aws_region}|{e.event_name}|{resource}",
                f"{_actor(e)}: {what}"
                + (f" ({resource})" if resource else "")
                + f" in {e.aws_region or '?'}",
                target=str(resource) or None,
            )
        ]


def _flow_log_ids(value: Any) -> list[str]:
    """``fl-…`` ids anywhere in DeleteFlowLogs' parameters (CloudTrail nests them in an EC2 query shape)."""
    if isinstance(value, str):
        return [value] if value.startswith("fl-") else []
    if isinstance(value, dict):
        return [i for v in value.values() for i in _flow_log_ids(v)]
    if isinstance(value, list):
        return [i for v in value for i in _flow_log_ids(v)]
    return []


_MORE_SPECIFIC_THAN_POLICY_CHANGE = frozenset({ADMIN_POLICY_ATTACHED, ROLE_TRUST_OPENED, KEY_QUARANTINED})


@dataclass
class TrustSummary:
    """Who a role trust policy lets assume the role, as ROLE_TRUST_OPENED judges it."""

    public: bool = False  # `*` (any AWS account) with no org/account/ARN scoping condition
    outside: list[str] = field(default_factory=list)  # accounts not ours, unguarded
    guarded: set[str] = field(default_factory=set)  # principals behind ExternalId/MFA
    unguarded: set[str] = field(default_factory=set)  # principals with no such condition


def _allows_assume(actions: tuple[str, ...] | None, not_actions: tuple[str, ...] | None) -> bool:
    if not_actions is not None:
        return True  # NotAction in a trust policy: assume it admits AssumeRole* (never fail open)
    return any(
        a.lower() in ("*", "sts:*", "sts:assume*") or a.lower().startswith("sts:assumerole")
        for a in actions or ()
    )


def _principal_account(principal: str) -> str | None:
    if principal.isdigit() and len(principal) == 12:
        return principal
    parts = principal.split(":")
    return parts[4] if len(parts) > 4 and parts[0] == "arn" else None


def trust_summary(document: Any, role: str, *, ours: set[str]) -> TrustSummary:
    """Read a trust policy with the project's policy parser (``bot.policy``); raises
    ``PolicyParseError`` on anything that is not policy grammar."""
    from bot.policy import PolicySource, parse_policy

    summary = TrustSummary()
    for statement in parse_policy(document, PolicySource("trust", role)):
        if statement.effect != "Allow" or not _allows_assume(statement.actions, statement.not_actions):
            continue
        keys = {k.lower() for block in statement.conditions.values() for k in block}
        principal = statement.principal
        if principal == "*":
            principals = ["*"]
        elif isinstance(principal, dict):
            principals = [str(p) for p in _as_list(principal.get("AWS"))]
        else:
            principals = []
        guarded = bool(keys & _TRUST_GUARDS)
        for p in principals:
            (summary.guarded if guarded else summary.unguarded).add(p)
            account = "*" if p == "*" else _principal_account(p)
            if account is not None and "*" in account:
                if not keys & _TRUST_SCOPES:
                    summary.public = True
            elif account and account not in ours and not guarded and account not in summary.outside:
                summary.outside.append(account)
    return summary


def human_duration(delta: timedelta | None) -> str:
    if not delta:
        return "0s"
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def evaluate(config: Config, store: Store, event: CloudTrailEvent) -> list[Candidate]:
    """The rules' verdicts for one event (records window signals: call inside a transaction)."""
    return _Evaluator(config, store.db).run(event)


# ---------------------------------------------------------------------------------------------
# Identity and JIT correlation

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def owner_of(config: Config, store: Store, event: CloudTrailEvent) -> str | None:
    """The Slack member behind the event's principal: the identity map (explicit config wins, then
    the email tag), the session issuer's role for assumed roles, or an SSO-style email session name."""
    return owner_of_identity(config, store, event.user_identity)


def owner_of_identity(config: Config, store: Store, ident: UserIdentity) -> str | None:
    """The Slack member behind one principal (see ``owner_of``)."""
    candidates = [ident.arn]
    if ident.session_context and ident.session_context.session_issuer:
        candidates.append(ident.session_context.session_issuer.arn)
    try:
        from bot.identity import identity_from_store

        ids = identity_from_store(config, store)
        for arn in candidates:
            if arn and (member := ids.owner_of(arn)):
                return member
    except Exception:  # enrichment is optional: a failure here must not lose the alert
        log.exception("identity look-up failed; falling back to [identity] map")
    names = {c for c in candidates if c} | {_name_of(c) for c in candidates if c}
    if ident.user_name:
        names.add(ident.user_name)
    for member, principals in config.identity.map.items():
        if names & set(principals):
            return member
    for name in (ident.source_identity, ident.session_name):
        if name and _EMAIL.match(name):
            row = store.db.execute(
                "SELECT id FROM slack_users WHERE email = ? AND deleted = 0", [name.lower()]
            ).fetchone()
            if row:
                return row[0]
    return None


def jit_request_for(store: Store, event: CloudTrailEvent) -> tuple[str, str] | None:
    """(request id, requester) of the JIT grant this session came from, or None.

    The only coupling to the access feature (bot/access.py): its grants record the RoleSessionName
    (``iamwarden-<requester>-<request id>``) in ``access_grants`` and set SourceIdentity to the
    requester. Matches the session name first, else SourceIdentity + role + the approved window.
    Without those tables (access not deployed) there is nothing to correlate.
    """
    ident = event.user_identity
    session, source_identity = ident.session_name, ident.source_identity
    if not (session or source_identity) or not store.db["access_grants"].exists():
        return None
    row = None
    if session:
        row = store.db.execute(
            "SELECT r.id, r.requester FROM access_grants g JOIN access_requests r ON r.id = g.request_id "
            "WHERE g.session_name = ? ORDER BY g.issued_at DESC LIMIT 1",
            [session],
        ).fetchone()
    issuer = ident.session_context.session_issuer if ident.session_context else None
    if row is None and source_identity and issuer and issuer.arn:
        at = iso(event.event_time)
        row = store.db.execute(
            "SELECT id, requester FROM access_requests WHERE requester = ? AND role_arn = ? "
            "AND window_start <= ? AND window_end >= ? ORDER BY window_start DESC LIMIT 1",
            [source_identity, issuer.arn, at, at],
        ).fetchone()
    return (str(row[0]), str(row[1] or "")) if row else None


def enrich(config: Config, store: Store, event: CloudTrailEvent) -> Enrichment:
    jit = jit_request_for(store, event)
    owner = owner_of(config, store, event)
    if jit and not owner and jit[1]:
        owner = jit[1]
    return Enrichment(
        owner=owner, jit_request_id=jit[0] if jit else None, jit_requester=jit[1] if jit else None
    )


# ---------------------------------------------------------------------------------------------
# Ingest: exactly once, atomically


def ingest(
    config: Config, store: Store, event: CloudTrailEvent, *, source: str, now: datetime
) -> IngestResult:
    """Record one event: claim its id, evaluate the rules, create or bump alerts. All or nothing.

    A second call with the same event id changes nothing and returns ``duplicate=True``.
    """
    result = IngestResult(event_id=event.event_id)
    if store.db.execute("SELECT 1 FROM alert_events WHERE event_id = ?", [event.event_id]).fetchone():
        result.duplicate = True
        return result
    with store.transaction() as db:
        claimed = db.execute(
            "INSERT OR IGNORE INTO alert_events (event_id, source, event_name, event_time, account_id, "
            "processed_at) VALUES (?, ?, ?, ?, ?, ?)",
            [event.event_id, source, event.event_name, iso(event.event_time), event.account_id, iso(now)],
        ).rowcount
        if not claimed:
            result.duplicate = True
            return result
        candidates = _Evaluator(config, db).run(event)
        # Who is behind the event matters only when something fired (most events raise nothing).
        extra = enrich(config, store, event) if candidates else Enrichment()
        for cand in candidates:
            if cand.owner_identity is not None:
                # The alert is about someone other than the actor (AWS quarantined their key).
                extra = replace(extra, owner=owner_of_identity(config, store, cand.owner_identity))
            alert_id, created = _upsert_alert(db, cand, event, extra, now)
            result.alert_ids.append(alert_id)
            if created:
                result.new_alert_ids.append(alert_id)
        db.execute(
            "UPDATE alert_events SET alert_ids = ? WHERE event_id = ?",
            [json.dumps(result.alert_ids), event.event_id],
        )
    return result


def _upsert_alert(
    db: sqlite_utils.Database, cand: Candidate, event: CloudTrailEvent, extra: Enrichment, now: datetime
) -> tuple[int, bool]:
    at = iso(event.event_time)
    window_start = iso(event.event_time - cand.rule.dedupe_window)
    row = db.execute(
        "SELECT id FROM alerts WHERE dedupe_key = ? AND first_seen > ? AND first_seen <= ? "
        "ORDER BY first_seen DESC LIMIT 1",
        [cand.dedupe_key, window_start, at],
    ).fetchone()
    if row:
        # A repeat inside the dedupe window: count it, keep the latest details, re-render the message.
        db.execute(
            "UPDATE alerts SET count = count + 1, last_seen = MAX(last_seen, ?), last_event_id = ?, "
            "title = ?, dirty = dirty + 1 WHERE id = ?",
            [at, event.event_id, cand.title, row[0]],
        )
        return int(row[0]), False
    ident = event.user_identity
    record = {
        "rule_id": cand.rule.id,
        "severity": str(cand.severity),
        "dedupe_key": cand.dedupe_key,
        "title": cand.title,
        "account_id": event.account_id,
        "region": event.aws_region,
        "event_name": event.event_name,
        "event_source": event.event_source,
        "first_event_id": event.event_id,
        "last_event_id": event.event_id,
        "principal_arn": ident.arn,
        "principal_type": ident.type,
        "principal_name": ident.display_name,
        "owner": extra.owner,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "first_seen": at,
        "last_seen": at,
        "count": 1,
        "jit_request_id": extra.jit_request_id,
        "jit_requester": extra.jit_requester,
        "context": json.dumps(
            {
                **{k: v for k, v in cand.context.items() if v not in (None, "")},
                **({"source_identity": ident.source_identity} if ident.source_identity else {}),
                **({"session_name": ident.session_name} if ident.session_name else {}),
            },
            default=str,
        ),
        "state": "open",
        "actor_status": "",
        "dirty": 1,
        "created_at": iso(now),
    }
    alert_id = db["alerts"].insert(record).last_pk
    return int(alert_id), True


# ---------------------------------------------------------------------------------------------
# Reading and changing alerts (the handlers call these)


@dataclass
class Alert:
    """A stored alert, as the Slack surface renders it."""

    id: int
    rule_id: str
    severity: Severity
    title: str
    account_id: str
    region: str
    event_name: str
    event_source: str
    principal_arn: str | None
    principal_type: str | None
    principal_name: str | None
    owner: str | None
    source_ip: str | None
    user_agent: str | None
    first_seen: str
    last_seen: str
    count: int
    jit_request_id: str | None
    jit_requester: str | None
    context: dict[str, Any]
    state: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    actor_status: str
    actor_user: str | None
    actor_asked_by: str | None
    actor_deadline: str | None
    actor_answered_at: str | None
    escalated_at: str | None
    channel: str | None
    ts: str | None
    dm_channel: str | None
    dm_ts: str | None
    dirty: int = 0

    @property
    def rule(self) -> Rule:
        return RULES[self.rule_id]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        names = cls.__dataclass_fields__
        data = {k: row.get(k) for k in names}
        data["severity"] = Severity(row["severity"])
        data["context"] = json.loads(row.get("context") or "{}")
        data["actor_status"] = row.get("actor_status") or ""
        data["count"] = int(row.get("count") or 1)
        data["dirty"] = int(row.get("dirty") or 0)
        return cls(**data)


def get_alert(store: Store, alert_id: int | str) -> Alert | None:
    try:
        key = int(alert_id)
    except (TypeError, ValueError):
        return None
    rows = list(store.db["alerts"].rows_where("id = ?", [key]))
    return Alert.from_row(rows[0]) if rows else None


def alerts(
    store: Store,
    *,
    where: str | None = None,
    params: Iterable[Any] = (),
    newest_first: bool = False,
    limit: int | None = None,
) -> list[Alert]:
    rows = store.db["alerts"].rows_where(
        where, list(params), order_by="id DESC" if newest_first else "id", limit=limit
    )
    return [Alert.from_row(r) for r in rows]


def pending_delivery(store: Store) -> list[Alert]:
    """Alerts recorded but not yet posted, or whose message needs an update (counter, state)."""
    return alerts(store, where="dirty > 0")


def mark_delivered(store: Store, alert: Alert, *, channel: str, ts: str) -> None:
    """Store where the message lives. ``dirty`` counts changes since the last render: it is cleared
    only if nothing changed while we were posting what ``alert`` held (else the next delivery
    renders again), so a click racing a poll is never lost."""
    store.execute(
        "UPDATE alerts SET channel = ?, ts = ?, dirty = CASE WHEN dirty = ? THEN 0 ELSE dirty END "
        "WHERE id = ?",
        [channel, ts, alert.dirty, alert.id],
    )


def claim_first_post(
    store: Store, alert_id: int, now: datetime, *, lease: timedelta = timedelta(minutes=2)
) -> bool:
    """True for the one deliverer that may post this not-yet-posted alert. A claim whose holder died
    lapses after ``lease``; ``release_post_claim`` gives it up at once after a failed post."""
    return bool(
        store.execute(
            "UPDATE alerts SET post_claimed_until = ? WHERE id = ? AND ts IS NULL "
            "AND (post_claimed_until IS NULL OR post_claimed_until <= ?)",
            [iso(now + lease), alert_id, iso(now)],
        ).rowcount
    )


def release_post_claim(store: Store, alert_id: int) -> None:
    store.execute("UPDATE alerts SET post_claimed_until = NULL WHERE id = ? AND ts IS NULL", [alert_id])


def mark_dirty(store: Store, alert_id: int) -> None:
    store.execute("UPDATE alerts SET dirty = dirty + 1 WHERE id = ?", [alert_id])


def acknowledge(store: Store, alert_id: int, user_id: str, at: datetime) -> bool:
    """Open → acknowledged, once. Returns False when it was already acknowledged (or missing)."""
    changed = store.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, dirty = dirty + 1 "
        "WHERE id = ? AND state = 'open'",
        [user_id, iso(at), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.acknowledge", actor=user_id, at=at, reason=f"alert {alert_id}")
    return bool(changed)


def ask_actor(
    store: Store, alert_id: int, *, actor: str, asked_by: str, at: datetime, timeout: timedelta
) -> bool:
    """Record that ``actor`` was asked "did you do this?"; once per alert. False if already asked."""
    changed = store.execute(
        "UPDATE alerts SET actor_status = 'asked', actor_user = ?, actor_asked_by = ?, actor_asked_at = ?, "
        "actor_deadline = ?, dirty = dirty + 1 WHERE id = ? AND COALESCE(actor_status, '') = ''",
        [actor, asked_by, iso(at), iso(at + timeout), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.ask_actor", actor=asked_by, at=at, reason=f"alert {alert_id}", asked=actor)
    return bool(changed)


def set_actor_dm(store: Store, alert_id: int, channel: str, ts: str) -> None:
    store.execute("UPDATE alerts SET dm_channel = ?, dm_ts = ? WHERE id = ?", [channel, ts, alert_id])


def answer_actor(store: Store, alert_id: int, *, user_id: str, confirmed: bool, at: datetime) -> bool:
    """The asked member answers Yes (confirmed) or No (denied → escalate). Only them, only once."""
    status = "confirmed" if confirmed else "denied"
    changed = store.execute(
        "UPDATE alerts SET actor_status = ?, actor_answered_at = ?, dirty = dirty + 1 "
        "WHERE id = ? AND actor_status = 'asked' AND actor_user = ?",
        [status, iso(at), alert_id, user_id],
    ).rowcount
    if changed:
        store.audit(f"alert.actor_{status}", actor=user_id, at=at, reason=f"alert {alert_id}")
    return bool(changed)


def timed_out_asks(store: Store, now: datetime) -> list[Alert]:
    """Asked alerts whose actor did not answer in time, as of ``now``."""
    return alerts(store, where="actor_status = 'asked' AND actor_deadline <= ?", params=[iso(now)])


def expire_ask(store: Store, alert_id: int, at: datetime) -> bool:
    changed = store.execute(
        "UPDATE alerts SET actor_status = 'timed_out', dirty = dirty + 1 WHERE id = ? AND actor_status = 'asked' "
        "AND actor_deadline <= ?",
        [alert_id, iso(at)],
    ).rowcount
    return bool(changed)


def claim_escalation(store: Store, alert_id: int, at: datetime) -> bool:
    """Escalate once: True for the single caller that records the escalation."""
    changed = store.execute(
        "UPDATE alerts SET escalated_at = ?, dirty = dirty + 1 WHERE id = ? AND escalated_at IS NULL",
        [iso(at), alert_id],
    ).rowcount
    if changed:
        store.audit("alert.escalate", actor="iamwarden", at=at, reason=f"alert {alert_id}")
    return bool(changed)


def prune(store: Store, now: datetime, *, keep: timedelta = timedelta(days=30)) -> None:
    """Forget old window signals and processed event ids (alerts themselves are kept)."""
    longest = max((r.window or timedelta(0)) for r in RULES.values())
    with store.transaction() as db:
        db.execute("DELETE FROM alert_signals WHERE at < ?", [iso(now - max(longest * 2, timedelta(days=1)))])
        db.execute("DELETE FROM alert_events WHERE processed_at < ?", [iso(now - keep)])
