"""Just-in-time role access: the request state machine, the STS grant, revocation and the record.

Lifecycle (every arrow is one conditional ``UPDATE … WHERE state = …``, so a double click or two
approvers at the same moment can never grant twice)::

    pending ──approve×N──▶ approved ──AssumeRole──▶ granted ──window end──▶ ended
       │                      └──AssumeRole fails──▶ failed   ├──Revoke / I'm done──▶ revoked
       ├──Deny──▶ denied                                      └──Extend (approved) ──▶ granted (later end)
       └──nobody decided in time──▶ expired

Secrets: the session's secret access key and token are handed back to the caller in an
``IssuedCredentials`` (``SecretStr`` fields) and never stored: SQLite keeps the access key id and
expiry only. Live secrets are registered with a logging filter that scrubs them from the records of
the libraries that log request and response bodies at DEBUG (botocore, slack_sdk).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlite_utils
from pydantic import SecretStr

from bot.aws import AwsFactory, describe_aws_error, error_code, is_access_denied
from bot.services import Services
from bot.settings import RoleConfig, parse_duration
from bot.store import iso, migrations

log = logging.getLogger(__name__)

# AWS limits: sessions last 15 min … 12 h; role chaining caps them at 1 h.
MIN_SESSION_SECONDS = 900
CHAINED_SESSION_SECONDS = 3600
DEFAULT_MAX_SESSION_SECONDS = 3600
REVOCATION_POLICY_NAME = "iamwarden-revoked-sessions"
# An inline policy's aggregate size per role is 10,240 characters.
INLINE_POLICY_LIMIT = 10_240
TAG_PREFIX = "iamwarden:"
EXPIRY_SKEW = timedelta(minutes=5)


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # transient: the grant is being made
    GRANTED = "granted"
    DENIED = "denied"
    EXPIRED = "expired"  # nobody decided before the pending timeout
    ENDED = "ended"  # the approved window is over
    REVOKED = "revoked"  # Revoke or I'm done
    FAILED = "failed"  # approved, but AWS refused the grant


class Kind(StrEnum):
    REQUEST = "request"
    EXTENSION = "extension"
    BREAK_GLASS = "break_glass"


OPEN_STATES = (State.PENDING, State.APPROVED, State.GRANTED)


class AccessError(Exception):
    """Something the person can act on; the message is plain text (escape before showing)."""


@migrations()
def m101_access(db: sqlite_utils.Database) -> None:
    db["access_requests"].create(
        {
            "id": str,
            "kind": str,
            "parent_id": str,
            "requester": str,
            "role": str,
            "role_arn": str,
            "account_id": str,
            "duration_seconds": int,
            "reason": str,
            "ticket": str,
            "state": str,
            "created_at": str,
            "pending_until": str,
            "decided_at": str,
            "decided_by": str,
            "deny_reason": str,
            "window_start": str,
            "window_end": str,
            "extensions": int,
            "origin_channel": str,
            "channel": str,
            "message_ts": str,
            "ended_at": str,
            "ended_by": str,
            "error": str,
            "review_required": int,
            "reviewed_by": str,
            "reviewed_at": str,
            "next_reminder_at": str,
        },
        pk="id",
        defaults={"extensions": 0, "review_required": 0},
    )
    db["access_requests"].create_index(["requester", "state"])
    db["access_requests"].create_index(["state"])
    db["access_approvals"].create(
        {"request_id": str, "approver": str, "at": str}, pk=("request_id", "approver")
    )
    # Only the access key id and expiry: never the secret key or the session token.
    db["access_grants"].create(
        {
            "id": int,
            "request_id": str,
            "access_key_id": str,
            "session_name": str,
            "issued_at": str,
            "expires_at": str,
            "duration_seconds": int,
            "reason": str,
        },
        pk="id",
    )
    db["access_grants"].create_index(["request_id"])


@migrations()
def m102_access_parent_index(db: sqlite_utils.Database) -> None:
    # Extensions are looked up by the access they extend on every end, revoke and extend.
    db["access_requests"].create_index(["parent_id"])


# -- secrets never reach the logs --------------------------------------------------------------


# Secret-bearing fields as they appear in STS XML/JSON answers, federation requests and our own
# rendered messages; matched before the value is known (botocore logs the body before we parse it).
_SECRET_FIELDS = re.compile(
    r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"
    r"|((?:SecretAccessKey|SessionToken|sessionKey|sessionToken|SigninToken)\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\s,&}\\]+"
    r"|((?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=)[^\s\\'\"]+"
)


def _redact_fields(message: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1):
            return f"{match.group(1)}[redacted]{match.group(3)}"
        return f"{match.group(4) or match.group(5)}[redacted]"

    return _SECRET_FIELDS.sub(replace, message)


class _SecretScrubber(logging.Filter):
    """Replaces session secrets in log records with ``[redacted]``.

    botocore logs response bodies and slack_sdk logs request bodies at DEBUG; both would carry the
    credentials we hand out. Filters on the emitting loggers see every record they create: known
    live secrets are replaced verbatim, and secret-bearing fields by pattern.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, datetime] = {}

    def add(self, value: str, until: datetime) -> None:
        with self._lock:
            now = datetime.now(UTC)
            self._secrets = {s: t for s, t in self._secrets.items() if t > now}
            self._secrets[value] = until

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            live = list(self._secrets)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = _redact_fields(message)
        for secret in live:
            cleaned = cleaned.replace(secret, "[redacted]")
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


