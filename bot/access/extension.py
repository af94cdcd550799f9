"""Extensions: more time on granted access, approved like a request, applied without a gap."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.access.authorization import format_duration, role_config
from bot.access.grant import issue_session
from bot.access.model import (
    AccessError,
    AccessRequest,
    ActivePort,
    IssuedCredentials,
    Kind,
    State,
    always_active,
    audit_request,
    get_request,
    resolve_parent,
)
from bot.access.transitions import _insert_request, _new_id
from bot.aws import error_code
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

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
    services: Services, extension_id: str, *, is_active: ActivePort = always_active
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
        # Under the parent's lease with a re-check: a Revoke racing the extension wins.
        _, issued = issue_session(services, parent.id, "extend", is_active=is_active)
    except Exception as exc:
        log.warning("re-issue after extension of %s failed: %s", parent.id, error_code(exc) or exc)
        return extension, get_request(services, parent.id), None
    return extension, parent, issued
