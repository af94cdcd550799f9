"""Keeping the cached directory fresh: a full ``users.list`` read (start-up, the job, before a scan)
that also hands members it finds newly deactivated to offboarding (events missed while the bot
was down), and what a scan says when ownership cannot be judged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.identity.directory import (
    DirectoryChanges,
    DirectoryUnavailable,
    MemberSource,
    directory_is_stale,
    directory_refreshed_at,
    fetch_members,
    replace_directory,
)
from bot.identity.offboarding import record_directory_changes

log = logging.getLogger(__name__)


def refresh_directory(services: Any, source: MemberSource, *, page_size: int = 200) -> DirectoryChanges:
    """Read the whole directory from Slack and cache it; members it finds newly deactivated are
    claimed for offboarding (``bot.identity.offboarding``: events missed while the bot was down).

    Raises DirectoryUnavailable (the cache is left as it was)."""
    members, pages = fetch_members(source, page_size=page_size)
    changes = replace_directory(services.store, members, services.clock.now())
    log.info("directory refreshed: %d members in %d users.list pages", changes.stored, pages)
    if changes.deactivated or changes.reactivated:
        record_directory_changes(services, changes, source="directory_refresh")
    return changes


OWNERSHIP_CHECKS = "OFFBOARDED_USER_ACTIVE, UNOWNED_USER"


@dataclass
class ScanDirectory:
    """The directory a scan evaluates ownership with. ``unavailable``: why ownership cannot be judged
    (the checks report it as "could not evaluate"); ``note``: the one line the scan says about it."""

    unavailable: str | None = None
    note: str | None = None
    refreshed: bool = False


def directory_for_scan(services: Any, source: MemberSource | None) -> ScanDirectory:
    """Refresh a stale directory before a scan; say once, and why, when ownership cannot be judged.

    ``source`` is None when the scan has no Slack token (``iamwarden scan`` without SLACK_BOT_TOKEN).
    A cached directory is still used then (``iamwarden run`` on the same database keeps it fresh).
    """
    store = services.store
    refreshed_at = directory_refreshed_at(store)
    explicit_map = bool(services.config.identity.map)
    stale = directory_is_stale(services)
    if source is not None and stale:
        try:
            refresh_directory(services, source)
            return ScanDirectory(refreshed=True)
        except DirectoryUnavailable as exc:
            problem = str(exc)
    elif source is None and stale:
        problem = "SLACK_BOT_TOKEN is not set, so the Slack directory could not be read"
    else:
        return ScanDirectory()
    if refreshed_at is not None:
        return ScanDirectory(
            note=f"{problem}; ownership checks ({OWNERSHIP_CHECKS}) used the directory cached at {refreshed_at}."
        )
    if explicit_map:
        return ScanDirectory(
            note=f"{problem}; ownership checks ({OWNERSHIP_CHECKS}) used only [identity] map "
            "(no email tags, no deactivated members)."
        )
    reason = f"{problem} and none is cached; set SLACK_BOT_TOKEN or map owners in [identity] map"
    return ScanDirectory(
        unavailable=reason, note=f"ownership checks ({OWNERSHIP_CHECKS}) could not be evaluated: {reason}."
    )