SCRUBBER = _SecretScrubber()
_SCRUBBED_LOGGERS = (
    "botocore.parsers",
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.retryhandler",
    "urllib3.connectionpool",
    "slack_sdk.web.base_client",
    "slack_sdk.web.client",
    "slack_bolt.App",
    "slack_bolt.listener.thread_runner",
    "bot.federation",
    __name__,
)
for _name in _SCRUBBED_LOGGERS:
    logging.getLogger(_name).addFilter(SCRUBBER)


# -- the model --------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class AccessRequest:
    id: str
    kind: str
    requester: str
    role: str
    role_arn: str
    account_id: str
    duration_seconds: int
    reason: str
    state: str
    created_at: datetime
    pending_until: datetime | None
    parent_id: str | None = None
    ticket: str | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    deny_reason: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    extensions: int = 0
    origin_channel: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    error: str | None = None
    review_required: bool = False
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    approvers: list[str] = field(default_factory=list)

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_seconds)

    @property
    def is_break_glass(self) -> bool:
        return self.kind == Kind.BREAK_GLASS

    @property
    def needs_review(self) -> bool:
        return self.review_required and self.reviewed_at is None

    @classmethod
    def from_row(cls, row: dict, approvers: list[str]) -> AccessRequest:
        times = (
            "created_at",
            "pending_until",
            "decided_at",
            "window_start",
            "window_end",
            "ended_at",
            "reviewed_at",
        )
        values = {k: row.get(k) for k in cls.__dataclass_fields__ if k in row}
        for key in times:
            values[key] = _parse_time(row.get(key))
        values["review_required"] = bool(row.get("review_required"))
        values["extensions"] = row.get("extensions") or 0
        values.pop("next_reminder_at", None)
        return cls(**values, approvers=approvers)


@dataclass
class Grant:
    access_key_id: str
    issued_at: datetime
    expires_at: datetime
    session_name: str
    reason: str


@dataclass
class IssuedCredentials:
    """Credentials for the requester's eyes only. ``repr`` never shows the secrets."""

    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr
    expiration: datetime
    window_end: datetime
    duration_seconds: int
    session_name: str
    account_id: str
    role_arn: str

    @property
    def effective_end(self) -> datetime:
        """When access really stops: the session's expiry or the window's end, whichever is first."""
        return min(self.expiration, self.window_end)

    def export_lines(self) -> str:
        return "\n".join(
            [
                f"export AWS_ACCESS_KEY_ID={self.access_key_id}",
                f"export AWS_SECRET_ACCESS_KEY={self.secret_access_key.get_secret_value()}",
                f"export AWS_SESSION_TOKEN={self.session_token.get_secret_value()}",
            ]
        )

    def credential_process_json(self) -> str:
        return json.dumps(
            {
                "Version": 1,
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.secret_access_key.get_secret_value(),
                "SessionToken": self.session_token.get_secret_value(),
                "Expiration": iso(self.expiration),
            },
            indent=2,
        )


# -- reading ------------------------------------------------------------------------------------


def _approvers_of(db: sqlite_utils.Database, request_id: str) -> list[str]:
    rows = db.execute(
        "SELECT approver FROM access_approvals WHERE request_id = ? ORDER BY at, approver", [request_id]
    ).fetchall()
    return [r[0] for r in rows]


def _rows(db: sqlite_utils.Database, sql: str, params: Iterable[Any] = ()) -> list[dict]:
    cursor = db.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def get_request(services: Services, request_id: str) -> AccessRequest | None:
    db = services.store.db
    rows = _rows(db, "SELECT * FROM access_requests WHERE id = ?", [request_id])
    return AccessRequest.from_row(rows[0], _approvers_of(db, request_id)) if rows else None


def audit_request(
    services: Services,
    request: AccessRequest,
    action: str,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    **detail: Any,
) -> None:
    """One audit record about a request: who, when, which request, role and account, and why."""
    services.store.audit(
        action,
        actor=actor,
        at=at,
        request_id=request.id,
        role=request.role,
        account_id=request.account_id,
        reason=reason,
        **detail,
    )


def requests_for(services: Services, requester: str, *, limit: int = 15) -> list[AccessRequest]:
    """The member's own requests, newest first."""
    db = services.store.db
    rows = _rows(
        db,
        "SELECT * FROM access_requests WHERE requester = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
        [requester, limit],
    )
    return [AccessRequest.from_row(r, _approvers_of(db, r["id"])) for r in rows]


