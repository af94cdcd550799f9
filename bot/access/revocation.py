"""Revocation: an inline Deny on the role for the member's sessions issued before a cutoff.

The statements of every role are kept in SQLite (``access_revocations``) and added inside one
transaction, so concurrent revocations from any number of threads or bot instances never lose one.
The IAM policy is written from that state by one writer per role at a time (a lease on the role's
``access_revocation_docs`` row); the writer loops until AWS holds the latest version, and a writer
that failed leaves the version unwritten for the sweep (``sync_pending_revocations``) to retry.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from bot.access.leases import LEASE_FOR, LeaseBusy, holder_id, request_lease
from bot.access.model import (
    INLINE_POLICY_LIMIT,
    REVOCATION_POLICY_NAME,
    AccessError,
    AccessRequest,
    Grant,
    State,
    audit_request,
    get_request,
    grants_of,
    resolve_parent,
)
from bot.access.sessions import _aws_for_account, _role_name, source_identity
from bot.access.transitions import close_extensions
from bot.aws import describe_aws_error, error_code
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

# A revoked statement outlives the sessions it targets by this much (clock skew between us and AWS).
STATEMENT_GRACE = timedelta(minutes=5)
WRITER_POLL_SECONDS = 0.02


@dataclass
class Revocation:
    request: AccessRequest
    policy_written: bool
    problem: str | None
    credentials_expire_at: datetime | None


_REVOKE_SID = re.compile(r"^Revoke([A-Za-z0-9]+)Until(\d+)$")


def next_second(moment: datetime) -> datetime:
    """The whole second after ``moment``. Clocks and stored times are truncated to the second, so a
    session issued within the same second as ``moment`` is issued before this, never after."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def revocation_cutoff(now: datetime, grants: list[Grant]) -> datetime:
    """Deny sessions issued before this: after now, and after every session recorded for the request."""
    return max([next_second(now), *(next_second(g.issued_at) for g in grants)])


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
    matter (every session they target has expired) pruned, as are older ones for the same identity
    (the later cutoff denies everything the earlier one did)."""
    identity = statement["Condition"]["StringEquals"]["aws:SourceIdentity"]
    new_until = int(_REVOKE_SID.match(statement["Sid"]).group(2))  # type: ignore[union-attr]
    new_before = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    kept: list[dict] = []
    for old in (existing or {}).get("Statement", []):
        match = _REVOKE_SID.match(str(old.get("Sid", "")))
        if match is None:
            kept.append(old)  # not ours: leave it
            continue
        until = int(match.group(2))
        if until <= int(now.timestamp()):
            continue
        condition = old.get("Condition") or {}
        old_identity = condition.get("StringEquals", {}).get("aws:SourceIdentity")
        if old_identity == identity:
            new_until = max(new_until, until)
            old_before = condition.get("DateLessThan", {}).get("aws:TokenIssueTime", new_before)
            new_before = max(new_before, old_before)  # ISO 8601 UTC strings order like the times
            continue
        kept.append(old)
    sid = _REVOKE_SID.match(statement["Sid"])
    condition = {**statement["Condition"], "DateLessThan": {"aws:TokenIssueTime": new_before}}
    statement = {**statement, "Sid": f"Revoke{sid.group(1)}Until{new_until}", "Condition": condition}  # type: ignore[union-attr]
    return {"Version": "2012-10-17", "Statement": [*kept, statement]}


# -- the state in SQLite -----------------------------------------------------------------------------


def record_revocation(
    db: sqlite_utils.Database,
    request: AccessRequest,
    *,
    issued_before: datetime,
    until: datetime,
    now: datetime,
) -> int:
    """Add one statement to the role's revocation state and bump its version (call inside a
    transaction). Returns the version that holds it."""
    db.execute(
        "INSERT INTO access_revocations (role_arn, account_id, identity, request_id, issued_before, until, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            request.role_arn,
            request.account_id,
            source_identity(request.requester),
            request.id,
            iso(issued_before),
            iso(until),
            iso(now),
        ],
    )
    db.execute(
        "INSERT INTO access_revocation_docs (role_arn, account_id, version, written_version) VALUES (?, ?, 1, 0) "
        "ON CONFLICT(role_arn) DO UPDATE SET version = version + 1",
        [request.role_arn, request.account_id],
    )
    return db.execute(
        "SELECT version FROM access_revocation_docs WHERE role_arn = ?", [request.role_arn]
    ).fetchone()[0]


def revocation_rows(services: Services, role_arn: str) -> list[dict]:
    cursor = services.store.execute(
        "SELECT identity, request_id, issued_before, until FROM access_revocations WHERE role_arn = ? ORDER BY id",
        [role_arn],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def document_from_state(rows: list[dict], foreign: list[dict], now: datetime) -> dict:
    """The policy AWS should hold: statements not ours as they are, ours from SQLite.

    Per identity the latest cutoff wins (it denies everything an earlier one did), and identities
    that share a cutoff share one statement (``StringEquals`` with a list matches any of them), so a
    burst of revocations within one second costs one statement. Merging is exact: every identity keeps
    its own cutoff; only the statement's lifetime (the Sid's until) becomes the group's latest, and a
    deny kept longer than the sessions it targets is harmless. Rows whose sessions have all expired
    are pruned.
    """
    cutoffs: dict[str, tuple[str, datetime]] = {}  # identity → (issued_before, until)
    for row in rows:
        until = datetime.fromisoformat(row["until"])
        if until <= now:
            continue
        before = iso(datetime.fromisoformat(row["issued_before"]))
        if row["identity"] in cutoffs:
            old_before, old_until = cutoffs[row["identity"]]
            before, until = max(before, old_before), max(until, old_until)  # ISO UTC strings order like times
        cutoffs[row["identity"]] = (before, until)
    groups: dict[str, tuple[list[str], datetime]] = {}  # issued_before → (identities, until)
    for identity, (before, until) in cutoffs.items():
        identities, group_until = groups.get(before, ([], until))
        groups[before] = ([*identities, identity], max(group_until, until))
    statements = [
        _group_statement(identities, before, until) for before, (identities, until) in sorted(groups.items())
    ]
    return {"Version": "2012-10-17", "Statement": [*foreign, *statements]}


def _group_statement(identities: list[str], issued_before: str, until: datetime) -> dict:
    cutoff = int(datetime.fromisoformat(issued_before).timestamp())
    return {
        "Sid": f"Revoke{cutoff}Until{int(until.timestamp())}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": identities[0] if len(identities) == 1 else identities},
            "DateLessThan": {"aws:TokenIssueTime": issued_before},
        },
    }


def denied_identities(document: dict | None) -> dict[str, str]:
    """SourceIdentity → the ``aws:TokenIssueTime`` before which ``document`` denies its sessions
    (the latest, if several statements name it). Reads both shapes: one identity or a list."""
    denied: dict[str, str] = {}
    for statement in (document or {}).get("Statement", []):
        condition = statement.get("Condition") or {}
        identities = condition.get("StringEquals", {}).get("aws:SourceIdentity")
        before = condition.get("DateLessThan", {}).get("aws:TokenIssueTime")
        if statement.get("Effect") != "Deny" or identities is None or before is None:
            continue
        for identity in [identities] if isinstance(identities, str) else identities:
            denied[identity] = max(before, denied.get(identity, before))
    return denied


# -- writing AWS from the state ------------------------------------------------------------------------


def _doc_row(services: Services, role_arn: str) -> tuple[int, int, str | None, str | None, str | None]:
    row = services.store.execute(
        "SELECT version, written_version, writer, writer_until, last_error FROM access_revocation_docs "
        "WHERE role_arn = ?",
        [role_arn],
    ).fetchone()
    return tuple(row) if row else (0, 0, None, None, None)  # type: ignore[return-value]


def _take_writer(services: Services, role_arn: str, holder: str) -> bool:
    now = services.clock.now()
    return (
        services.store.execute(
            "UPDATE access_revocation_docs SET writer = ?, writer_until = ? WHERE role_arn = ? "
            "AND written_version < version AND (writer IS NULL OR writer_until <= ?)",
            [holder, iso(now + LEASE_FOR), role_arn, iso(now)],
        ).rowcount
        == 1
    )


def _write_policy(services: Services, role_arn: str, account_id: str) -> int:
    """Write the role's policy from SQLite; returns the version written. Raises on AWS errors."""
    iam = _aws_for_account(services, account_id).client("iam")
    role_name = _role_name(role_arn)
    try:
        current = iam.get_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME)["PolicyDocument"]
        if isinstance(current, str):
            current = json.loads(current)
    except Exception as exc:
        if error_code(exc) not in ("NoSuchEntity", "NoSuchEntityException"):
            raise
        current = None
    foreign = [
        s for s in (current or {}).get("Statement", []) if not _REVOKE_SID.match(str(s.get("Sid", "")))
    ]
    now = services.clock.now()
    with services.store.transaction() as db:
        version = db.execute(
            "SELECT version FROM access_revocation_docs WHERE role_arn = ?", [role_arn]
        ).fetchone()[0]
        # Statements whose sessions have all expired can no longer matter.
        db.execute("DELETE FROM access_revocations WHERE role_arn = ? AND until <= ?", [role_arn, iso(now)])
    document = document_from_state(revocation_rows(services, role_arn), foreign, now)
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > INLINE_POLICY_LIMIT:
        live = len(denied_identities(document))
        log.error("the revocation policy of %s is full: %d identities, %d chars", role_arn, live, len(text))
        raise AccessError(
            f"the role's inline policy space is full ({live} members with live revocations on it); "
            "the deny fits once older revocations expire"
        )
    if document["Statement"]:
        iam.put_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME, PolicyDocument=text)
    elif current is not None:
        iam.delete_role_policy(RoleName=role_name, PolicyName=REVOCATION_POLICY_NAME)
    return version


