"""The STS grant: AssumeRole under the request's lease, recorded atomically, and re-issue."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import sqlite_utils
from pydantic import SecretStr

from bot.access.killpoints import pause_at
from bot.access.leases import request_lease
from bot.access.model import (
    EXPIRY_SKEW,
    TAG_PREFIX,
    AccessError,
    AccessRequest,
    ActivePort,
    IssuedCredentials,
    State,
    always_active,
    audit_request,
    get_request,
    resolve_parent,
)
from bot.access.outbox import DELIVERY_GRACE, enqueue
from bot.access.redaction import SCRUBBER
from bot.access.revocation import deny_sessions
from bot.access.sessions import (
    role_session_name,
    session_duration,
    session_policy,
    session_tags,
    source_identity,
)
from bot.aws import describe_aws_error, error_code, is_access_denied
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)


def _assume(services: Services, request: AccessRequest, reason: str) -> IssuedCredentials:
    """AssumeRole and record the grant (kept for callers of the old name; no lease, no re-check)."""
    issued, now = assume_role(services, request)
    with services.store.transaction() as db:
        record_grant(db, request, issued, now, reason)
    return issued


def assume_role(services: Services, request: AccessRequest) -> tuple[IssuedCredentials, datetime]:
    """One AssumeRole for the request's window; nothing recorded. Returns (credentials, when asked)."""
    now = services.clock.now()
    duration = session_duration(services, request, now)
    name = role_session_name(request.requester, request.id)
    assert request.window_end is not None
    role = services.config.role(request.role)
    response = services.aws.client("sts").assume_role(
        RoleArn=request.role_arn,
        RoleSessionName=name,
        DurationSeconds=duration,
        SourceIdentity=source_identity(request.requester),
        Tags=session_tags(request),
        TransitiveTagKeys=[TAG_PREFIX + "request-id", TAG_PREFIX + "requester"],
        Policy=json.dumps(
            session_policy(request.window_end, allow_role_chaining=bool(role and role.allow_role_chaining)),
            separators=(",", ":"),
        ),
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
    return issued, now


def record_grant(
    db: sqlite_utils.Database, request: AccessRequest, issued: IssuedCredentials, now: datetime, reason: str
) -> None:
    """The key id and expiry of an issued session (never the secrets)."""
    db.execute(
        "INSERT INTO access_grants (request_id, access_key_id, session_name, issued_at, expires_at, "
        "duration_seconds, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            request.id,
            issued.access_key_id,
            issued.session_name,
            iso(now),
            iso(issued.expiration),
            issued.duration_seconds,
            reason,
        ],
    )


def describe_assume_role_error(exc: BaseException) -> str:
    """AssumeRole is refused by the target role's trust policy far more often than by the bot's own."""
    if is_access_denied(exc):
        return (
            f"AWS denied sts:AssumeRole ({error_code(exc)}): the role's trust policy must allow the bot "
            "sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity, and the bot's own policy must grant them "
            "(policies/jit.json)."
        )
    return describe_aws_error(exc, "sts:AssumeRole")


class RevokedWhileIssuing(AccessError):
    """The request was revoked while AssumeRole ran: the session is denied and not delivered."""


