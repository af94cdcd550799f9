"""Ownership: IAM users whose person has left, and IAM users nobody owns.

Both need to know who is who (``CheckContext.owners``: ``bot.identity.IdentityMap``, built from the
config's explicit map, the IAM user's email tag and the cached Slack directory). Without it, or with
an empty directory and no explicit map, they say "could not evaluate", never "all clear".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bot.checks.catalog import CheckContext, Hit, check
from bot.checks.mfa import flag
from bot.findings import Severity

DISABLE_CLI = (
    "for k in $(aws iam list-access-keys --user-name {name} --query 'AccessKeyMetadata[].AccessKeyId' "
    "--output text); do aws iam update-access-key --user-name {name} --access-key-id $k --status Inactive; "
    "done; aws iam delete-login-profile --user-name {name}"
)


def _credentials(row: Mapping[str, str] | None) -> list[str]:
    """What still works for the user, in words ("console password", "access key 1" …)."""
    held = []
    if flag(dict(row) if row else None, "password_enabled"):
        held.append("console password")
    for n in (1, 2):
        if flag(dict(row) if row else None, f"access_key_{n}_active"):
            held.append(f"access key {n}")
    return held


def _directory_problem(ctx: CheckContext) -> str | None:
    """Why ownership cannot be judged right now, or None when it can."""
    if ctx.owners is None:
        return "no Slack directory is available to this scan (run the bot, or map owners in [identity] map)"
    unavailable = getattr(ctx.owners, "unavailable", None)
    if unavailable:
        return unavailable
    members = getattr(ctx.owners, "members", None)
    if members is not None and not members and not ctx.config.identity.map:
        return "the Slack directory has not been cached yet and no owners are mapped in [identity] map"
    return None


def _is_deactivated(owners: Any, user_id: str) -> bool | None:
    check_member = getattr(owners, "is_deactivated", None)
    if check_member is None:
        return None
    members = getattr(owners, "members", None)
    if members is not None and user_id not in members:
        return None  # mapped explicitly to someone the cached directory does not know
    return bool(check_member(user_id))


@check(
    "OFFBOARDED_USER_ACTIVE",
    title="IAM user of a deactivated Slack member still has working credentials",
    severity=Severity.CRITICAL,
    cis=("1.12",),
    risk="Someone who has left can still reach the account, and nobody is watching those credentials.",
    console="IAM → Users → {name} → Security credentials: deactivate every access key and delete the "
    "console password (or use Disable access in the digest).",
    cli=DISABLE_CLI,
    needs=("credential_report",),
)
def offboarded_user_active(ctx: CheckContext) -> Iterator[Hit]:
    problem = _directory_problem(ctx)
    if problem:
        yield ctx.unknown(problem)
        return
    for user, row in ctx.users():
        owner = ctx.owners.owner_of(user["Arn"])
        if not owner or not _is_deactivated(ctx.owners, owner):
            continue
        held = _credentials(row)
        if held:
            yield Hit(
                user["Arn"],
                user["UserName"],
                f"Mapped to Slack member {owner}, who is deactivated; still active: {', '.join(held)}.",
                extra={"slack_member": owner, "credentials": held},
            )


@check(
    "UNOWNED_USER",
    title="IAM user with credentials and no owner",
    severity=Severity.MEDIUM,
    risk="Credentials nobody answers for are never rotated, never reviewed and never removed.",
    console="Tag IAM → Users → {name} with the owner's email (tag key from [identity] tag_key), map it "
    "in [identity] map, or remove its credentials if nobody claims it.",
    cli="aws iam tag-user --user-name {name} --tags Key=email,Value=OWNER_EMAIL",
    needs=("credential_report",),
)
def unowned_user(ctx: CheckContext) -> Iterator[Hit]:
    problem = _directory_problem(ctx)
    if problem:
        yield ctx.unknown(problem)
        return
    for user, row in ctx.users():
        if ctx.owners.owner_of(user["Arn"]):
            continue
        held = _credentials(row)
        if held:
            yield Hit(
                user["Arn"],
                user["UserName"],
                f"No Slack member owns this user (no explicit mapping, no matching "
                f"{ctx.config.identity.tag_key} tag); it holds: {', '.join(held)}.",
                extra={"credentials": held},
            )