def awaiting_review(services: Services) -> list[AccessRequest]:
    db = services.store.db
    rows = _rows(
        db,
        "SELECT * FROM access_requests WHERE review_required = 1 AND reviewed_at IS NULL ORDER BY created_at",
    )
    return [AccessRequest.from_row(r, _approvers_of(db, r["id"])) for r in rows]


def grants_of(services: Services, request_id: str) -> list[Grant]:
    rows = _rows(
        services.store.db,
        "SELECT access_key_id, issued_at, expires_at, session_name, reason FROM access_grants "
        "WHERE request_id = ? ORDER BY id",
        [request_id],
    )
    return [
        Grant(
            access_key_id=r["access_key_id"],
            issued_at=datetime.fromisoformat(r["issued_at"]),
            expires_at=datetime.fromisoformat(r["expires_at"]),
            session_name=r["session_name"],
            reason=r["reason"],
        )
        for r in rows
    ]


def pending_extension(services: Services, parent_id: str) -> AccessRequest | None:
    rows = _rows(
        services.store.db,
        "SELECT id FROM access_requests WHERE parent_id = ? AND state IN ('pending', 'approved')",
        [parent_id],
    )
    return get_request(services, rows[0]["id"]) if rows else None


# -- who may do what (decided from config and stored state, never from a payload) ---------------

MembersOf = Callable[[str], Iterable[str]]


def is_listed(user_id: str, entries: Iterable[str], members_of: MembersOf) -> bool:
    """Whether ``user_id`` is one of ``entries`` (user ids, ``@handle`` or ``S…`` user groups).

    ``members_of`` may raise (the handlers' directory raises DirectoryError): an authorization
    decision must not guess.
    """
    entries = list(entries)
    if user_id in entries:
        return True
    return any(
        user_id in members_of(entry)
        for entry in entries
        if entry.startswith("@") or (entry.startswith("S") and entry[1:].isalnum())
    )


def requestable_roles(services: Services, user_id: str, members_of: MembersOf) -> list[RoleConfig]:
    return [
        role
        for role in services.config.roles
        if not role.requesters or is_listed(user_id, role.requesters, members_of)
    ]


def role_config(services: Services, name: str) -> RoleConfig:
    role = services.config.role(name)
    if role is None:
        known = ", ".join(r.name for r in services.config.roles) or "none configured"
        raise AccessError(f"There is no role called '{name}'. Roles you can ask for: {known}.")
    return role


def check_approver(services: Services, request: AccessRequest, approver: str, members_of: MembersOf) -> None:
    """Raise AccessError unless ``approver`` may decide ``request``."""
    role = role_config(services, request.role)
    if approver == request.requester:
        raise AccessError("You cannot approve or deny your own request; another approver must.")
    if not is_listed(approver, role.approvers, members_of):
        raise AccessError(f"You are not an approver for {role.name}.")


def may_end(
    services: Services,
    request: AccessRequest,
    user_id: str,
    members_of: MembersOf,
    is_security_team: Callable[[str], bool],
) -> bool:
    """Revoke / I'm done: the requester, the role's approvers, or the security team."""
    if user_id == request.requester:
        return True
    role = services.config.role(request.role)
    if role is not None and is_listed(user_id, role.approvers, members_of):
        return True
    return is_security_team(user_id)


# -- durations ----------------------------------------------------------------------------------


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and minutes:
        return f"{hours}h{minutes}m"
    if hours:
        return f"{hours}h"
    return f"{minutes}m"


def parse_request_duration(services: Services, role: RoleConfig, text: str | None) -> timedelta:
    """The requested duration, between the configured minimum and the role's maximum."""
    if not text or not str(text).strip():
        raise AccessError("Say how long you need it, e.g. 30m or 1h.")
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise AccessError(str(exc)) from None
    low = services.config.access.min_duration
    if duration < low or duration > role.max_duration:
        raise AccessError(
            f"{role.name} can be requested for {format_duration(low)} to "
            f"{format_duration(role.max_duration)}; '{str(text).strip()}' is outside that."
        )
    return duration


def duration_choices(services: Services, roles: Iterable[RoleConfig]) -> list[timedelta]:
    """Choices for the modal, up to the largest maximum among ``roles``."""
    top = max((r.max_duration for r in roles), default=timedelta(hours=1))
    low = services.config.access.min_duration
    steps = [timedelta(minutes=m) for m in (15, 30, 60, 120, 240, 480, 720)]
    choices = sorted({d for d in steps if low <= d <= top} | {top})
    return choices