def grant(
    services: Services, request_id: str, *, is_active: ActivePort = always_active
) -> tuple[AccessRequest, IssuedCredentials | None]:
    """approved → granted: open the window, AssumeRole, record the grant. Call only after APPROVED.

    Holds the request's lease throughout, so a revocation waits for the session to be recorded and
    its cutoff covers it. The grant row, the state change, the audit entry and the delivery outbox
    row are one transaction: a crash leaves either none of them or all. On an AWS error the request
    becomes ``failed`` and (request, None) is returned.
    """
    with request_lease(services, request_id):
        request = get_request(services, request_id)
        if request is None or request.state != State.APPROVED:
            raise AccessError(f"Request {request_id} is not waiting for a grant.")
        now = services.clock.now()
        if not is_active(request.requester):
            problem = "the requester is no longer an active member of the workspace"
            _fail(services, request, problem, now)
            return get_request(services, request_id), None  # type: ignore[return-value]
        window_end = now + request.duration
        services.store.execute(
            "UPDATE access_requests SET window_start = ?, window_end = ?, assume_started_at = ? "
            "WHERE id = ? AND state = 'approved'",
            [iso(now), iso(window_end), iso(now), request_id],
        )
        request.window_start, request.window_end = now, window_end
        pause_at(services, "assume_started")
        try:
            issued, issued_at = assume_role(services, request)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, AccessError) else describe_assume_role_error(exc)
            _fail(services, request, problem, now)
            log.warning("grant for %s failed: %s", request_id, problem)
            return get_request(services, request_id), None  # type: ignore[return-value]
        pause_at(services, "assumed")
        with services.store.transaction() as db:
            record_grant(db, request, issued, issued_at, "grant")
            changed = db.execute(
                "UPDATE access_requests SET state = 'granted' WHERE id = ? AND state = 'approved'",
                [request_id],
            ).rowcount
            if changed == 1:
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
                enqueue(db, "deliver", request_id, now=now, delay=DELIVERY_GRACE)
        if changed != 1:
            # Withdrawn or ended while AssumeRole ran: the session must not work.
            _deny_new_session(services, request, "grant")
            return get_request(services, request_id), None  # type: ignore[return-value]
    pause_at(services, "granted")
    return get_request(services, request_id), issued  # type: ignore[return-value]


def _fail(services: Services, request: AccessRequest, problem: str, now: datetime) -> None:
    services.store.execute(
        "UPDATE access_requests SET state = 'failed', error = ? WHERE id = ? AND state = 'approved'",
        [problem, request.id],
    )
    audit_request(services, request, "grant_failed", actor="iamwarden", at=now, reason=problem)


def _deny_new_session(services: Services, request: AccessRequest, reason: str) -> None:
    written, problem, _ = deny_sessions(services, request, now=services.clock.now())
    audit_request(
        services,
        request,
        "session_denied",
        actor="iamwarden",
        at=services.clock.now(),
        reason=f"{reason}: the request ended while its session was being issued",
        policy_written=written,
        problem=problem,
    )


def issue_session(
    services: Services, request_id: str, reason: str, *, is_active: ActivePort = always_active
) -> tuple[AccessRequest, IssuedCredentials]:
    """A fresh session for granted access (re-issue, extension), serialized with revocation.

    Under the request's lease: the state is checked, AssumeRole runs, the grant is recorded and the
    state checked again; if the access ended meanwhile, the session is denied on the role and
    RevokedWhileIssuing is raised (nothing to deliver).
    """
    with request_lease(services, request_id):
        request = get_request(services, request_id)
        if request is None:
            raise AccessError(f"There is no access request {request_id}.")
        if request.state != State.GRANTED:
            raise AccessError(f"Request {request.id} is {request.state}; there is nothing to re-issue.")
        if not is_active(request.requester):
            raise AccessError("The requester is no longer an active member of the workspace.")
        try:
            issued, issued_at = assume_role(services, request)
        except AccessError:
            raise
        except Exception as exc:
            raise AccessError(describe_assume_role_error(exc)) from None
        with services.store.transaction() as db:
            record_grant(db, request, issued, issued_at, reason)
            state = db.execute("SELECT state FROM access_requests WHERE id = ?", [request_id]).fetchone()[0]
        if state != State.GRANTED:
            _deny_new_session(services, request, reason)
            raise RevokedWhileIssuing(
                f"Access {request.id} ended while these credentials were being issued; they were not "
                "delivered and the role denies them."
            )
    return request, issued


def reissue(
    services: Services, request_id: str, by: str, *, is_active: ActivePort = always_active
) -> IssuedCredentials:
    """Get credentials again: a fresh session inside the approved window (requester only)."""
    request = get_request(services, resolve_parent(services, request_id))
    if request is None:
        raise AccessError(f"There is no access request {request_id}.")
    if by != request.requester:
        raise AccessError("Only the requester can get these credentials.")
    if request.state != State.GRANTED:
        raise AccessError(f"Request {request.id} is {request.state}; there is nothing to re-issue.")
    request, issued = issue_session(services, request.id, "reissue", is_active=is_active)
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
