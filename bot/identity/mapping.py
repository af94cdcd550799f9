"""Who is who: Slack members ↔ IAM principals.

An explicit mapping in the config file wins (``[identity] map``: Slack user id → IAM user names,
role names or ARNs). Otherwise an IAM user tag (``[identity] tag_key``, default ``email``) is
matched, case-insensitively, to the Slack member's email from the cached directory
(``bot.identity.directory``). Approvals and authorization always bind to the immutable Slack user
id, never to a name or an email.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.findings import latest_snapshots, snapshot_inventory
from bot.identity.directory import directory_version, slack_members
from bot.settings import Config
from bot.store import Store


@dataclass(frozen=True)
class PrincipalRef:
    account_id: str
    arn: str
    name: str
    kind: str  # "user" | "role" | "root"


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
