"""Root user checks, from the credential report's ``<root_account>`` row.

When the root user has no password and no keys (root credentials centrally managed through AWS
Organizations), the root-credential checks do not fire. Whether root has a password is read from
``GetAccountSummary``'s ``AccountPasswordPresent``; the report's ``password_enabled`` column always
says ``not_supported`` for root. When neither tells us, we infer it from a password use or an MFA
device, and otherwise say "could not evaluate" rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.checks.catalog import CheckContext, Hit, check
from bot.findings import Severity

ROOT_NAME = "<root_account>"


def root_arn(ctx: CheckContext) -> str:
    row = ctx.root_row
    return (row or {}).get("arn") or f"arn:aws:iam::{ctx.account_id}:root"


def _flag(row: dict[str, str], column: str) -> bool:
    return (row.get(column) or "").strip().lower() == "true"


def root_has_keys(row: dict[str, str]) -> bool:
    return _flag(row, "access_key_1_active") or _flag(row, "access_key_2_active")


def root_has_password(ctx: CheckContext) -> bool | None:
    """True/False when known; None when nothing we read can tell."""
    summary = ctx.inventory.get("account_summary") or {}
    if "AccountPasswordPresent" in summary:
        return bool(summary["AccountPasswordPresent"])
    row = ctx.root_row or {}
    enabled = (row.get("password_enabled") or "").strip().lower()
    if enabled in ("true", "false"):
        return enabled == "true"
    if ctx.days_since(row.get("password_last_used")) is not None or _flag(row, "mfa_active"):
        return True
    return None


def _root(ctx: CheckContext) -> Hit | dict[str, str]:
    """The root row, or an "unknown" hit when the report has none (real reports always do)."""
    if ctx.root_row is None:
        return ctx.unknown("the credential report has no <root_account> row", principal_name=ROOT_NAME)
    return ctx.root_row


@check(
    "ROOT_MFA_DISABLED",
    title="The root user has no MFA",
    severity=Severity.CRITICAL,
    cis=("1.5",),
    risk="A phished or reused root password gives unlimited, unrestrictable control of the account.",
    console="Sign in as the root user → account menu → Security credentials → Multi-factor "
    "authentication → Assign MFA device (prefer a hardware key).",
    cli="Root MFA can only be assigned in the console, signed in as the root user.",
    needs=("credential_report",),
)
def root_mfa_disabled(ctx: CheckContext) -> Iterator[Hit]:
    row = _root(ctx)
    if isinstance(row, Hit):
        yield row
        return
    if _flag(row, "mfa_active"):
        return
    has_password = root_has_password(ctx)
    if has_password is False and not root_has_keys(row):
        return  # centrally managed root: no credentials to protect
    if has_password is None and not root_has_keys(row):
        yield ctx.unknown(
            "the root user has no MFA, and neither the credential report nor the account summary "
            "says whether it has a password",
            principal_arn=root_arn(ctx),
            principal_name=ROOT_NAME,
        )
        return
    yield Hit(root_arn(ctx), ROOT_NAME, "The root user can sign in without a second factor.")


@check(
    "ROOT_ACCESS_KEYS",
    title="The root user has access keys",
    severity=Severity.CRITICAL,
    cis=("1.4",),
    risk="A leaked root key is the whole account, and no policy can limit it.",
    console="Sign in as the root user → Security credentials → Access keys → Deactivate, then Delete.",
    cli="aws iam delete-access-key --access-key-id ROOT_KEY_ID  (with the root user's own credentials)",
    needs=("credential_report",),
)
def root_access_keys(ctx: CheckContext) -> Iterator[Hit]:
    row = _root(ctx)
    if isinstance(row, Hit):
        yield row
        return
    for n in (1, 2):
        if _flag(row, f"access_key_{n}_active"):
            used = row.get(f"access_key_{n}_last_used_date")
            days = ctx.days_since(used)
            when = f"last used {days:.0f} days ago" if days is not None else "never used"
            yield Hit(
                root_arn(ctx), ROOT_NAME, f"Root access key {n} is active ({when}).", key=f"access_key_{n}"
            )


@check(
    "ROOT_RECENT_USE",
    title="The root user was used recently",
    severity=Severity.HIGH,
    cis=("1.7",),
    risk="Everyday use of root means its credentials are exposed often and actions cannot be attributed.",
    console="Create administrators in IAM Identity Center or IAM, use them for daily work, and "
    "keep the root credentials locked away; review CloudTrail for what root did.",
    cli="aws cloudtrail lookup-events --lookup-attributes AttributeKey=Username,AttributeValue=root",
    needs=("credential_report",),
)
def root_recent_use(ctx: CheckContext) -> Iterator[Hit]:
    row = _root(ctx)
    if isinstance(row, Hit):
        yield row
        return
    window = ctx.settings.root_recent_use_days
    uses = {
        "password": row.get("password_last_used"),
        "access key 1": row.get("access_key_1_last_used_date"),
        "access key 2": row.get("access_key_2_last_used_date"),
    }
    recent = {
        what: days
        for what, when in uses.items()
        if (days := ctx.days_since(when)) is not None and days <= window
    }
    if recent:
        what, days = min(recent.items(), key=lambda item: item[1])
        yield Hit(
            root_arn(ctx),
            ROOT_NAME,
            f"Root signed in with its {what} {days:.0f} days ago (window {window} days).",
            fields={"days": round(days)},
        )


@check(
    "ROOT_VIRTUAL_MFA",
    title="The root user's MFA is a virtual device, not hardware",
    severity=Severity.MEDIUM,
    cis=("1.6",),
    risk="A virtual MFA lives on a phone that can be lost, cloned or phished more easily than a hardware key.",
    console="Sign in as the root user → Security credentials → MFA → assign a hardware (FIDO) key, "
    "then remove the virtual device.",
    cli="aws iam list-virtual-mfa-devices --assignment-status Assigned",
    needs=("credential_report", "virtual_mfa_devices"),
)
def root_virtual_mfa(ctx: CheckContext) -> Iterator[Hit]:
    row = _root(ctx)
    if isinstance(row, Hit):
        yield row
        return
    if not _flag(row, "mfa_active"):
        return  # no MFA at all is ROOT_MFA_DISABLED
    arn = root_arn(ctx)
    for device in ctx.inventory.get("virtual_mfa_devices") or []:
        serial = device.get("SerialNumber", "")
        if (device.get("User") or {}).get("Arn") == arn or serial.endswith(":mfa/root-account-mfa-device"):
            yield Hit(arn, ROOT_NAME, f"Root MFA is the virtual device {serial}.", key=serial)


@check(
    "ROOT_SIGNING_CERTS",
    title="The root user has active X.509 signing certificates",
    severity=Severity.MEDIUM,
    risk="A root signing certificate is a long-lived root credential outside MFA's protection.",
    console="Sign in as the root user → Security credentials → X.509 certificate → Delete.",
    cli="aws iam delete-signing-certificate --certificate-id CERT_ID  (with root credentials)",
    needs=("credential_report",),
)
def root_signing_certs(ctx: CheckContext) -> Iterator[Hit]:
    row = _root(ctx)
    if isinstance(row, Hit):
        yield row
        return
    for n in (1, 2):
        if _flag(row, f"cert_{n}_active"):
            yield Hit(root_arn(ctx), ROOT_NAME, f"Root signing certificate {n} is active.", key=f"cert_{n}")
