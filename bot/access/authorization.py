"""Who may do what, decided from the config and stored state (never from a payload); durations and tickets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import timedelta

from bot.access.model import AccessError, AccessRequest
from bot.services import Services
from bot.settings import RoleConfig, parse_duration

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
