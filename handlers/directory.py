"""Slack directory look-ups the handlers need: user groups and members, cached briefly; the
directory-refresh job (which also offboards members it finds deactivated); and
``member_is_active``, asked before credentials are issued or an approval is counted.

``usergroups.*`` and ``users.*`` are rate-limited tiers: never call them per keystroke.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.jobs import job
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
    from bot.offboarding import is_offboarded

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


# --------------------------------------------------------------------------- the directory job

# The job wakes every few minutes but calls users.list only when the cache is stale: a new
# deployment gets its directory within minutes instead of after the first full interval. It also
# runs once before ``iamwarden run`` serves, so the first answer already knows who is who.
_DIRECTORY_CHECK_SECONDS = 300.0


def refresh_directory(services: Services, client: WebClient, *, page_size: int = 200) -> int:
    """Cache the directory now (paged users.list), then offboard members it found deactivated.
    Returns how many members were stored. Raises bot.identity.DirectoryUnavailable."""
    from bot import identity

    changes = identity.refresh_directory(services, client, page_size=page_size)
    from handlers.offboarding import sweep_offboardings  # offboarding builds on the directory

    sweep_offboardings(services, client)
    return changes.stored


@job(
    "directory-refresh",
    every_seconds=lambda s: min(
        _DIRECTORY_CHECK_SECONDS, s.config.identity.directory_refresh.total_seconds()
    ),
    at_start=True,
)
def directory_refresh_job(services: Services, client: Any) -> None:
    from bot.identity import DirectoryUnavailable, directory_is_stale

    if not directory_is_stale(services):
        return
    try:
        refresh_directory(services, client)
    except DirectoryUnavailable as exc:
        log.warning("%s; the cached directory stays in use and the job retries", exc)
