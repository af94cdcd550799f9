"""The STS grant: session names, tags, the session policy, AssumeRole, re-issue."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from bot.access.model import (
    CHAINED_SESSION_SECONDS,
    DEFAULT_MAX_SESSION_SECONDS,
    EXPIRY_SKEW,
    MIN_SESSION_SECONDS,
    TAG_PREFIX,
    AccessError,
    AccessRequest,
    IssuedCredentials,
    State,
    audit_request,
    get_request,
    resolve_parent,
)
from bot.access.redaction import SCRUBBER
from bot.aws import AwsFactory, describe_aws_error, error_code, is_access_denied
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

# -- AWS: the grant -----------------------------------------------------------------------------

_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")


def role_session_name(requester: str, request_id: str) -> str:
    """``iamwarden-<requester>-<request id>``: only characters STS accepts, at most 64."""
    requester = _SESSION_NAME_BAD.sub("-", requester)[:30]
    request_id = _SESSION_NAME_BAD.sub("-", request_id)[:20]
    return f"iamwarden-{requester}-{request_id}"[:64]


def source_identity(requester: str) -> str:
    """The requester, as STS accepts a SourceIdentity (2–64 of ``[\\w+=,.@-]``)."""
    value = _SESSION_NAME_BAD.sub("-", requester)[:64]
    return value if len(value) >= 2 else f"{value}--"[:2]


_TAG_BAD = re.compile(r"[^\w .:/=+\-@]", re.UNICODE)


def session_tags(request: AccessRequest) -> list[dict[str, str]]:
    approvers = (
        " ".join(request.approvers)
        if request.approvers
        else ("break-glass" if request.is_break_glass else "none")
    )
    return [
        {"Key": TAG_PREFIX + "request-id", "Value": request.id},
        {"Key": TAG_PREFIX + "requester", "Value": _TAG_BAD.sub("-", request.requester)[:256]},
        {"Key": TAG_PREFIX + "approvers", "Value": _TAG_BAD.sub("-", approvers)[:256]},
    ]


def session_policy(window_end: datetime) -> dict:
    """Keeps the role's permissions but denies everything after the window's end, so even a console
    session minted from these credentials cannot outlive the approval."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WithinTheRole", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "NothingAfterTheApprovedWindow",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso(window_end)}},
            },
        ],
    }


def _caller_arn(services: Services) -> str:
    cache = services.extras.setdefault("access.caller", {})
    key = id(services.aws)
    if key not in cache:
        cache[key] = services.aws.client("sts").get_caller_identity()["Arn"]
    return cache[key]


def bot_uses_role_credentials(services: Services) -> bool:
    """AWS caps sessions assumed from role credentials (role chaining) at one hour."""
    try:
        return ":assumed-role/" in _caller_arn(services)
    except Exception as exc:  # unknown: assume the stricter cap rather than fail the grant
        log.warning("could not tell what the bot's own credentials are (%s); capping at 1 h", error_code(exc))
        return True


def _aws_for_account(services: Services, account_id: str) -> AwsFactory:
    """The bot's own credentials, or the configured reader role for another account."""
    account = next((a for a in services.config.accounts if a.id == account_id), None)
    if account is not None and account.role_arn:
        return services.aws.for_role(account.role_arn, external_id=account.external_id)
    return services.aws


def _role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def role_max_session(services: Services, request: AccessRequest) -> int:
    """The role's MaxSessionDuration (GetRole); AWS's default when it cannot be read."""
    try:
        iam = _aws_for_account(services, request.account_id).client("iam")
        return int(iam.get_role(RoleName=_role_name(request.role_arn))["Role"]["MaxSessionDuration"])
    except Exception as exc:
        log.warning(
            "GetRole %s failed (%s); assuming the default maximum session of 1 h",
            request.role_arn,
            error_code(exc),
        )
        return DEFAULT_MAX_SESSION_SECONDS


def session_duration(services: Services, request: AccessRequest, now: datetime) -> int:
    """The smaller of: time left in the window, the role's MaxSessionDuration, 1 h when chaining.

    Never below AWS's 15-minute minimum: the session policy still ends access at the window's end.
    """
    assert request.window_end is not None
    left = int((request.window_end - now).total_seconds())
    if left <= 0:
        raise AccessError("The approved window is over; request access again.")
    limits = [left, role_max_session(services, request)]
    if bot_uses_role_credentials(services):
        limits.append(CHAINED_SESSION_SECONDS)
    return max(MIN_SESSION_SECONDS, min(limits))


