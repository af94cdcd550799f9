"""No request stays in an intermediate state across a restart: the sweep finishes or fails each.

``approved`` is the only intermediate state. An approved request found by the sweep is one of:
- a break glass whose security alert was never posted → failed (nothing may be granted silently);
- a grant recorded by an older version that crashed before marking it granted → granted now, and
  the requester is told (the delivery outbox);
- AssumeRole started but its outcome unknown (a crash during the call) → audited ``grant_uncertain``
  and every session it could have made is denied on the role, then granted again;
- approved but never started → granted, as the approver would have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.access.leases import LeaseBusy, request_lease
from bot.access.model import AccessRequest, Kind, audit_request, get_request, grants_of
from bot.access.outbox import enqueue
from bot.access.revocation import STATEMENT_GRACE, record_revocation, sync_role
from bot.access.transitions import ASSUME_MAX, STUCK_AFTER
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)


@dataclass
class Recovered:
    request: AccessRequest
    action: str  # "grant" (the caller grants now), "granted" (already was), "failed"


def recover_interrupted(services: Services) -> list[Recovered]:
    """Claim each approved request idle for ``STUCK_AFTER`` and settle what it can; see the module."""
    now = services.clock.now()
    rows = services.store.execute(
        "SELECT id, decided_at FROM access_requests WHERE state = 'approved' "
        "AND coalesce(assume_started_at, decided_at) <= ?",
        [iso(now - STUCK_AFTER)],
    ).fetchall()
    settled: list[Recovered] = []
    for request_id, decided_at in rows:
        won = services.store.execute(
            "UPDATE access_requests SET decided_at = ? WHERE id = ? AND state = 'approved' AND decided_at = ?",
            [iso(now), request_id, decided_at],
        ).rowcount
        if won != 1:
            continue
        try:
            with request_lease(services, request_id, wait_seconds=0):
                outcome = _settle(services, request_id, now)
        except LeaseBusy:
            continue  # someone is granting it right now
        if outcome is not None:
            settled.append(outcome)
    return settled


def _settle(services: Services, request_id: str, now: datetime) -> Recovered | None:
    request = get_request(services, request_id)
    if request is None or request.state != "approved":
        return None
    if request.kind == Kind.BREAK_GLASS and not request.message_ts:
        problem = "the security alert was never posted (the bot stopped before it)"
        services.store.execute(
            "UPDATE access_requests SET state = 'failed', error = ?, review_required = 0 WHERE id = ? "
            "AND state = 'approved'",
            [problem, request_id],
        )
        audit_request(services, request, "grant_failed", actor="iamwarden", at=now, reason=problem)
        return Recovered(get_request(services, request_id), "failed")  # type: ignore[arg-type]
    grants = grants_of(services, request_id)
    if grants:
        latest = grants[-1]
        with services.store.transaction() as db:
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
                    access_key_id=latest.access_key_id,
                    expires_at=iso(latest.expires_at),
                    window_end=iso(request.window_end) if request.window_end else None,
                    approvers=request.approvers,
                    recovered=True,
                )
                enqueue(db, "deliver", request_id, now=now)
        log.info("recovered grant %s that was recorded but never marked granted", request_id)
        return Recovered(get_request(services, request_id), "granted")  # type: ignore[arg-type]
    started = services.store.execute(
        "SELECT assume_started_at FROM access_requests WHERE id = ?", [request_id]
    ).fetchone()[0]
    if started:
        # A session may exist that nobody recorded. It was issued before started + ASSUME_MAX (no call
        # with all its retries lasts longer), which is before now: deny everything up to then, so the
        # retry below (issued now) is the only session that works.
        started_at = datetime.fromisoformat(started)
        cutoff = started_at + ASSUME_MAX
        until = max(request.window_end or now, now) + STATEMENT_GRACE
        audit_request(
            services,
            request,
            "grant_uncertain",
            actor="iamwarden",
            at=now,
            reason="AssumeRole was interrupted; any session it made is denied before retrying",
            assume_started_at=started,
            denied_before=iso(cutoff),
        )
        with services.store.transaction() as db:
            target = record_revocation(db, request, issued_before=cutoff, until=until, now=now)
        written, problem = sync_role(services, request.role_arn, request.account_id, target=target)
        if not written:
            log.warning(
                "could not deny the uncertain session of %s (%s); retrying later", request_id, problem
            )
            return None  # never retry AssumeRole while an unrecorded session might still work
    log.info("finishing approval %s that stopped before its grant", request_id)
    return Recovered(request, "grant")