def check_ticket(role: RoleConfig, ticket: str | None) -> str | None:
    ticket = (ticket or "").strip() or None
    if role.require_ticket is False:
        return ticket
    if not ticket:
        raise AccessError(f"{role.name} needs a ticket: add ticket=ABC-123 (or fill the ticket field).")
    if isinstance(role.require_ticket, str) and not re.fullmatch(role.require_ticket, ticket):
        raise AccessError(f"'{ticket}' is not a ticket {role.name} accepts (pattern {role.require_ticket}).")
    return ticket


# -- transitions --------------------------------------------------------------------------------


def _new_id() -> str:
    return "r" + secrets.token_hex(5)


def _insert_request(db: sqlite_utils.Database, row: dict) -> None:
    names = list(row)
    db.execute(
        f"INSERT INTO access_requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",  # noqa: S608 - names are ours
        [row[n] for n in names],
    )


def create_request(
    services: Services,
    *,
    requester: str,
    role_name: str,
    duration: str | timedelta,
    reason: str,
    ticket: str | None = None,
    origin_channel: str | None = None,
    members_of: MembersOf = lambda _: (),
) -> AccessRequest:
    """Validate and store a pending request; raises AccessError with a clear answer."""
    role = role_config(services, role_name)
    if role.requesters and not is_listed(requester, role.requesters, members_of):
        raise AccessError(f"You are not on the list of people who may request {role.name}.")
    length = parse_request_duration(
        services, role, duration if isinstance(duration, str) else format_duration(duration)
    )
    reason = (reason or "").strip()
    if not reason:
        raise AccessError("Give a reason: approvers and the audit log need to know why.")
    ticket = check_ticket(role, ticket)
    now = services.clock.now()
    request_id = _new_id()
    with services.store.transaction() as db:
        open_one = db.execute(
            "SELECT id, state FROM access_requests WHERE requester = ? AND role = ? AND kind != 'extension' "
            "AND state IN ('pending', 'approved', 'granted')",
            [requester, role.name],
        ).fetchone()
        if open_one:
            raise AccessError(
                f"You already have request {open_one[0]} for {role.name} ({open_one[1]}). "
                "Use Extend or I'm done on it instead of a second one."
            )
        _insert_request(
            db,
            {
                "id": request_id,
                "kind": Kind.REQUEST.value,
                "requester": requester,
                "role": role.name,
                "role_arn": role.arn,
                "account_id": role.account_id,
                "duration_seconds": int(length.total_seconds()),
                "reason": reason,
                "ticket": ticket,
                "state": State.PENDING.value,
                "created_at": iso(now),
                "pending_until": iso(now + services.config.access.pending_timeout),
                "origin_channel": origin_channel,
                "extensions": 0,
                "review_required": 0,
            },
        )
    request = get_request(services, request_id)
    assert request is not None
    audit_request(
        services,
        request,
        "requested",
        actor=requester,
        at=now,
        reason=reason,
        duration=format_duration(length),
        ticket=ticket,
    )
    return request


def set_message(services: Services, request_id: str, channel: str, ts: str) -> None:
    services.store.execute(
        "UPDATE access_requests SET channel = ?, message_ts = ? WHERE id = ?", [channel, ts, request_id]
    )


class Approval(StrEnum):
    RECORDED = "recorded"  # counted; more approvals needed
    APPROVED = "approved"  # this approval completed it: the caller must grant
    ALREADY_COUNTED = "already_counted"
    NOT_PENDING = "not_pending"


def approve(services: Services, request_id: str, approver: str) -> tuple[Approval, AccessRequest]:
    """Count one approver once. Exactly one caller ever sees APPROVED for a request.

    Call ``check_approver`` first: this function records, it does not authorize.
    """
    now = services.clock.now()
    with services.store.transaction() as db:
        row = db.execute(
            "SELECT state, kind, parent_id FROM access_requests WHERE id = ?", [request_id]
        ).fetchone()
        if row is None:
            raise AccessError(f"There is no access request {request_id}.")
        state = row[0]
        if state != State.PENDING:
            outcome = Approval.NOT_PENDING
        else:
            inserted = db.execute(
                "INSERT OR IGNORE INTO access_approvals (request_id, approver, at) VALUES (?, ?, ?)",
                [request_id, approver, iso(now)],
            ).rowcount
            count = db.execute(
                "SELECT count(*) FROM access_approvals WHERE request_id = ?", [request_id]
            ).fetchone()[0]
            role = services.config.role(
                db.execute("SELECT role FROM access_requests WHERE id = ?", [request_id]).fetchone()[0]
            )
            required = role.approvals_required if role else 1
            if not inserted:
                outcome = Approval.ALREADY_COUNTED
            elif count < required:
                outcome = Approval.RECORDED
            else:
                changed = db.execute(
                    "UPDATE access_requests SET state = 'approved', decided_at = ?, decided_by = ? "
                    "WHERE id = ? AND state = 'pending'",
                    [iso(now), approver, request_id],
                ).rowcount
                outcome = Approval.APPROVED if changed == 1 else Approval.NOT_PENDING
    request = get_request(services, request_id)
    assert request is not None
    if outcome in (Approval.RECORDED, Approval.APPROVED):
        audit_request(
            services,
            request,
            "approved",
            actor=approver,
            at=now,
            reason=request.reason,
            complete=outcome == Approval.APPROVED,
        )
    return outcome, request


