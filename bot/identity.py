"""Who is who: Slack members ↔ IAM principals.

An explicit mapping in the config file wins (``[identity] map``: Slack user id → IAM user names,
role names or ARNs). Otherwise an IAM user tag (``[identity] tag_key``, default ``email``) is
matched, case-insensitively, to the Slack member's email from the cached directory.

The Slack directory is cached in the ``slack_users`` table: at start-up of ``iamwarden run`` (before
it serves), on the ``[identity] directory_refresh`` interval, before every scan when it is stale, and
one member at a time from Slack's ``user_change`` event. ``users.list`` is rate-limited (Tier 2):
never call it per request. Every change bumps ``directory.version``, which is what the answer-time
caches key on. Approvals and authorization always bind to the immutable Slack user id, never to a
name or an email.

This module never imports slack_sdk: a ``MemberSource`` is anything with slack_sdk's
``users_list(limit=…, cursor=…)`` shape (the Bolt app's WebClient in production).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.settings import Config
from bot.store import Store, iso

log = logging.getLogger(__name__)

DIRECTORY_VERSION_KEY = "directory.version"
DIRECTORY_REFRESHED_KEY = "directory.refreshed_at"


@dataclass(frozen=True)
class PrincipalRef:
    account_id: str
    arn: str
    name: str
    kind: str  # "user" | "role" | "root"


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


def refresh_directory(services: Any, source: MemberSource, *, page_size: int = 200) -> DirectoryChanges:
    """Read the whole directory from Slack and cache it; members it finds newly deactivated are
    claimed for offboarding (``bot.offboarding``: events missed while the bot was down).

    Raises DirectoryUnavailable (the cache is left as it was)."""
    members, pages = fetch_members(source, page_size=page_size)
    changes = replace_directory(services.store, members, services.clock.now())
    log.info("directory refreshed: %d members in %d users.list pages", changes.stored, pages)
    if changes.deactivated or changes.reactivated:
        from bot.offboarding import record_directory_changes  # offboarding builds on identity

        record_directory_changes(services, changes, source="directory_refresh")
    return changes


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def directory_is_stale(services: Any) -> bool:
    """True when the directory was never cached or is older than ``[identity] directory_refresh``."""
    refreshed = directory_refreshed_at(services.store)
    if refreshed is None:
        return True
    return services.clock.now() - _parse_time(refreshed) >= services.config.identity.directory_refresh


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


def slack_member(store: Store, user_id: str) -> dict[str, Any] | None:
    rows = list(store.db["slack_users"].rows_where("id = ?", [user_id]))
    return rows[0] if rows else None


def slack_members(store: Store) -> list[dict[str, Any]]:
    return list(store.db["slack_users"].rows)


def _tags(entry: Mapping[str, Any]) -> dict[str, str]:
    return {t.get("Key", ""): t.get("Value", "") for t in entry.get("Tags") or []}


@dataclass
class IdentityMap:
    """Slack user id ↔ IAM principals across accounts, from config, directory and snapshots."""

    by_member: dict[str, list[PrincipalRef]] = field(default_factory=dict)
    owner_by_arn: dict[str, str] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag_key: str = "email"
    # Why ownership cannot be judged with this map (no directory, no token); None when it can.
    unavailable: str | None = None

    @classmethod
    def build(
        cls, config: Config, store: Store | None, inventories: Mapping[str, Mapping[str, Any]]
    ) -> IdentityMap:
        """``inventories``: account id → snapshot inventory (needs ``users`` and ``roles``, GAAD shapes)."""
        members = {m["id"]: m for m in slack_members(store)} if store is not None else {}
        by_email = {m["email"].lower(): uid for uid, m in members.items() if m.get("email")}
        principals: list[PrincipalRef] = []
        tags_by_arn: dict[str, dict[str, str]] = {}
        for account_id, inv in inventories.items():
            for user in inv.get("users") or []:
                ref = PrincipalRef(account_id, user["Arn"], user["UserName"], "user")
                principals.append(ref)
                tags_by_arn[ref.arn] = _tags(user)
            for role in inv.get("roles") or []:
                principals.append(PrincipalRef(account_id, role["Arn"], role["RoleName"], "role"))
        result = cls(members=members, tag_key=config.identity.tag_key)

        def link(member: str, ref: PrincipalRef) -> None:
            refs = result.by_member.setdefault(member, [])
            if ref not in refs:
                refs.append(ref)
            result.owner_by_arn.setdefault(ref.arn, member)

        # Explicit mapping first: it wins over tags for every principal it names.
        for member, names in config.identity.map.items():
            for name in names:
                matched = [p for p in principals if name in (p.arn, p.name)]
                if not matched and name.startswith("arn:"):
                    parts = name.split(":")
                    kind = "role" if ":role/" in name else "user"
                    matched = [
                        PrincipalRef(parts[4] if len(parts) > 4 else "", name, name.rsplit("/", 1)[-1], kind)
                    ]
                for ref in matched:
                    result.owner_by_arn[ref.arn] = member
                    link(member, ref)
        tag_key = config.identity.tag_key
        for ref in principals:
            if ref.kind != "user" or ref.arn in result.owner_by_arn:
                continue
            email = tags_by_arn.get(ref.arn, {}).get(tag_key, "").strip().lower()
            member = by_email.get(email) if email else None
            if member:
                link(member, ref)
        return result

    def principals_of(self, slack_user_id: str) -> list[PrincipalRef]:
        return list(self.by_member.get(slack_user_id, []))

    def owner_of(self, principal_arn: str | None) -> str | None:
        return self.owner_by_arn.get(principal_arn or "")

    def member(self, slack_user_id: str) -> dict[str, Any] | None:
        return self.members.get(slack_user_id)

    def is_deactivated(self, slack_user_id: str) -> bool:
        m = self.members.get(slack_user_id)
        return bool(m and m.get("deleted"))

    def email_of(self, slack_user_id: str) -> str | None:
        """The member's email as the cached directory has it (what an IAM user's tag must say)."""
        m = self.members.get(slack_user_id)
        return (m or {}).get("email") or None


def latest_inventories(store: Store) -> dict[str, dict[str, Any]]:
    """account id → inventory of the newest successful snapshot (for building an IdentityMap)."""
    from bot.findings import latest_snapshots, snapshot_inventory

    result: dict[str, dict[str, Any]] = {}
    for snap in latest_snapshots(store):
        inv = snapshot_inventory(store, snap["id"])
        if inv is not None:
            result[snap["account_id"]] = inv
    return result


# Keyed (config id, database path, snapshot ids, directory version). Every caller asks for the
# newest snapshots, so a new snapshot or directory version supersedes the database's entry instead
# of sitting beside it (each map holds a copy of the directory): memory stays flat across snapshots.
MAX_IDENTITY_MAPS = 8
_CACHE: dict[tuple, IdentityMap] = {}
_CACHE_LOCK = threading.Lock()


def identity_for(
    config: Config, store: Store, snapshot_ids: Iterable[int], inventories: Mapping[str, Mapping[str, Any]]
) -> IdentityMap:
    """The IdentityMap of these (already parsed) snapshots and the directory as it is now, cached
    per snapshot set + directory version + config: a directory change (a refresh, a user_change
    event) shows on the next answer without re-parsing any snapshot, and without a new scan."""
    key = (id(config), str(store.path), tuple(snapshot_ids), directory_version(store))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    built = IdentityMap.build(config, store, inventories)
    with _CACHE_LOCK:
        for superseded in [k for k in _CACHE if k[:2] == key[:2]]:
            del _CACHE[superseded]
        while len(_CACHE) >= MAX_IDENTITY_MAPS:
            del _CACHE[next(iter(_CACHE))]  # the oldest database's
        _CACHE[key] = built
    return built


def identity_from_store(config: Config, store: Store) -> IdentityMap:
    """The IdentityMap for the newest snapshots, cached until a snapshot or the directory changes
    (parsing a large inventory per Slack request would blow the 3-second budget)."""
    from bot.findings import latest_snapshots

    key = (
        id(config),
        str(store.path),
        tuple(s["id"] for s in latest_snapshots(store)),
        directory_version(store),
    )
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    return identity_for(config, store, key[2], latest_inventories(store))


def dumps(refs: Iterable[PrincipalRef]) -> str:
    return json.dumps([r.__dict__ for r in refs])
