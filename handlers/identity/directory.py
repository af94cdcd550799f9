"""Slack directory look-ups every feature's handlers need: user groups and members, cached briefly,
and ``member_is_active``, asked before credentials are issued or an approval is counted. (The
cached ``users.list`` directory is ``bot.identity.directory``; its job is ``handlers.identity.jobs``.)

``usergroups.*`` and ``users.*`` are rate-limited tiers: never call them per keystroke.
"""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.identity import is_offboarded
from bot.services import Services

log = logging.getLogger(__name__)

_CACHE_SECONDS = 300
_lock = threading.Lock()
_cache: dict[tuple[int, str], tuple[float, frozenset[str]]] = {}


class DirectoryError(Exception):
    """Slack could not tell us who is in a group; the message says so in plain words."""


def usergroup_members(
    client: WebClient, services: Services, handle: str, *, strict: bool = False
) -> frozenset[str]:
    """Member ids of a user group given as ``@handle`` or ``S…`` id.

    On a Slack error: raises DirectoryError when ``strict`` (authorization decisions that must not
    guess), otherwise logs and returns an empty set (deny by default).
    """
    key = (id(services), handle)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
    try:
        group_id = handle
        if handle.startswith("@"):
            groups = client.usergroups_list()["usergroups"]
            match = next((g for g in groups if g.get("handle") == handle[1:]), None)
            if match is None:
                raise DirectoryError(f"Slack has no user group {handle}")
            group_id = match["id"]
        members = frozenset(client.usergroups_users_list(usergroup=group_id)["users"])
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        message = f"Slack could not list the members of {handle} ({error})"
        if strict:
            raise DirectoryError(message) from None
        log.warning("%s", message)
        return frozenset()
    except DirectoryError:
        if strict:
            raise
        log.warning("no user group %s", handle)
        return frozenset()
    with _lock:
        _cache[key] = (now, members)
    return members


def cached_usergroup_members(services: Services, handle: str) -> frozenset[str] | None:
    """The group's members if the cache holds a fresh answer, else None; never calls Slack
    (for deciding before an ack)."""
    with _lock:
        hit = _cache.get((id(services), handle))
    if hit and time.monotonic() - hit[0] < _CACHE_SECONDS:
        return hit[1]
    return None


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _active_cache.clear()


# --------------------------------------------------------------------------- is this member still here?

# users.info answers are trusted this long at most (the issue: "cached a minute at most"); a member
# deactivated inside that minute is still stopped by the user_change event and the offboarding row.
ACTIVE_CACHE_SECONDS = 60.0
_active_cache: dict[tuple[int, str], tuple[float, bool]] = {}


def member_is_active(client: WebClient, services: Services, user_id: str) -> bool:
    """True only when Slack confirms ``user_id`` is an active member (``users.info``, cached a
    minute at most) and no offboarding of theirs is open. Fails closed: when Slack cannot answer,
    the answer is False (no credentials and no counted approval on a guess)."""
    if is_offboarded(services, user_id):
        return False
    key = (id(services), user_id)
    now = services.clock.now().timestamp()  # the bot's clock: tests move it instead of sleeping
    with _lock:
        hit = _active_cache.get(key)
    if hit and 0 <= now - hit[0] < ACTIVE_CACHE_SECONDS:
        return hit[1]
    try:
        user = client.users_info(user=user_id)["user"]
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        log.warning(
            "users.info for %s failed (%s): treating the member as not confirmed active", user_id, error
        )
        return False
    active = not user.get("deleted")
    with _lock:
        _active_cache[key] = (now, active)
    return active
