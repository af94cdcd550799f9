"""Revocation: an inline Deny on the role for the member's sessions issued before a cutoff."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.access.grant import _aws_for_account, _role_name, source_identity
from bot.access.model import (
    INLINE_POLICY_LIMIT,
    REVOCATION_POLICY_NAME,
    AccessError,
    AccessRequest,
    State,
    audit_request,
    get_request,
    grants_of,
    resolve_parent,
)
from bot.access.transitions import close_extensions
from bot.aws import describe_aws_error, error_code
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

# -- revocation -----------------------------------------------------------------------------------


@dataclass
class Revocation:
    request: AccessRequest
    policy_written: bool
    problem: str | None
    credentials_expire_at: datetime | None


_REVOKE_SID = re.compile(r"^Revoke([A-Za-z0-9]+)Until(\d+)$")


def _revocation_statement(requester: str, issued_before: datetime, until: datetime, tag: str) -> dict:
    return {
        "Sid": f"Revoke{re.sub(r'[^A-Za-z0-9]', '', tag)}Until{int(until.timestamp())}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": source_identity(requester)},
            "DateLessThan": {"aws:TokenIssueTime": iso(issued_before)},
        },
    }


def merge_revocations(existing: dict | None, statement: dict, now: datetime) -> dict:
    """The role's revocation policy with ``statement`` added and statements that can no longer
    matter (every session they target has expired) pruned, as are older ones for the same identity."""
    identity = statement["Condition"]["StringEquals"]["aws:SourceIdentity"]
    new_until = int(_REVOKE_SID.match(statement["Sid"]).group(2))  # type: ignore[union-attr]
    kept: list[dict] = []
    for old in (existing or {}).get("Statement", []):
        match = _REVOKE_SID.match(str(old.get("Sid", "")))
        if match is None:
            kept.append(old)  # not ours: leave it
            continue
        until = int(match.group(2))
        if until <= int(now.timestamp()):
            continue
        old_identity = (old.get("Condition") or {}).get("StringEquals", {}).get("aws:SourceIdentity")
        if old_identity == identity:
            # The newer statement denies everything the old one did (issued before an earlier time).
            new_until = max(new_until, until)
            continue
        kept.append(old)
    sid = _REVOKE_SID.match(statement["Sid"])
    statement = {**statement, "Sid": f"Revoke{sid.group(1)}Until{new_until}"}  # type: ignore[union-attr]
    return {"Version": "2012-10-17", "Statement": [*kept, statement]}


def _write_revocation(services: Services, request: AccessRequest, now: datetime, until: datetime) -> None:
    iam = _aws_for_account(services, request.account_id).client("iam")
    role_name = _role_name(request.role_arn)
    try:
        current = iam.get_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME)["PolicyDocument"]
        if isinstance(current, str):
            current = json.loads(current)
    except Exception as exc:
        if error_code(exc) not in ("NoSuchEntity", "NoSuchEntityException"):
            raise
        current = None
    document = merge_revocations(
        current, _revocation_statement(request.requester, now, until, request.id), now
    )
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > INLINE_POLICY_LIMIT:
        raise AccessError("the role's inline policy space is full")
    iam.put_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME, PolicyDocument=text)


def revoke(services: Services, request_id: str, by: str, *, done: bool = False) -> Revocation | None:
    """granted → revoked, then deny the requester's live sessions on the role.

    Returns None when the request was not granted (already ended, revoked, …).
    """
    now = services.clock.now()
    request_id = resolve_parent(services, request_id)
    changed = services.store.execute(
        "UPDATE access_requests SET state = 'revoked', ended_at = ?, ended_by = ? WHERE id = ? AND state = 'granted'",
        [iso(now), by, request_id],
    ).rowcount
    if changed != 1:
        return None
    request = get_request(services, request_id)
    assert request is not None
    close_extensions(services, request_id, State.REVOKED)
    grants = grants_of(services, request_id)
    latest = max((g.expires_at for g in grants), default=None)
    until = max(latest or now, now)
    problem = None
    try:
        _write_revocation(services, request, now, until + timedelta(minutes=5))
        written = True
    except Exception as exc:
        written = False
        problem = str(exc) if isinstance(exc, AccessError) else describe_aws_error(exc, "iam:PutRolePolicy")
        log.warning("could not write the revocation for %s: %s", request_id, problem)
    audit_request(
        services,
        request,
        "revoked",
        actor=by,
        at=now,
        reason="requester is done" if done else "revoked",
        policy_written=written,
        problem=problem,
    )
    live_until = min(latest, request.window_end) if latest and request.window_end else latest
    return Revocation(
        request=request, policy_written=written, problem=problem, credentials_expire_at=live_until
    )