def deny(services: Services, request_id: str, by: str, reason: str | None = None) -> AccessRequest | None:
    """Pending → denied. Returns the request when this call denied it, None when it was not pending."""
    now = services.clock.now()
    changed = services.store.execute(
        "UPDATE access_requests SET state = 'denied', decided_at = ?, decided_by = ?, deny_reason = ? "
        "WHERE id = ? AND state = 'pending'",
        [iso(now), by, (reason or "").strip() or None, request_id],
    ).rowcount
    if changed != 1:
        return None
    request = get_request(services, request_id)
    assert request is not None
    audit_request(
        services,
        request,
        "denied",
        actor=by,
        at=now,
        reason=request.deny_reason,
    )
    return request


def withdraw(services: Services, request_id: str, reason: str) -> bool:
    """Pending → expired at once, with the reason (e.g. its message could not be posted)."""
    now = services.clock.now()
    changed = services.store.execute(
        "UPDATE access_requests SET state = 'expired', ended_at = ?, error = ? WHERE id = ? AND state = 'pending'",
        [iso(now), reason, request_id],
    ).rowcount
    if changed == 1:
        request = get_request(services, request_id)
        assert request is not None
        audit_request(
            services,
            request,
            "expired",
            actor="iamwarden",
            at=now,
            reason=reason,
        )
    return changed == 1


def expire_pending(services: Services) -> list[AccessRequest]:
    """Pending requests past their timeout → expired (each exactly once, also after downtime)."""
    now = iso(services.clock.now())
    ids = [
        r[0]
        for r in services.store.execute(
            "SELECT id FROM access_requests WHERE state = 'pending' AND pending_until <= ?", [now]
        ).fetchall()
    ]
    expired: list[AccessRequest] = []
    for request_id in ids:
        changed = services.store.execute(
            "UPDATE access_requests SET state = 'expired', ended_at = ? WHERE id = ? AND state = 'pending'",
            [now, request_id],
        ).rowcount
        if changed == 1:
            request = get_request(services, request_id)
            assert request is not None
            audit_request(
                services,
                request,
                "expired",
                actor="iamwarden",
                at=services.clock.now(),
                reason="nobody decided before the pending timeout",
            )
            expired.append(request)
    return expired


def end_windows(services: Services) -> list[AccessRequest]:
    """Granted requests whose window is over → ended (each exactly once, also after downtime)."""
    now = iso(services.clock.now())
    ids = [
        r[0]
        for r in services.store.execute(
            "SELECT id FROM access_requests WHERE state = 'granted' AND kind != 'extension' AND window_end <= ?",
            [now],
        ).fetchall()
    ]
    ended: list[AccessRequest] = []
    for request_id in ids:
        changed = services.store.execute(
            "UPDATE access_requests SET state = 'ended', ended_at = ?, ended_by = 'iamwarden' "
            "WHERE id = ? AND state = 'granted' AND window_end <= ?",
            [now, request_id, now],
        ).rowcount
        if changed == 1:
            request = get_request(services, request_id)
            assert request is not None
            audit_request(
                services,
                request,
                "expired",
                actor="iamwarden",
                at=services.clock.now(),
                reason="the approved window ended",
            )
            close_extensions(services, request_id, State.ENDED)
            ended.append(request)
    return ended


def close_extensions(services: Services, parent_id: str, state: State) -> list[str]:
    """When access ends, its extensions follow: applied ones take the parent's end state, pending
    ones expire (nobody can approve more time on access that is over). Returns their ids."""
    now = iso(services.clock.now())
    services.store.execute(
        "UPDATE access_requests SET state = ?, ended_at = ? WHERE parent_id = ? AND state = 'granted'",
        [state.value, now, parent_id],
    )
    services.store.execute(
        "UPDATE access_requests SET state = 'expired', ended_at = ? WHERE parent_id = ? AND state = 'pending'",
        [now, parent_id],
    )
    return extension_ids(services, parent_id)


def resolve_parent(services: Services, request_id: str) -> str:
    """Buttons on an extension's message act on the access it extends."""
    row = services.store.execute(
        "SELECT parent_id FROM access_requests WHERE id = ? AND kind = 'extension'", [request_id]
    ).fetchone()
    return row[0] if row and row[0] else request_id


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
            "sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity, and the bot's own policy must grant them "
            "(policies/jit.json)."
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


# -- revocation -----------------------------------------------------------------------------------


@dataclass
class Revocation:
    request: AccessRequest
    policy_written: bool
    problem: str | None
    credentials_expire_at: datetime | None


_REVOKE_SID = re.compile(r"^Revoke([A-Za-z0-9]+)Until(\d+)$")


