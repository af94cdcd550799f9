"""The normalised event: ``CloudTrailEvent``, parsed from an EventBridge envelope (SQS) or from a
LookupEvents record (whose ``CloudTrailEvent`` is a JSON string). Access Analyzer findings are
normalised into the same model (``kind="access_analyzer"``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


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
