"""One call per user intent: approve, deny, withdraw, revoke, done, reissue, extend, review (break
glass is ``bot.access.break_glass``). Each authorizes from stored state and config, records, acts on
AWS and returns an Outcome; every state change is announced through the Notifier, so the request's
messages are re-rendered the same way whoever caused the change. Handlers only translate a payload
into one of these calls and render the outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.access.authorization import MembersOf, check_approver, format_duration, is_listed, may_end
from bot.access.break_glass import review as record_review
from bot.access.extension import apply_extension, request_extension
from bot.access.grant import grant, reissue
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
from bot.access.notifier import Notifier, SilentNotifier
from bot.access.revocation import Revocation, revoke
from bot.access.transitions import Approval
from bot.access.transitions import approve as record_approval
from bot.access.transitions import deny as record_denial
from bot.access.transitions import withdraw as withdraw_pending
from bot.services import Services
from bot.store import iso

IsSecurityTeam = Callable[[str], bool]


@dataclass
class Outcome:
    """What an intent did. ``status`` names it; ``message`` is plain text for the person who acted
    (escape before showing)."""

    status: str
    message: str
    request: AccessRequest | None = None
    credentials: IssuedCredentials | None = None
    parent: AccessRequest | None = None
    revocation: Revocation | None = None

    @property
    def refused(self) -> bool:
        return self.status in ("refused", "missing", "not_pending", "already_counted", "not_granted")


def _missing(request_id: str) -> Outcome:
    return Outcome("missing", "That access request no longer exists.")


def approve(
    services: Services,
    request_id: str,
    approver: str,
    *,
    members_of: MembersOf,
    notifier: Notifier,
    is_active: ActivePort = always_active,
) -> Outcome:
    """Count the approval; the approval that completes it grants (or applies the extension)."""
    request = get_request(services, request_id)
    if request is None:
        return _missing(request_id)
    try:
        check_approver(services, request, approver, members_of)
    except AccessError as exc:
        return Outcome("refused", str(exc), request)
    if not is_active(approver) or not is_active(request.requester):
        return Outcome("refused", "Approvals count only between active members of the workspace.", request)
    outcome, request = record_approval(services, request.id, approver)
    if outcome == Approval.EXPIRED:
        notifier.request_changed(request.id)
        return Outcome(
            "not_pending", f"Request {request.id} is already expired: nobody decided in time.", request
        )
    if outcome == Approval.NOT_PENDING:
        return Outcome("not_pending", f"Request {request.id} is already {request.state}.", request)
    if outcome == Approval.ALREADY_COUNTED:
        return Outcome(
            "already_counted", "Your approval was already counted; each approver counts once.", request
        )
    if outcome == Approval.RECORDED:
        notifier.request_changed(request.id)
        return Outcome("recorded", "Approval counted; more approvers are needed.", request)
    return finish_approval(services, request, notifier=notifier, is_active=is_active)


def finish_approval(
    services: Services, request: AccessRequest, *, notifier: Notifier, is_active: ActivePort = always_active
) -> Outcome:
    """The one caller that saw APPROVED grants (or applies the extension); also the sweep's path."""
    if request.kind == Kind.EXTENSION:
        extension, parent, creds = apply_extension(services, request.id, is_active=is_active)
        notifier.request_changed(extension.id)
        if parent is None:
            return Outcome(
                "extension_too_late",
                f"Extension {extension.id} came too late: the access had ended.",
                extension,
            )
        status = "extended" if creds is not None else "extended_without_credentials"
        return Outcome(status, f"Access to {parent.role} extended.", extension, creds, parent=parent)
    try:
        granted, creds = grant(services, request.id, is_active=is_active)
    except AccessError as exc:
        return Outcome("not_pending", str(exc), get_request(services, request.id))
    notifier.request_changed(granted.id)
    if creds is None:
        return Outcome("grant_failed", f"The grant failed: {granted.error or 'unknown error'}", granted)
    return Outcome("granted", f"Access to {granted.role} granted.", granted, creds)


def may_decide(services: Services, request_id: str, user: str, *, members_of: MembersOf) -> Outcome:
    """Whether ``user`` may decide the request now (the Deny button asks before opening its form)."""
    request = get_request(services, request_id)
    if request is None:
        return _missing(request_id)
    try:
        check_approver(services, request, user, members_of)
    except AccessError as exc:
        return Outcome("refused", str(exc), request)
    if request.state != State.PENDING:
        return Outcome("not_pending", f"Request {request.id} is already {request.state}.", request)
    return Outcome("allowed", "", request)


def deny(
    services: Services,
    request_id: str,
    by: str,
    reason: str | None,
    *,
    members_of: MembersOf,
    notifier: Notifier,
) -> Outcome:
    decision = may_decide(services, request_id, by, members_of=members_of)
    if decision.status != "allowed":
        return decision
    denied = record_denial(services, request_id, by, reason)
    if denied is None:
        current = get_request(services, request_id)
        return Outcome(
            "not_pending",
            f"Request {request_id} was already {current.state if current else 'gone'}.",
            current,
        )
    notifier.request_changed(denied.id)
    return Outcome("denied", f"Denied {denied.id}.", denied)