def _revocation_statement(requester: str, issued_before: datetime, until: datetime, tag: str) -> dict:
    return {
        "Sid": f"Revoke{re.sub(r'[^A-Za-z0-9]', '', tag)}Until{int(until.timestamp())}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": source_identity(requester)},
            "DateLessThan": {"aws:TokenIssueTime": iso(issued_before)},
        },
    }


def merge_revocations(existing: dict | None, statement: dict, now: datetime) -> dict:
    """The role's revocation policy with ``statement`` added and statements that can no longer
    matter (every session they target has expired) pruned, as are older ones for the same identity."""
    identity = statement["Condition"]["StringEquals"]["aws:SourceIdentity"]
    new_until = int(_REVOKE_SID.match(statement["Sid"]).group(2))  # type: ignore[union-attr]
    kept: list[dict] = []
    for old in (existing or {}).get("Statement", []):
        match = _REVOKE_SID.match(str(old.get("Sid", "")))
        if match is None:
            kept.append(old)  # not ours: leave it
            continue
        until = int(match.group(2))
        if until <= int(now.timestamp()):
            continue
        old_identity = (old.get("Condition") or {}).get("StringEquals", {}).get("aws:SourceIdentity")
        if old_identity == identity:
            # The newer statement denies everything the old one did (issued before an earlier time).
            new_until = max(new_until, until)
            continue
        kept.append(old)
    sid = _REVOKE_SID.match(statement["Sid"])
    statement = {**statement, "Sid": f"Revoke{sid.group(1)}Until{new_until}"}  # type: ignore[union-attr]
    return {"Version": "2012-10-17", "Statement": [*kept, statement]}


def _write_revocation(services: Services, request: AccessRequest, now: datetime, until: datetime) -> None:
    iam = _aws_for_account(services, request.account_id).client("iam")
    role_name = _role_name(request.role_arn)
    try:
        current = iam.get_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME)["PolicyDocument"]
        if isinstance(current, str):
            current = json.loads(current)
    except Exception as exc:
        if error_code(exc) not in ("NoSuchEntity", "NoSuchEntityException"):
            raise
        current = None
    document = merge_revocations(
        current, _revocation_statement(request.requester, now, until, request.id), now
    )
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > INLINE_POLICY_LIMIT:
        raise AccessError("the role's inline policy space is full")
    iam.put_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME, PolicyDocument=text)


def revoke(services: Services, request_id: str, by: str, *, done: bool = False) -> Revocation | None:
    """granted → revoked, then deny the requester's live sessions on the role.

    Returns None when the request was not granted (already ended, revoked, …).
    """
    now = services.clock.now()
    request_id = resolve_parent(services, request_id)
    changed = services.store.execute(
        "UPDATE access_requests SET state = 'revoked', ended_at = ?, ended_by = ? WHERE id = ? AND state = 'granted'",
        [iso(now), by, request_id],
    ).rowcount
    if changed != 1:
        return None
    request = get_request(services, request_id)
    assert request is not None
    close_extensions(services, request_id, State.REVOKED)
    grants = grants_of(services, request_id)
    latest = max((g.expires_at for g in grants), default=None)
    until = max(latest or now, now)
    problem = None
    try:
        _write_revocation(services, request, now, until + timedelta(minutes=5))
        written = True
    except Exception as exc:
        written = False
        problem = str(exc) if isinstance(exc, AccessError) else describe_aws_error(exc, "iam:PutRolePolicy")
        log.warning("could not write the revocation for %s: %s", request_id, problem)
    audit_request(
        services,
        request,
        "revoked",
        actor=by,
        at=now,
        reason="requester is done" if done else "revoked",
        policy_written=written,
        problem=problem,
    )
    live_until = min(latest, request.window_end) if latest and request.window_end else latest
    return Revocation(
        request=request, policy_written=written, problem=problem, credentials_expire_at=live_until
    )


# -- extension ------------------------------------------------------------------------------------


