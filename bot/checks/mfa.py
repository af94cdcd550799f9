"""MFA checks for IAM users (the root user's MFA is in ``root``)."""

from __future__ import annotations

from collections.abc import Iterator

from bot.checks.catalog import CheckContext, Hit, check
from bot.findings import Severity


def flag(row: dict[str, str] | None, column: str) -> bool:
    return bool(row) and (row.get(column) or "").strip().lower() == "true"


@check(
    "USER_CONSOLE_NO_MFA",
    title="Console user without MFA",
    severity=Severity.HIGH,
    cis=("1.10",),
    risk="A phished or reused password alone opens the console as this user.",
    console="IAM → Users → {name} → Security credentials → Multi-factor authentication → Assign MFA device.",
    cli="aws iam create-virtual-mfa-device --virtual-mfa-device-name {name} --outfile qr.png "
    "--bootstrap-method QRCodePNG && aws iam enable-mfa-device --user-name {name} --serial-number "
    "arn:aws:iam::{account}:mfa/{name} --authentication-code1 CODE1 --authentication-code2 CODE2",
    needs=("credential_report",),
)
def user_console_no_mfa(ctx: CheckContext) -> Iterator[Hit]:
    for user, row in ctx.users():
        if flag(row, "password_enabled") and not flag(row, "mfa_active"):
            yield Hit(user["Arn"], user["UserName"], "Has a console password and no MFA device.")


@check(
    "ADMIN_NO_MFA",
    title="Administrator without MFA",
    severity=Severity.CRITICAL,
    cis=("1.10",),
    risk="Whoever gets this user's password or access key controls the whole account.",
    console="IAM → Users → {name} → Security credentials → Assign MFA device; until then, remove "
    "the administrator policy (directly, in its groups, or inline).",
    cli="aws iam enable-mfa-device --user-name {name} --serial-number SERIAL "
    "--authentication-code1 CODE1 --authentication-code2 CODE2",
    needs=("credential_report",),
)
def admin_no_mfa(ctx: CheckContext) -> Iterator[Hit]:
    for user, row in ctx.users():
        if flag(row, "mfa_active"):
            continue
        admin = ctx.full_admin(user["Arn"])
        if admin is None:
            _, problems = ctx.effective(user["Arn"])
            if problems:
                yield ctx.unknown(
                    "; ".join(problems), principal_arn=user["Arn"], principal_name=user["UserName"]
                )
            continue
        via = "; ".join(s.describe() for s in admin.deciding)
        cond = " (under conditions we could not evaluate)" if admin.conditional else ""
        if row is None:
            yield ctx.unknown(
                f"administrator via {via}, but the credential report does not list the user yet",
                principal_arn=user["Arn"],
                principal_name=user["UserName"],
            )
            continue
        yield Hit(
            user["Arn"], user["UserName"], f"Effectively administrator{cond} via {via}, with no MFA device."
        )