def _assume(services: Services, request: AccessRequest, reason: str) -> IssuedCredentials:
    now = services.clock.now()
    duration = session_duration(services, request, now)
    name = role_session_name(request.requester, request.id)
    assert request.window_end is not None
    response = services.aws.client("sts").assume_role(
        RoleArn=request.role_arn,
        RoleSessionName=name,
        DurationSeconds=duration,
        SourceIdentity=source_identity(request.requester),
        Tags=session_tags(request),
        TransitiveTagKeys=[TAG_PREFIX + "request-id", TAG_PREFIX + "requester"],
        Policy=json.dumps(session_policy(request.window_end), separators=(",", ":")),
    )
    creds = response["Credentials"]
    expiration = creds["Expiration"]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    # AWS's Expiration is the truth when it agrees with our clock (within a few minutes of skew);
    # when it does not (a moved test clock, a wildly skewed host), the duration we asked for is.
    expected = now + timedelta(seconds=duration)
    expiration = expiration.astimezone(UTC).replace(microsecond=0)
    if abs(expiration - expected) > EXPIRY_SKEW:
        log.debug("STS expiry %s disagrees with the clock's %s; using the latter", expiration, expected)
        expiration = expected
    SCRUBBER.add(creds["SecretAccessKey"], expiration + timedelta(hours=1))
    SCRUBBER.add(creds["SessionToken"], expiration + timedelta(hours=1))
    issued = IssuedCredentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=SecretStr(creds["SecretAccessKey"]),
        session_token=SecretStr(creds["SessionToken"]),
        expiration=expiration,
        window_end=request.window_end,
        duration_seconds=duration,
        session_name=name,
        account_id=request.account_id,
        role_arn=request.role_arn,
    )
    services.store.execute(
        "INSERT INTO access_grants (request_id, access_key_id, session_name, issued_at, expires_at, "
        "duration_seconds, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [request.id, issued.access_key_id, name, iso(now), iso(expiration), duration, reason],
    )
    return issued


def describe_assume_role_error(exc: BaseException) -> str:
    """AssumeRole is refused by the target role's trust policy far more often than by the bot's own."""
    if is_access_denied(exc):
        return (
            f"AWS denied sts:AssumeRole ({error_code(exc)}): the role's trust policy must allow the bot "
            "sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity (and the bot's policy must too)."
        )
    return describe_aws_error(exc, "sts:AssumeRole")


def grant(services: Services, request_id: str) -> tuple[AccessRequest, IssuedCredentials | None]:
    """approved → granted: open the window, AssumeRole, store the key id. Call only after APPROVED.

    On an AWS error the request becomes ``failed`` and (request, None) is returned.
    """
    now = services.clock.now()
    request = get_request(services, request_id)
    if request is None or request.state != State.APPROVED:
        raise AccessError(f"Request {request_id} is not waiting for a grant.")
    window_end = now + request.duration
    services.store.execute(
        "UPDATE access_requests SET window_start = ?, window_end = ? WHERE id = ? AND state = 'approved'",
        [iso(now), iso(window_end), request_id],
    )
    request.window_start, request.window_end = now, window_end
    try:
        issued = _assume(services, request, "grant")
    except Exception as exc:
        problem = str(exc) if isinstance(exc, AccessError) else describe_assume_role_error(exc)
        services.store.execute(
            "UPDATE access_requests SET state = 'failed', error = ? WHERE id = ? AND state = 'approved'",
            [problem, request_id],
        )
        audit_request(
            services,
            request,
            "grant_failed",
            actor="iamwarden",
            at=now,
            reason=problem,
        )
        log.warning("grant for %s failed: %s", request_id, problem)
        return get_request(services, request_id), None  # type: ignore[return-value]
    services.store.execute(
        "UPDATE access_requests SET state = 'granted' WHERE id = ? AND state = 'approved'", [request_id]
    )
    audit_request(
        services,
        request,
        "granted",
        actor="iamwarden",
        at=now,
        reason=request.reason,
        access_key_id=issued.access_key_id,
        expires_at=iso(issued.expiration),
        window_end=iso(window_end),
        approvers=request.approvers,
    )
    return get_request(services, request_id), issued  # type: ignore[return-value]


def reissue(services: Services, request_id: str, by: str) -> IssuedCredentials:
    """Get credentials again: a fresh session inside the approved window (requester only)."""
    request = get_request(services, resolve_parent(services, request_id))
    if request is None:
        raise AccessError(f"There is no access request {request_id}.")
    if by != request.requester:
        raise AccessError("Only the requester can get these credentials.")
    if request.state != State.GRANTED:
        raise AccessError(f"Request {request.id} is {request.state}; there is nothing to re-issue.")
    try:
        issued = _assume(services, request, "reissue")
    except AccessError:
        raise
    except Exception as exc:
        raise AccessError(describe_assume_role_error(exc)) from None
    audit_request(
        services,
        request,
        "credentials_reissued",
        actor=by,
        at=services.clock.now(),
        access_key_id=issued.access_key_id,
        expires_at=iso(issued.expiration),
    )
    return issued
