"""The access request as stored: states, kinds, the request and grant records, and reading them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlite_utils
from pydantic import SecretStr

from bot.services import Services
from bot.store import iso

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
    WITHDRAWN = "withdrawn"  # the requester took it back before anyone decided


class Kind(StrEnum):
    REQUEST = "request"
    EXTENSION = "extension"
    BREAK_GLASS = "break_glass"


OPEN_STATES = (State.PENDING, State.APPROVED, State.GRANTED)


class AccessError(Exception):
    """Something the person can act on; the message is plain text (escape before showing)."""


# "Is this member still an active member of the workspace?" The Slack side may provide one (for
# example from users.info); intents that issue credentials or count an approval ask it.
ActivePort = Callable[[str], bool]


def always_active(_user_id: str) -> bool:
    return True


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


def resolve_parent(services: Services, request_id: str) -> str:
    """Buttons on an extension's message act on the access it extends."""
    row = services.store.execute(
        "SELECT parent_id FROM access_requests WHERE id = ? AND kind = 'extension'", [request_id]
    ).fetchone()
    return row[0] if row and row[0] else request_id


def truncate_reason(reason: str, limit: int = 200) -> str:
    reason = " ".join((reason or "").split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def extension_ids(services: Services, parent_id: str) -> list[str]:
    return [
        r[0]
        for r in services.store.execute(
            "SELECT id FROM access_requests WHERE parent_id = ? ORDER BY created_at", [parent_id]
        ).fetchall()
    ]
