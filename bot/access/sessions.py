"""What a session is made of: names STS accepts, tags, the session policy, its duration, and which
AWS credentials reach the role's account."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from bot.access.model import (
    CHAINED_SESSION_SECONDS,
    DEFAULT_MAX_SESSION_SECONDS,
    MIN_SESSION_SECONDS,
    TAG_PREFIX,
    AccessError,
    AccessRequest,
)
from bot.aws import AwsFactory, error_code
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")


def role_session_name(requester: str, request_id: str) -> str:
    """``iamwarden-<requester>-<request id>``: only characters STS accepts, at most 64."""
    requester = _SESSION_NAME_BAD.sub("-", requester)[:30]
    request_id = _SESSION_NAME_BAD.sub("-", request_id)[:20]
    return f"iamwarden-{requester}-{request_id}"[:64]


def source_identity(requester: str) -> str:
    """The requester, as STS accepts a SourceIdentity (2–64 of ``[\\w+=,.@-]``)."""
    value = _SESSION_NAME_BAD.sub("-", requester)[:64]
    return value if len(value) >= 2 else f"{value}--"[:2]


_TAG_BAD = re.compile(r"[^\w .:/=+\-@]", re.UNICODE)


def session_tags(request: AccessRequest) -> list[dict[str, str]]:
    approvers = (
        " ".join(request.approvers)
        if request.approvers
        else ("break-glass" if request.is_break_glass else "none")
    )
    return [
        {"Key": TAG_PREFIX + "request-id", "Value": request.id},
        {"Key": TAG_PREFIX + "requester", "Value": _TAG_BAD.sub("-", request.requester)[:256]},
        {"Key": TAG_PREFIX + "approvers", "Value": _TAG_BAD.sub("-", approvers)[:256]},
    ]


def session_policy(window_end: datetime, *, allow_role_chaining: bool = False) -> dict:
    """Keeps the role's permissions but denies everything after the window's end, so even a console
    session minted from these credentials cannot outlive the approval; and, unless the role allows
    it, denies assuming further roles: a chained session carries neither this policy nor anything a
    revocation on this role could match except SourceIdentity, so it would escape both."""
    statements: list[dict] = [
        {"Sid": "WithinTheRole", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Sid": "NothingAfterTheApprovedWindow",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso(window_end)}},
        },
    ]
    if not allow_role_chaining:
        statements.append(
            {"Sid": "NoRoleChaining", "Effect": "Deny", "Action": "sts:AssumeRole*", "Resource": "*"}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _caller_arn(services: Services) -> str:
    cache = services.extras.setdefault("access.caller", {})
    key = id(services.aws)
    if key not in cache:
        cache[key] = services.aws.client("sts").get_caller_identity()["Arn"]
    return cache[key]


def bot_uses_role_credentials(services: Services) -> bool:
    """AWS caps sessions assumed from role credentials (role chaining) at one hour."""
    try:
        return ":assumed-role/" in _caller_arn(services)
    except Exception as exc:  # unknown: assume the stricter cap rather than fail the grant
        log.warning("could not tell what the bot's own credentials are (%s); capping at 1 h", error_code(exc))
        return True


def _aws_for_account(services: Services, account_id: str) -> AwsFactory:
    """The bot's own credentials, or the configured reader role for another account."""
    account = next((a for a in services.config.accounts if a.id == account_id), None)
    if account is not None and account.role_arn:
        return services.aws.for_role(account.role_arn, external_id=account.external_id)
    return services.aws


def _role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def role_max_session(services: Services, request: AccessRequest) -> int:
    """The role's MaxSessionDuration (GetRole); AWS's default when it cannot be read."""
    try:
        iam = _aws_for_account(services, request.account_id).client("iam")
        return int(iam.get_role(RoleName=_role_name(request.role_arn))["Role"]["MaxSessionDuration"])
    except Exception as exc:
        log.warning(
            "GetRole %s failed (%s); assuming the default maximum session of 1 h",
            request.role_arn,
            error_code(exc),
        )
        return DEFAULT_MAX_SESSION_SECONDS


def session_duration(services: Services, request: AccessRequest, now: datetime) -> int:
    """The smaller of: time left in the window, the role's MaxSessionDuration, 1 h when chaining.

    Never below AWS's 15-minute minimum: the session policy still ends access at the window's end.
    """
    assert request.window_end is not None
    left = int((request.window_end - now).total_seconds())
    if left <= 0:
        raise AccessError("The approved window is over; request access again.")
    limits = [left, role_max_session(services, request)]
    if bot_uses_role_credentials(services):
        limits.append(CHAINED_SESSION_SECONDS)
    return max(MIN_SESSION_SECONDS, min(limits))
