"""Credential hygiene for IAM users, from the credential report (never the root row).

The report names keys by slot (1 and 2), not by id: learning ids would cost one call per user, so
findings are keyed by slot and the remediation lists the user's keys first.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.checks.catalog import CheckContext, Hit, check
from bot.checks.mfa import flag
from bot.findings import Severity

LIST_KEYS = "aws iam list-access-keys --user-name {name}"


def _active_keys(row: dict[str, str] | None) -> list[int]:
    return [n for n in (1, 2) if flag(row, f"access_key_{n}_active")]


def _ago(days: float | None) -> str:
    return "never" if days is None else f"{days:.0f} days ago"


@check(
    "ACCESS_KEY_NOT_ROTATED",
    title="Access key not rotated",
    severity=Severity.MEDIUM,
    cis=("1.14",),
    risk="The older a key, the more places it has been copied to and the longer a leak stays useful.",
    console="IAM → Users → {name} → Security credentials → Create access key, move the workload to "
    "it, then deactivate and delete the old key.",
    cli=LIST_KEYS + " && aws iam create-access-key --user-name {name} && "
    "aws iam update-access-key --user-name {name} --access-key-id OLD_KEY_ID --status Inactive",
    needs=("credential_report",),
)
def access_key_not_rotated(ctx: CheckContext) -> Iterator[Hit]:
    limit = ctx.settings.key_rotation_days
    for user, row in ctx.users():
        for n in _active_keys(row):
            age = ctx.days_since(row.get(f"access_key_{n}_last_rotated"))
            if age is not None and age > limit:
                yield Hit(
                    user["Arn"],
                    user["UserName"],
                    f"Access key {n} was created {age:.0f} days ago (limit {limit}).",
                    key=f"access_key_{n}",
                )


@check(
    "ACCESS_KEY_UNUSED",
    title="Active access key unused",
    severity=Severity.MEDIUM,
    cis=("1.12",),
    risk="An unused key is pure exposure: it does nothing for its owner and everything for whoever finds it.",
    console="IAM → Users → {name} → Security credentials → Access keys → Deactivate (delete it once "
    "nothing breaks).",
    cli=LIST_KEYS
    + " && aws iam update-access-key --user-name {name} --access-key-id KEY_ID --status Inactive",
    needs=("credential_report",),
)
def access_key_unused(ctx: CheckContext) -> Iterator[Hit]:
    limit = ctx.settings.key_unused_days
    for user, row in ctx.users():
        for n in _active_keys(row):
            idle = ctx.days_since(row.get(f"access_key_{n}_last_used_date"))
            if idle is not None and idle > limit:
                yield Hit(
                    user["Arn"],
                    user["UserName"],
                    f"Access key {n} was last used {idle:.0f} days ago (limit {limit}).",
                    key=f"access_key_{n}",
                )


@check(
    "KEY_NEVER_USED",
    title="Active access key never used",
    severity=Severity.LOW,
    cis=("1.11",),
    risk='A key made "just in case" (often at user creation) is a credential nobody watches.',
    console="IAM → Users → {name} → Security credentials → Access keys → Delete the unused key.",
    cli=LIST_KEYS + " && aws iam delete-access-key --user-name {name} --access-key-id KEY_ID",
    needs=("credential_report",),
)
def key_never_used(ctx: CheckContext) -> Iterator[Hit]:
    grace = ctx.settings.key_never_used_grace_days
    for user, row in ctx.users():
        for n in _active_keys(row):
            if ctx.days_since(row.get(f"access_key_{n}_last_used_date")) is not None:
                continue
            age = ctx.days_since(row.get(f"access_key_{n}_last_rotated"))
            if age is None or age > grace:
                yield Hit(
                    user["Arn"],
                    user["UserName"],
                    f"Access key {n} is active and has never been used (created {_ago(age)}).",
                    key=f"access_key_{n}",
                )


@check(
    "PASSWORD_UNUSED",
    title="Console password unused",
    severity=Severity.MEDIUM,
    cis=("1.12",),
    risk="A password nobody uses is a login nobody would notice being abused.",
    console="IAM → Users → {name} → Security credentials → Console sign-in → Disable console access.",
    cli="aws iam delete-login-profile --user-name {name}",
    needs=("credential_report",),
)
def password_unused(ctx: CheckContext) -> Iterator[Hit]:
    limit = ctx.settings.password_unused_days
    for user, row in ctx.users():
        if not flag(row, "password_enabled"):
            continue
        idle = ctx.days_since(row.get("password_last_used"))
        if idle is not None:
            if idle > limit:
                yield Hit(
                    user["Arn"], user["UserName"], f"Password last used {idle:.0f} days ago (limit {limit})."
                )
            continue
        since = ctx.days_since(row.get("password_last_changed"))
        if since is None:
            since = ctx.days_since(row.get("user_creation_time"))
        if since is not None and since > limit:
            yield Hit(user["Arn"], user["UserName"], f"Password set {since:.0f} days ago and never used.")


@check(
    "MULTIPLE_ACTIVE_KEYS",
    title="User with two active access keys",
    severity=Severity.MEDIUM,
    cis=("1.13",),
    risk="Two live keys double the exposure and usually mean a rotation that was never finished.",
    console="IAM → Users → {name} → Security credentials → deactivate the key that is not in use.",
    cli=LIST_KEYS
    + " && aws iam update-access-key --user-name {name} --access-key-id OLD_KEY_ID --status Inactive",
    needs=("credential_report",),
)
def multiple_active_keys(ctx: CheckContext) -> Iterator[Hit]:
    for user, row in ctx.users():
        if len(_active_keys(row)) == 2:
            yield Hit(user["Arn"], user["UserName"], "Both access keys are active.")


@check(
    "PASSWORD_AND_KEYS",
    title="Console user who also holds access keys",
    severity=Severity.LOW,
    risk="One person with both a password and long-lived keys mixes human and machine access; "
    "keys on a laptop outlive the session that needed them.",
    console="Give the person console (or SSO) access only and move programmatic use to a role; "
    "then delete the user's access keys.",
    cli=LIST_KEYS + " && aws iam delete-access-key --user-name {name} --access-key-id KEY_ID",
    needs=("credential_report",),
)
def password_and_keys(ctx: CheckContext) -> Iterator[Hit]:
    for user, row in ctx.users():
        keys = _active_keys(row)
        if flag(row, "password_enabled") and keys:
            which = " and ".join(str(n) for n in keys)
            yield Hit(user["Arn"], user["UserName"], f"Has a console password and active access key {which}.")
