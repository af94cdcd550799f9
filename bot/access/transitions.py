"""The request state machine: every transition is one conditional ``UPDATE … WHERE state = …``."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from enum import StrEnum

import sqlite_utils

from bot.access.authorization import (
    MembersOf,
    check_ticket,
    format_duration,
    is_listed,
    parse_request_duration,
    role_config,
)
from bot.access.killpoints import pause_at
from bot.access.model import (
    AccessError,
    AccessRequest,
    Kind,
    State,
    audit_request,
    extension_ids,
    get_request,
)
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

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
    EXPIRED = "expired"  # past its pending timeout: this click expired it instead of counting


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
        pending_until = db.execute(
            "SELECT pending_until FROM access_requests WHERE id = ?", [request_id]
        ).fetchone()[0]
        late = state == State.PENDING and pending_until is not None and pending_until <= iso(now)
        if late:
            # The sweep has not run yet, but the request is over: an approval now is refused.
            db.execute(
                "UPDATE access_requests SET state = 'expired', ended_at = ? WHERE id = ? AND state = 'pending'",
                [iso(now), request_id],
            )
            outcome = Approval.EXPIRED
        elif state != State.PENDING:
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
    if late:
        audit_request(
            services,
            request,
            "expired",
            actor="iamwarden",
            at=now,
            reason="nobody decided before the pending timeout",
        )
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
    if outcome == Approval.APPROVED:
        pause_at(services, "approved")  # test-only: the approval is committed, AssumeRole not begun
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


REMIND_BEFORE_END = timedelta(minutes=10)


def due_window_reminders(services: Services) -> list[AccessRequest]:
    """Granted access whose window ends within ``REMIND_BEFORE_END``, each window end claimed once
    (also across bot instances on one database)."""
    now = services.clock.now()
    rows = services.store.execute(
        "SELECT id, window_end FROM access_requests WHERE state = 'granted' AND kind != 'extension' "
        "AND window_end > ? AND window_end <= ?",
        [iso(now), iso(now + REMIND_BEFORE_END)],
    ).fetchall()
    due: list[AccessRequest] = []
    for request_id, window_end in rows:
        claimed = services.store.execute(
            "INSERT OR IGNORE INTO access_window_reminders (request_id, window_end, at) VALUES (?, ?, ?)",
            [request_id, window_end, iso(now)],
        ).rowcount
        if claimed == 1:
            request = get_request(services, request_id)
            if request is not None:
                due.append(request)
    return due


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


# Well beyond the longest AssumeRole with all its retries (8 attempts, 5 s connect + 30 s read).
STUCK_AFTER = timedelta(minutes=10)
ASSUME_MAX = timedelta(minutes=5)


def claim_stuck_approvals(services: Services) -> list[AccessRequest]:
    """Approved requests to grant now (see bot.access.recovery, which settles the others)."""
    from bot.access.recovery import recover_interrupted  # recovery builds on this module

    return [r.request for r in recover_interrupted(services) if r.action == "grant"]
