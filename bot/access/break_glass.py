"""Break glass: access without a peer for roles that allow it, alerted and reviewed."""

from __future__ import annotations

from datetime import UTC

from bot.access.authorization import MembersOf, is_listed, role_config
from bot.access.grant import grant
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
)
from bot.access.notifier import AlertFailed, Notifier, SilentNotifier
from bot.access.transitions import _insert_request, _new_id
from bot.services import Services
from bot.store import iso

# -- break glass -------------------------------------------------------------------------------------


def break_glass(
    services: Services,
    *,
    requester: str,
    role_name: str,
    reason: str,
    origin_channel: str | None = None,
    members_of: MembersOf = lambda _: (),
    notifier: Notifier | None = None,
    is_active: ActivePort = always_active,
) -> tuple[AccessRequest, IssuedCredentials | None]:
    """Granted at once without a peer, for roles with ``break_glass = true``, to the role's
    ``break_glass_requesters`` only; capped per member per day; a review is required afterwards.

    Never silent: the security alert is posted (``notifier.alert_break_glass``) before AssumeRole;
    when it cannot be, the request fails, nothing is granted and AccessError says why.
    """
    notifier = notifier or SilentNotifier()
    role = role_config(services, role_name)
    if not role.break_glass:
        raise AccessError(f"{role.name} does not allow break glass; use /iam request.")
    if not is_listed(requester, role.break_glass_requesters, members_of):
        raise AccessError(
            f"You are not on the list of people who may break glass on {role.name} "
            "(the role's break_glass_requesters); ask an approver with /iam request."
        )
    if role.requesters and not is_listed(requester, role.requesters, members_of):
        raise AccessError(f"You are not on the list of people who may request {role.name}.")
    if not is_active(requester):
        raise AccessError("Break glass is for active members of the workspace only.")
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
            # A use refused because security could not be alerted does not count: nothing was granted.
            "SELECT count(*) FROM access_requests WHERE requester = ? AND kind = 'break_glass' AND created_at >= ? "
            "AND NOT (state = 'failed' AND error LIKE 'the security alert could not be posted%')",
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
    request = get_request(services, request_id)
    assert request is not None
    try:
        notifier.alert_break_glass(request)
    except AlertFailed as exc:
        problem = f"the security alert could not be posted: {exc}"
        services.store.execute(
            "UPDATE access_requests SET state = 'failed', error = ?, review_required = 0 WHERE id = ? "
            "AND state = 'approved'",
            [problem, request_id],
        )
        audit_request(services, request, "break_glass_refused", actor="iamwarden", at=now, reason=problem)
        raise AccessError(
            f"Break glass refused: {problem}. Nothing was granted; call the security team."
        ) from None
    return grant(services, request_id, is_active=is_active)


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
