"""The Slack directory, cached in SQLite: who is a member, their email, and whether they left.

The ``slack_users`` table is filled at start-up of ``iamwarden run`` (before it serves), on the
``[identity] directory_refresh`` interval, before every scan when it is stale (``bot.identity.refresh``),
and one member at a time from Slack's ``user_change`` event. ``users.list`` is rate-limited (Tier 2):
never call it per request. Every change bumps ``directory.version``, which is what the answer-time
caches key on.

This module never imports slack_sdk: a ``MemberSource`` is anything with slack_sdk's
``users_list(limit=…, cursor=…)`` shape (the Bolt app's WebClient in production).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.store import Store, iso

DIRECTORY_VERSION_KEY = "directory.version"
DIRECTORY_REFRESHED_KEY = "directory.refreshed_at"


def _member_row(m: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    profile = m.get("profile") or {}
    return {
        "id": m["id"],
        "name": m.get("name") or "",
        "real_name": m.get("real_name") or profile.get("real_name") or "",
        "email": (profile.get("email") or m.get("email") or "").lower() or None,
        "deleted": int(bool(m.get("deleted"))),
        "is_bot": int(bool(m.get("is_bot"))),
        "tz": m.get("tz") or "",
        "updated_at": iso(at),
    }


def _bump_version(db: Any, at: datetime) -> None:
    db.execute(
        "INSERT INTO kv (key, value, updated_at) VALUES (?, '1', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1, updated_at = excluded.updated_at",
        [DIRECTORY_VERSION_KEY, iso(at)],
    )


@dataclass
class DirectoryChanges:
    """What a directory write changed for offboarding: members deactivated since the cache last saw
    them active, and members active again who were cached as deactivated."""

    stored: int = 0
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)


def store_directory(store: Store, members: Iterable[Mapping[str, Any]], at: datetime) -> int:
    """Replace the cached directory with ``users.list`` members; returns how many were stored."""
    return replace_directory(store, members, at).stored


def replace_directory(store: Store, members: Iterable[Mapping[str, Any]], at: datetime) -> DirectoryChanges:
    """Replace the cached directory with ``users.list`` members, in one transaction; says who was
    deactivated or reactivated compared with the cache it replaced (a member first seen already
    deactivated is not "newly" deactivated: the ownership checks report their leftovers)."""
    rows = [_member_row(m, at) for m in members if m.get("id")]
    changes = DirectoryChanges(stored=len(rows))
    with store.transaction() as db:
        before = {r[0]: bool(r[1]) for r in db.execute("SELECT id, deleted FROM slack_users").fetchall()}
        for row in rows:
            was_deleted = before.get(row["id"])
            if row["deleted"] and was_deleted is False:
                changes.deactivated.append(row["id"])
            elif not row["deleted"] and was_deleted:
                changes.reactivated.append(row["id"])
        db.execute("DELETE FROM slack_users")
        db["slack_users"].insert_all(rows, pk="id", replace=True)
        db["kv"].upsert({"key": DIRECTORY_REFRESHED_KEY, "value": iso(at), "updated_at": iso(at)}, pk="key")
        _bump_version(db, at)
    return changes


def store_member(store: Store, member: Mapping[str, Any], at: datetime) -> DirectoryChanges:
    """Upsert one member (a ``user_change`` event's ``user``); says whether that (de)activated them."""
    row = _member_row(member, at)
    changes = DirectoryChanges(stored=1)
    with store.transaction() as db:
        found = db.execute("SELECT deleted FROM slack_users WHERE id = ?", [row["id"]]).fetchone()
        was_deleted = bool(found[0]) if found else None
        if row["deleted"] and not was_deleted:
            changes.deactivated.append(row["id"])  # unknown before counts: Slack just told us
        elif not row["deleted"] and was_deleted:
            changes.reactivated.append(row["id"])
        db["slack_users"].upsert(row, pk="id")
        _bump_version(db, at)
    return changes


def directory_version(store: Store) -> str | None:
    """Changes whenever the cached directory does (full refresh or one member)."""
    return store.get_kv(DIRECTORY_VERSION_KEY)


def directory_refreshed_at(store: Store) -> str | None:
    return store.get_kv(DIRECTORY_REFRESHED_KEY)


class MemberSource(Protocol):
    """Slack's ``users.list`` (slack_sdk ``WebClient.users_list``): pages of ``members`` and a
    ``response_metadata.next_cursor``. Raises on a Slack error (``SlackApiError``)."""

    def users_list(self, **kwargs: Any) -> Any: ...


class DirectoryUnavailable(Exception):
    """Slack's directory could not be read; the message is one true sentence for a person."""


def slack_error_text(exc: BaseException) -> str:
    """Slack's error code from a slack_sdk error (``exc.response["error"]``), else the kind of failure."""
    response = getattr(exc, "response", None)
    try:
        error = response.get("error") if response is not None else None
    except Exception:  # noqa: BLE001 - any response object: never fail while describing a failure
        error = None
    return str(error) if error else type(exc).__name__


def fetch_members(source: MemberSource, *, page_size: int = 200) -> tuple[list[dict[str, Any]], int]:
    """Every member of the workspace, paging ``users.list`` with its cursor; returns (members, pages).

    Slack recommends pages of at most 200; the WebClient's RateLimitErrorRetryHandler honours
    Retry-After on HTTP 429, so a large workspace is read within Slack's rate limits.
    """
    members: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        try:
            page = source.users_list(limit=page_size, **({"cursor": cursor} if cursor else {}))
        except Exception as exc:  # slack_sdk's SlackApiError and connection errors; never half a directory
            raise DirectoryUnavailable(
                f"Slack refused users.list ({slack_error_text(exc)}), so the directory was not refreshed"
            ) from None
        pages += 1
        members += list(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return members, pages


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def directory_is_stale(services: Any) -> bool:
    """True when the directory was never cached or is older than ``[identity] directory_refresh``."""
    refreshed = directory_refreshed_at(services.store)
    if refreshed is None:
        return True
    return services.clock.now() - _parse_time(refreshed) >= services.config.identity.directory_refresh


def slack_member(store: Store, user_id: str) -> dict[str, Any] | None:
    rows = list(store.db["slack_users"].rows_where("id = ?", [user_id]))
    return rows[0] if rows else None


def slack_members(store: Store) -> list[dict[str, Any]]:
    return list(store.db["slack_users"].rows)