def request_extension(services: Services, request_id: str, by: str) -> AccessRequest:
    """A new pending approval for more time on a granted request (requester only, capped in count)."""
    parent = get_request(services, resolve_parent(services, request_id))
    if parent is None:
        raise AccessError(f"There is no access request {request_id}.")
    if by != parent.requester:
        raise AccessError("Only the requester can ask for more time.")
    if parent.state != State.GRANTED:
        raise AccessError(f"Request {parent.id} is {parent.state}; request access again instead.")
    if parent.kind == Kind.BREAK_GLASS:
        raise AccessError("Break-glass access cannot be extended; request access the normal way.")
    cap = services.config.access.max_extensions
    role = role_config(services, parent.role)
    now = services.clock.now()
    extension_id = _new_id()
    length = min(parent.duration, role.max_duration)
    with services.store.transaction() as db:
        pending = db.execute(
            "SELECT id FROM access_requests WHERE parent_id = ? AND state IN ('pending', 'approved')",
            [parent.id],
        ).fetchone()
        if pending:
            raise AccessError(f"An extension ({pending[0]}) is already waiting for approval.")
        used = db.execute("SELECT extensions FROM access_requests WHERE id = ?", [parent.id]).fetchone()[0]
        if used >= cap:
            raise AccessError(f"This access was already extended {used} time(s), the most allowed ({cap}).")
        _insert_request(
            db,
            {
                "id": extension_id,
                "kind": Kind.EXTENSION.value,
                "parent_id": parent.id,
                "requester": parent.requester,
                "role": parent.role,
                "role_arn": parent.role_arn,
                "account_id": parent.account_id,
                "duration_seconds": int(length.total_seconds()),
                "reason": parent.reason,
                "ticket": parent.ticket,
                "state": State.PENDING.value,
                "created_at": iso(now),
                "pending_until": iso(now + services.config.access.pending_timeout),
                "origin_channel": parent.origin_channel,
                "extensions": 0,
                "review_required": 0,
            },
        )
    extension = get_request(services, extension_id)
    assert extension is not None
    audit_request(
        services,
        extension,
        "extension_requested",
        actor=by,
        at=now,
        reason=parent.reason,
        parent=parent.id,
        duration=format_duration(length),
    )
    return extension


def apply_extension(
    services: Services, extension_id: str
) -> tuple[AccessRequest, AccessRequest | None, IssuedCredentials | None]:
    """An approved extension moves the parent's window end (no gap) and issues fresh credentials
    that last into the new window (no early cut by the old session policy).

    Returns (extension, parent or None when it could not apply, credentials or None).
    """
    extension = get_request(services, extension_id)
    assert extension is not None and extension.parent_id
    now = services.clock.now()
    with services.store.transaction() as db:
        row = db.execute(
            "SELECT window_end FROM access_requests WHERE id = ? AND state = 'granted'", [extension.parent_id]
        ).fetchone()
        applied = False
        if row is not None and datetime.fromisoformat(row[0]) > now:
            new_end = datetime.fromisoformat(row[0]) + extension.duration
            applied = (
                db.execute(
                    "UPDATE access_requests SET window_end = ?, extensions = extensions + 1 "
                    "WHERE id = ? AND state = 'granted'",
                    [iso(new_end), extension.parent_id],
                ).rowcount
                == 1
            )
        db.execute(
            "UPDATE access_requests SET state = ?, window_start = ?, window_end = ? WHERE id = ? AND state = 'approved'",
            [
                State.GRANTED.value if applied else State.FAILED.value,
                iso(now),
                iso(new_end) if applied else None,
                extension_id,
            ],
        )
        if not applied:
            db.execute(
                "UPDATE access_requests SET error = ? WHERE id = ?",
                ["the access it extends has already ended", extension_id],
            )
    extension = get_request(services, extension_id)
    assert extension is not None
    if not applied:
        return extension, None, None
    parent = get_request(services, extension.parent_id)
    assert parent is not None
    services.store.audit(
        "extended",
        actor="iamwarden",
        at=now,
        request_id=parent.id,
        role=parent.role,
        account_id=parent.account_id,
        reason=parent.reason,
        extension=extension.id,
        window_end=iso(parent.window_end) if parent.window_end else None,
        approvers=extension.approvers,
    )
    try:
        issued = _assume(services, parent, "extend")
    except Exception as exc:
        log.warning("re-issue after extension of %s failed: %s", parent.id, error_code(exc))
        return extension, parent, None
    return extension, parent, issued


# -- break glass -------------------------------------------------------------------------------------


