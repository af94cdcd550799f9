"""Slack directory look-ups the handlers need: user groups and members, cached briefly.

``usergroups.*`` and ``users.*`` are rate-limited tiers: never call them per keystroke.
"""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

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


def clear_cache() -> None:
    with _lock:
        _cache.clear()
