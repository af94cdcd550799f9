"""Disable access: cut an IAM user's long-lived credentials off, and say exactly what changed.

Deactivates every active access key (keys stay, so the change can be undone and investigated) and
deletes the console login profile. Needs the opt-in permissions ``iam:ListAccessKeys``,
``iam:UpdateAccessKey`` and ``iam:DeleteLoginProfile`` (``policies/offboarding.json``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFactory, describe_aws_error, error_code, is_access_denied
from bot.identity.offboarding import holdings, open_offboarding
from bot.services import Services

log = logging.getLogger(__name__)


class OffboardingError(Exception):
    """Disable access could not be done; the message is one true sentence for a person."""

    def __init__(self, message: str, *, result: DisableResult | None = None):
        super().__init__(message)
        self.result = result  # what had already changed before the failure, if anything


@dataclass
class DisableResult:
    account_id: str
    user_name: str
    keys_deactivated: list[str] = field(default_factory=list)
    keys_already_inactive: list[str] = field(default_factory=list)
    login_profile_deleted: bool = False
    had_login_profile: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.keys_deactivated or self.login_profile_deleted)

    def describe(self) -> str:
        """Exactly what changed, in one or two sentences."""
        parts = []
        if self.keys_deactivated:
            keys = ", ".join(self.keys_deactivated)
            parts.append(f"deactivated access key{'s' if len(self.keys_deactivated) > 1 else ''} {keys}")
        if self.login_profile_deleted:
            parts.append("deleted the console password (login profile)")
        if not parts:
            return f"Nothing to change: IAM user {self.user_name} had no active access key and no console password."
        text = f"IAM user {self.user_name} in {self.account_id}: " + " and ".join(parts) + "."
        if self.keys_already_inactive:
            text += f" Already inactive: {', '.join(self.keys_already_inactive)}."
        if not self.had_login_profile:
            text += " There was no console password."
        return text


def factory_for_account(services: Services, account_id: str) -> AwsFactory:
    """The AwsFactory that acts in ``account_id``: the configured role there, else the bot's own."""
    for account in services.config.accounts:
        if account.id == account_id and account.role_arn:
            return services.aws.for_role(
                account.role_arn, session_name="iamwarden-offboarding", external_id=account.external_id
            )
    return services.aws


def disable_access(
    aws: AwsFactory,
    store,  # noqa: ANN001 - bot.store.Store
    *,
    account_id: str,
    user_name: str,
    actor: str,
    at: datetime,
    reason: str = "",
) -> DisableResult:
    """Deactivate ``user_name``'s access keys and delete its login profile; audit what changed.

    Raises OffboardingError with a clear sentence when AWS refuses (AccessDenied names the missing
    permission) or the user does not exist; the audit log records partial changes too.
    """
    iam = aws.client("iam")
    result = DisableResult(account_id=account_id, user_name=user_name)
    step = "iam:ListAccessKeys"
    try:
        keys = []
        for page in iam.get_paginator("list_access_keys").paginate(UserName=user_name):
            keys += page["AccessKeyMetadata"]
        for key in keys:
            if key["Status"] == "Active":
                step = "iam:UpdateAccessKey"
                iam.update_access_key(UserName=user_name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
                result.keys_deactivated.append(key["AccessKeyId"])
            else:
                result.keys_already_inactive.append(key["AccessKeyId"])
        step = "iam:DeleteLoginProfile"
        try:
            iam.delete_login_profile(UserName=user_name)
            result.had_login_profile = True
            result.login_profile_deleted = True
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        if code == "NoSuchEntity" and step == "iam:ListAccessKeys":
            message = f"IAM user {user_name} does not exist in {account_id} (any more); nothing was changed."
        elif is_access_denied(exc):
            message = (
                f"AWS denied {step} ({code}): the bot's IAM role lacks the opt-in offboarding permissions"
                " (iam:ListAccessKeys, iam:UpdateAccessKey, iam:DeleteLoginProfile: policies/offboarding.json)."
            )
        else:
            message = describe_aws_error(exc, step)
        if result.changed:
            message += " Before that: " + result.describe()
        _audit(store, result, actor=actor, at=at, reason=reason, error=message)
        raise OffboardingError(message, result=result) from None
    _audit(store, result, actor=actor, at=at, reason=reason)
    return result


def _audit(
    store, result: DisableResult, *, actor: str, at: datetime, reason: str, error: str | None = None
) -> None:  # noqa: ANN001
    store.audit(
        "offboarding.disable_access" if error is None else "offboarding.disable_access_failed",
        actor=actor,
        at=at,
        account_id=result.account_id,
        reason=reason or None,
        user_name=result.user_name,
        keys_deactivated=result.keys_deactivated,
        keys_already_inactive=result.keys_already_inactive,
        login_profile_deleted=result.login_profile_deleted,
        error=error,
    )


@dataclass
class DisableOutcome:
    """What **Disable access** on an offboarding alert came to. ``status``: ``not_stored`` (no such
    offboarding), ``not_linked`` (the IAM user is not, or no longer, one the member holds),
    ``disabled`` (``result`` says what changed), ``refused`` (``error``: AWS said no, in a sentence)
    or ``failed`` (``error``: the kind of failure; nothing is confirmed changed)."""

    status: str
    account_id: str
    user_name: str
    member: str | None = None
    result: DisableResult | None = None
    error: str | None = None


def disable_for_offboarding(
    services: Services, offboarding_id: int | None, account_id: str, user_name: str, *, actor: str
) -> DisableOutcome:
    """Disable access of an IAM user the stored offboarding's member still holds: authorized from
    stored state (the offboarding row and the latest scan), never from the button's value alone.
    Whether ``actor`` may ask (the security team) is decided by the caller."""
    row = open_offboarding(services, offboarding_id) if offboarding_id is not None else None
    if row is None:
        return DisableOutcome("not_stored", account_id, user_name)
    member = row["user_id"]
    linked = {(h.account_id, h.user_name) for h in holdings(services, member)[0]}
    if (account_id, user_name) not in linked:
        return DisableOutcome("not_linked", account_id, user_name, member=member)
    try:
        result = disable_access(
            factory_for_account(services, account_id),
            services.store,
            account_id=account_id,
            user_name=user_name,
            actor=actor,
            at=services.clock.now(),
            reason=f"offboarding {row['id']} of {member}",
        )
    except OffboardingError as exc:
        return DisableOutcome("refused", account_id, user_name, member=member, error=str(exc))
    except Exception as exc:  # AWS unreachable, role not assumable…
        log.exception("disable access for %s failed", user_name)
        return DisableOutcome("failed", account_id, user_name, member=member, error=type(exc).__name__)
    return DisableOutcome("disabled", account_id, user_name, member=member, result=result)