def sync_role(
    services: Services, role_arn: str, account_id: str, *, target: int, wait_seconds: float = 60.0
) -> tuple[bool, str | None]:
    """Make AWS hold at least version ``target`` of the role's revocations.

    Returns (written, problem). One writer per role at a time; a writer keeps writing while new
    statements arrive, and hands over only when AWS holds the latest version, so a statement added
    while another instance writes is never left behind.
    """
    holder = holder_id()
    deadline = time.monotonic() + wait_seconds
    while True:
        version, written, _, _, last_error = _doc_row(services, role_arn)
        if written >= target:
            return True, None
        if _take_writer(services, role_arn, holder):
            break
        if time.monotonic() >= deadline:
            return False, last_error or "another writer is still updating the role's policy"
        time.sleep(WRITER_POLL_SECONDS)
    while True:
        try:
            done_version = _write_policy(services, role_arn, account_id)
        except Exception as exc:
            problem = (
                str(exc) if isinstance(exc, AccessError) else describe_aws_error(exc, "iam:PutRolePolicy")
            )
            services.store.execute(
                "UPDATE access_revocation_docs SET writer = NULL, last_error = ? WHERE role_arn = ? AND writer = ?",
                [problem, role_arn, holder],
            )
            log.warning("could not write the revocations of %s: %s", role_arn, problem)
            return False, problem
        with services.store.transaction() as db:
            db.execute(
                "UPDATE access_revocation_docs SET written_version = max(written_version, ?), written_at = ?, "
                "last_error = NULL WHERE role_arn = ?",
                [done_version, iso(services.clock.now()), role_arn],
            )
            handed_over = db.execute(
                "UPDATE access_revocation_docs SET writer = NULL WHERE role_arn = ? AND writer = ? "
                "AND version = written_version",
                [role_arn, holder],
            ).rowcount
        if handed_over == 1:
            return True, None
        # New statements arrived while we wrote: write again (we still hold the writer lease).