def break_glass(
    services: Services,
    *,
    requester: str,
    role_name: str,
    reason: str,
    origin_channel: str | None = None,
    members_of: MembersOf = lambda _: (),
) -> tuple[AccessRequest, IssuedCredentials | None]:
    """Granted at once without a peer, for roles with ``break_glass = true``; capped per member per
    day; a review is required afterwards."""
    role = role_config(services, role_name)
    if not role.break_glass:
        raise AccessError(f"{role.name} does not allow break glass; use /iam request.")
    if role.requesters and not is_listed(requester, role.requesters, members_of):
        raise AccessError(f"You are not on the list of people who may request {role.name}.")
    reason = (reason or "").strip()
    if not reason:
        raise AccessError("Break glass needs a reason: the security team reviews every use.")
    now = services.clock.now()
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0)
    cap = services.config.access.break_glass_daily_cap
    request_id = _new_id()
    length = role.max_duration
    with services.store.transaction() as db:
        used = db.execute(
            "SELECT count(*) FROM access_requests WHERE requester = ? AND kind = 'break_glass' AND created_at >= ?",
            [requester, iso(day_start)],
        ).fetchone()[0]
        if used >= cap:
            raise AccessError(
                f"You have used break glass {used} time(s) today, the most allowed ({cap}). "
                "Ask an approver with /iam request, or the security team."
            )
        open_one = db.execute(
            "SELECT id FROM access_requests WHERE requester = ? AND role = ? AND kind != 'extension' "
            "AND state IN ('approved', 'granted')",
            [requester, role.name],
        ).fetchone()
        if open_one:
            raise AccessError(f"You already have access to {role.name} ({open_one[0]}).")
        # A pending ordinary request for the same role is superseded.
        db.execute(
            "UPDATE access_requests SET state = 'expired', ended_at = ? WHERE requester = ? AND role = ? "
            "AND kind = 'request' AND state = 'pending'",
            [iso(now), requester, role.name],
        )
        _insert_request(
            db,
            {
                "id": request_id,
                "kind": Kind.BREAK_GLASS.value,
                "requester": requester,
                "role": role.name,
                "role_arn": role.arn,
                "account_id": role.account_id,
                "duration_seconds": int(length.total_seconds()),
                "reason": reason,
                "state": State.APPROVED.value,
                "created_at": iso(now),
                "decided_at": iso(now),
                "decided_by": requester,
                "origin_channel": origin_channel,
                "extensions": 0,
                "review_required": 1,
                "next_reminder_at": iso(now + length),
            },
        )
    services.store.audit(
        "break_glass",
        actor=requester,
        at=now,
        request_id=request_id,
        role=role.name,
        account_id=role.account_id,
        reason=reason,
    )
    return grant(services, request_id)


def review(services: Services, request_id: str, by: str, note: str | None = None) -> AccessRequest | None:
    """Mark a break-glass use reviewed (once). The requester cannot review their own use."""
    request = get_request(services, request_id)
    if request is None:
        raise AccessError(f"There is no access request {request_id}.")
    if not request.review_required:
        raise AccessError(f"Request {request_id} was not a break-glass use; there is nothing to review.")
    if by == request.requester:
        raise AccessError("Someone else must review your own break-glass use.")
    now = services.clock.now()
    changed = services.store.execute(
        "UPDATE access_requests SET reviewed_by = ?, reviewed_at = ? WHERE id = ? AND reviewed_at IS NULL",
        [by, iso(now), request_id],
    ).rowcount
    if changed != 1:
        return None
    audit_request(
        services,
        request,
        "reviewed",
        actor=by,
        at=now,
        reason=note,
    )
    return get_request(services, request_id)


def due_review_reminders(services: Services) -> list[AccessRequest]:
    """Break-glass uses still unreviewed whose reminder is due; each slot is claimed exactly once."""
    now = services.clock.now()
    rows = services.store.execute(
        "SELECT id, next_reminder_at FROM access_requests WHERE review_required = 1 AND reviewed_at IS NULL "
        "AND next_reminder_at <= ?",
        [iso(now)],
    ).fetchall()
    due: list[AccessRequest] = []
    for request_id, slot in rows:
        claimed = services.store.execute(
            "UPDATE access_requests SET next_reminder_at = ? WHERE id = ? AND next_reminder_at = ? AND reviewed_at IS NULL",
            [iso(now + services.config.access.review_reminder_every), request_id, slot],
        ).rowcount
        if claimed == 1:
            request = get_request(services, request_id)
            assert request is not None
            due.append(request)
    return due


def truncate_reason(reason: str, limit: int = 200) -> str:
    reason = " ".join((reason or "").split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


# Well beyond the longest AssumeRole with all its retries (8 attempts, 5 s connect + 30 s read).
STUCK_AFTER = timedelta(minutes=10)


def claim_stuck_approvals(services: Services) -> list[AccessRequest]:
    """Approved requests with no grant after ``STUCK_AFTER`` (a crash between approval and
    AssumeRole). Each is claimed by moving its ``decided_at`` conditionally, so one sweeper
    finishes it; the caller then grants as the original approver would have."""
    now = services.clock.now()
    cutoff = iso(now - STUCK_AFTER)
    rows = services.store.execute(
        "SELECT id, decided_at FROM access_requests r WHERE state = 'approved' AND decided_at <= ? "
        "AND NOT EXISTS (SELECT 1 FROM access_grants g WHERE g.request_id = r.id)",
        [cutoff],
    ).fetchall()
    claimed: list[AccessRequest] = []
    for request_id, decided_at in rows:
        won = services.store.execute(
            "UPDATE access_requests SET decided_at = ? WHERE id = ? AND state = 'approved' AND decided_at = ?",
            [iso(now), request_id, decided_at],
        ).rowcount
        if won == 1:
            request = get_request(services, request_id)
            assert request is not None
            log.info("finishing approval %s that stopped before its grant", request_id)
            claimed.append(request)
    return claimed


def extension_ids(services: Services, parent_id: str) -> list[str]:
    return [
        r[0]
        for r in services.store.execute(
            "SELECT id FROM access_requests WHERE parent_id = ? ORDER BY created_at", [parent_id]
        ).fetchall()
    ]
