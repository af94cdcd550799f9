"""Who a role trust policy lets assume the role, as ROLE_TRUST_OPENED judges it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.alerts.facts import _as_list
from bot.policy import PolicySource, parse_policy

# Trust-policy condition keys that keep "who may assume" narrow.
_TRUST_GUARDS = frozenset({"sts:externalid", "aws:multifactorauthpresent", "aws:multifactorauthage"})
_TRUST_SCOPES = frozenset(
    {
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
    }
)


@dataclass
class TrustSummary:
    """Who a role trust policy lets assume the role, as ROLE_TRUST_OPENED judges it."""

    public: bool = False  # `*` (any AWS account) with no org/account/ARN scoping condition
    outside: list[str] = field(default_factory=list)  # accounts not ours, unguarded
    guarded: set[str] = field(default_factory=set)  # principals behind ExternalId/MFA
    unguarded: set[str] = field(default_factory=set)  # principals with no such condition


def _allows_assume(actions: tuple[str, ...] | None, not_actions: tuple[str, ...] | None) -> bool:
    if not_actions is not None:
        return True  # NotAction in a trust policy: assume it admits AssumeRole* (never fail open)
    return any(
        a.lower() in ("*", "sts:*", "sts:assume*") or a.lower().startswith("sts:assumerole")
        for a in actions or ()
    )


def _principal_account(principal: str) -> str | None:
    if principal.isdigit() and len(principal) == 12:
        return principal
    parts = principal.split(":")
    return parts[4] if len(parts) > 4 and parts[0] == "arn" else None


def trust_summary(document: Any, role: str, *, ours: set[str]) -> TrustSummary:
    """Read a trust policy with the project's policy parser (``bot.policy``); raises
    ``PolicyParseError`` on anything that is not policy grammar."""

    summary = TrustSummary()
    for statement in parse_policy(document, PolicySource("trust", role)):
        if statement.effect != "Allow" or not _allows_assume(statement.actions, statement.not_actions):
            continue
        keys = {k.lower() for block in statement.conditions.values() for k in block}
        principal = statement.principal
        if principal == "*":
            principals = ["*"]
        elif isinstance(principal, dict):
            principals = [str(p) for p in _as_list(principal.get("AWS"))]
        else:
            principals = []
        guarded = bool(keys & _TRUST_GUARDS)
        for p in principals:
            (summary.guarded if guarded else summary.unguarded).add(p)
            account = "*" if p == "*" else _principal_account(p)
            if account is not None and "*" in account:
                if not keys & _TRUST_SCOPES:
                    summary.public = True
            elif account and account not in ours and not guarded and account not in summary.outside:
                summary.outside.append(account)
    return summary
