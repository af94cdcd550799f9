"""Effective policies over one inventory: each principal's statements, each policy parsed once.

``principal_statements`` (and ``PolicyIndex.statements``, which also says what is missing) turns a
snapshot's inventory (``bot.inventory.collect``) into a principal's statements for ``bot.policy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.policy import PolicyParseError, PolicySource, Statement, parse_policy


def unknown_source(inventory: Mapping[str, Any], source: str) -> str | None:
    """Why ``source`` could not be read, or None when it was read."""
    for entry in inventory.get("unknown_sources") or []:
        if entry.get("source") == source:
            return entry.get("reason") or "unavailable"
    return None


def _policy_document(policy: Mapping[str, Any]) -> Any:
    for version in policy.get("PolicyVersionList") or []:
        if version.get("IsDefaultVersion", True):
            return version.get("Document")
    return None


class PolicyIndex:
    """Lookups over one inventory, with each policy parsed once (shared by every principal)."""

    def __init__(self, inventory: Mapping[str, Any]):
        self.inventory = inventory
        self.account_id = inventory.get("account_id") or ""
        self.users = {u["Arn"]: u for u in inventory.get("users") or []}
        self.roles = {r["Arn"]: r for r in inventory.get("roles") or []}
        self.groups = {g["Arn"]: g for g in inventory.get("groups") or []}
        self.groups_by_name = {g["GroupName"]: g for g in inventory.get("groups") or []}
        self.policies = {p["Arn"]: p for p in inventory.get("policies") or []}
        self._parsed: dict[tuple, tuple[list[Statement], str | None]] = {}
        self._statements: dict[str, tuple[list[Statement], list[str]]] = {}

    def _parse(self, document: Any, source: PolicySource) -> tuple[list[Statement], str | None]:
        key = (source, id(document))
        hit = self._parsed.get(key)
        if hit is None:
            try:
                hit = (parse_policy(document, source), None)
            except PolicyParseError as exc:
                hit = ([], f"{source.describe()} could not be parsed: {exc}")
            self._parsed[key] = hit
        return hit

    def _managed(self, arn: str, name: str, kind: str, via: str | None) -> tuple[list[Statement], str | None]:
        policy = self.policies.get(arn)
        document = _policy_document(policy) if policy else None
        source = PolicySource(kind, name, arn, via)
        if document is None:
            return [], f"{source.describe()} ({arn}) is not in the snapshot"
        return self._parse(document, source)

    def principal(self, arn: str) -> tuple[str, Mapping[str, Any]] | None:
        for kind, table in (("user", self.users), ("role", self.roles), ("group", self.groups)):
            if arn in table:
                return kind, table[arn]
        return None

    def statements(self, arn: str, *, own_only: bool = False) -> tuple[list[Statement], list[str]]:
        """A principal's statements and the problems that make them incomplete.

        Users get their inline, attached managed and group policies (``own_only`` leaves out
        what comes through groups) plus their permissions boundary; roles and groups theirs.
        """
        cache_key = f"{own_only}|{arn}"
        if cache_key in self._statements:
            return self._statements[cache_key]
        found = self.principal(arn)
        if found is None:
            raise KeyError(f"{arn} is not a user, role or group in the snapshot of {self.account_id}")
        kind, entry = found
        out: list[Statement] = []
        problems: list[str] = []

        def add(result: tuple[list[Statement], str | None]) -> None:
            out.extend(result[0])
            if result[1]:
                problems.append(result[1])

        inline_key = {"user": "UserPolicyList", "role": "RolePolicyList", "group": "GroupPolicyList"}[kind]
        inline_kind = "group-inline" if kind == "group" else "inline"
        managed_kind = "group-managed" if kind == "group" else "managed"
        via = entry.get("GroupName") if kind == "group" else None
        for inline in entry.get(inline_key) or []:
            add(
                self._parse(
                    inline.get("PolicyDocument"), PolicySource(inline_kind, inline["PolicyName"], None, via)
                )
            )
        for attached in entry.get("AttachedManagedPolicies") or []:
            add(self._managed(attached["PolicyArn"], attached["PolicyName"], managed_kind, via))
        if kind == "user" and not own_only:
            for group_name in entry.get("GroupList") or []:
                group = self.groups_by_name.get(group_name)
                if group is None:
                    problems.append(f"group {group_name} is not in the snapshot")
                    continue
                group_statements, group_problems = self.statements(group["Arn"])
                out.extend(group_statements)
                problems.extend(group_problems)
        boundary = (entry.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if boundary and kind != "group":
            add(self._managed(boundary, boundary.rsplit("/", 1)[-1], "permissions-boundary", None))
        self._statements[cache_key] = (out, problems)
        return out, problems


def principal_statements(inventory: Mapping[str, Any] | PolicyIndex, principal_arn: str) -> list[Statement]:
    """The union of a user's, role's or group's inline, attached managed and group policies (plus a
    permissions boundary), each Statement's ``source`` saying where it came from.

    Raises KeyError when the principal is not in the snapshot. Policies missing from the snapshot
    or unparseable are left out; use ``PolicyIndex.statements`` to learn about them.
    """
    index = inventory if isinstance(inventory, PolicyIndex) else PolicyIndex(inventory)
    return list(index.statements(principal_arn)[0])


def attached_policy_names(entry: Mapping[str, Any]) -> Iterable[str]:
    return (a.get("PolicyName", "") for a in entry.get("AttachedManagedPolicies") or [])