def withdraw(services: Services, request_id: str, by: str, *, notifier: Notifier) -> Outcome:
    """The requester takes back a pending request (or extension). Nobody else may."""
    request = get_request(services, request_id)
    if request is None:
        return _missing(request_id)
    if by != request.requester:
        return Outcome("refused", "Only the requester can withdraw this request.", request)
    now = services.clock.now()
    changed = services.store.execute(
        "UPDATE access_requests SET state = 'withdrawn', ended_at = ?, ended_by = ? WHERE id = ? AND state = 'pending'",
        [iso(now), by, request.id],
    ).rowcount
    if changed != 1:
        current = get_request(services, request.id)
        return Outcome(
            "not_pending", f"Request {request.id} is already {current.state if current else 'gone'}.", current
        )
    withdrawn = get_request(services, request.id)
    assert withdrawn is not None
    audit_request(services, withdrawn, "withdrawn", actor=by, at=now, reason="withdrawn by the requester")
    notifier.request_changed(withdrawn.id)
    return Outcome("withdrawn", f"Withdrew {withdrawn.id}; nothing was granted.", withdrawn)


def end(
    services: Services,
    request_id: str,
    by: str,
    *,
    done: bool,
    members_of: MembersOf,
    is_security_team: IsSecurityTeam,
    notifier: Notifier,
) -> Outcome:
    """Revoke (or I'm done): the requester, the role's approvers or the security team."""
    request = get_request(services, request_id)
    if request is None:
        return _missing(request_id)
    if not may_end(services, request, by, members_of, is_security_team):
        return Outcome(
            "refused", "Only the requester, an approver or the security team can end this access.", request
        )
    revocation = revoke(services, request.id, by, done=done)
    if revocation is None:
        current = get_request(services, resolve_parent(services, request.id))
        return Outcome(
            "not_granted",
            f"Request {request.id} is {current.state if current else 'gone'}; nothing to end.",
            current,
        )
    notifier.request_changed(revocation.request.id)
    return Outcome(
        "revoked", f"Access {revocation.request.id} ended.", revocation.request, revocation=revocation
    )


def get_credentials(
    services: Services, request_id: str, by: str, *, is_active: ActivePort = always_active
) -> Outcome:
    """Get credentials (again): a fresh session inside the window, for the requester only."""
    try:
        creds = reissue(services, request_id, by, is_active=is_active)
    except AccessError as exc:
        return Outcome("refused", str(exc), get_request(services, request_id))
    request = get_request(services, resolve_parent(services, request_id))
    return Outcome("issued", "", request, creds)


def extend(services: Services, request_id: str, by: str, *, notifier: Notifier) -> Outcome:
    try:
        extension = request_extension(services, request_id, by)
    except AccessError as exc:
        return Outcome("refused", str(exc), get_request(services, request_id))
    return Outcome(
        "requested",
        f"Asked for {format_duration(extension.duration)} more on {extension.role} ({extension.id}); "
        "your current access continues meanwhile.",
        extension,
    )


def review(
    services: Services, request_id: str, by: str, *, is_security_team: IsSecurityTeam, notifier: Notifier
) -> Outcome:
    if not is_security_team(by):
        return Outcome("refused", "Break-glass reviews are for the security team.")
    try:
        reviewed = record_review(services, request_id, by)
    except AccessError as exc:
        return Outcome("refused", str(exc))
    if reviewed is None:
        return Outcome("already", f"{request_id} was already reviewed.")
    notifier.request_changed(reviewed.id)
    return Outcome("reviewed", f"Marked {reviewed.id} as reviewed.", reviewed)


def is_approver(services: Services, request: AccessRequest, user: str, members_of: MembersOf) -> bool:
    role = services.config.role(request.role)
    return bool(role) and user != request.requester and is_listed(user, role.approvers, members_of)


@dataclass
class EndedAll:
    """What ``end_all_access_of`` did: (request id, role, revocation) and (request id, role, kind)."""

    revoked: list[tuple[str, str, Revocation]]
    withdrawn: list[tuple[str, str, str]]


def end_all_access_of(
    services: Services, user_id: str, *, by: str = "iamwarden", reason: str, notifier: Notifier | None = None
) -> EndedAll:
    """End every just-in-time access of a member (offboarding): revoke live grants through the normal
    revocation path (so live sessions stop) and withdraw pending requests and extensions; each
    change is announced like any other."""
    notifier = notifier or SilentNotifier()
    ended = EndedAll(revoked=[], withdrawn=[])
    rows = services.store.execute(
        "SELECT id, kind, state, role FROM access_requests WHERE requester = ? AND state IN ('pending', 'granted') "
        "ORDER BY created_at",
        [user_id],
    ).fetchall()
    for request_id, kind, state, role in rows:
        if state == "granted" and kind != "extension":
            revocation = revoke(services, request_id, by)
            if revocation is not None:
                ended.revoked.append((request_id, role, revocation))
                notifier.request_changed(request_id)
        elif state == "pending" and withdraw_pending(services, request_id, reason):
            ended.withdrawn.append((request_id, role, kind))
            notifier.request_changed(request_id)
    return ended