def sync_pending_revocations(services: Services) -> list[tuple[str, bool, str | None]]:
    """The sweep: every role whose policy in AWS lags SQLite is written again."""
    rows = services.store.execute(
        "SELECT role_arn, account_id, version FROM access_revocation_docs WHERE written_version < version"
    ).fetchall()
    results = []
    for role_arn, account_id, version in rows:
        written, problem = sync_role(services, role_arn, account_id, target=version, wait_seconds=0)
        results.append((role_arn, written, problem))
    return results


def deny_sessions(
    services: Services, request: AccessRequest, *, now: datetime, grants: list[Grant] | None = None
) -> tuple[bool, str | None, datetime | None]:
    """Record (in SQLite) and write (to AWS) a deny on the request's sessions issued up to now.

    Returns (written, problem, latest session expiry).
    """
    grants = grants if grants is not None else grants_of(services, request.id)
    latest = max((g.expires_at for g in grants), default=None)
    cutoff = revocation_cutoff(now, grants)
    until = max(latest or now, now) + STATEMENT_GRACE
    with services.store.transaction() as db:
        target = record_revocation(db, request, issued_before=cutoff, until=until, now=now)
    written, problem = sync_role(services, request.role_arn, request.account_id, target=target)
    return written, problem, latest


def revoke(
    services: Services, request_id: str, by: str, *, done: bool = False, reason: str | None = None
) -> Revocation | None:
    """granted → revoked, then deny the requester's live sessions on the role.

    The state changes first, so nothing new is issued; then the request's lease is taken, so a
    session being issued right now is recorded before the cutoff is chosen (and the cutoff covers
    it). Returns None when the request was not granted (already ended, revoked, …).
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
    try:
        with request_lease(services, request_id):
            written, problem, latest = deny_sessions(services, request, now=services.clock.now())
    except LeaseBusy:
        # An issuer is stuck inside AssumeRole: deny what we know now; the issuer re-checks the state
        # after AssumeRole returns and denies its own session (see grant.issue_session).
        written, problem, latest = deny_sessions(services, request, now=services.clock.now())
    if reason is None:
        if not done:
            reason = "revoked"
        elif by == request.requester:
            reason = "requester is done"
        else:
            reason = f"ended by {by} (I'm done, not the requester)"
    audit_request(
        services,
        request,
        "revoked",
        actor=by,
        at=now,
        reason=reason,
        policy_written=written,
        problem=problem,
    )
    live_until = min(latest, request.window_end) if latest and request.window_end else latest
    return Revocation(
        request=request, policy_written=written, problem=problem, credentials_expire_at=live_until
    )


def _write_revocation(services: Services, request: AccessRequest, now: datetime, until: datetime) -> None:
    """Kept for callers of the old name: record one statement and write it, raising on failure."""
    with services.store.transaction() as db:
        target = record_revocation(db, request, issued_before=next_second(now), until=until, now=now)
    written, problem = sync_role(services, request.role_arn, request.account_id, target=target)
    if not written:
        raise AccessError(problem or "the revocation was not written")
