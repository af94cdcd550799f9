"""The access tables. Append new migrations at the end; never edit an applied one."""

from __future__ import annotations

import sqlite_utils

from bot.store import migrations


@migrations()
def m101_access(db: sqlite_utils.Database) -> None:
    db["access_requests"].create(
        {
            "id": str,
            "kind": str,
            "parent_id": str,
            "requester": str,
            "role": str,
            "role_arn": str,
            "account_id": str,
            "duration_seconds": int,
            "reason": str,
            "ticket": str,
            "state": str,
            "created_at": str,
            "pending_until": str,
            "decided_at": str,
            "decided_by": str,
            "deny_reason": str,
            "window_start": str,
            "window_end": str,
            "extensions": int,
            "origin_channel": str,
            "channel": str,
            "message_ts": str,
            "ended_at": str,
            "ended_by": str,
            "error": str,
            "review_required": int,
            "reviewed_by": str,
            "reviewed_at": str,
            "next_reminder_at": str,
        },
        pk="id",
        defaults={"extensions": 0, "review_required": 0},
    )
    db["access_requests"].create_index(["requester", "state"])
    db["access_requests"].create_index(["state"])
    db["access_approvals"].create(
        {"request_id": str, "approver": str, "at": str}, pk=("request_id", "approver")
    )
    # Only the access key id and expiry: never the secret key or the session token.
    db["access_grants"].create(
        {
            "id": int,
            "request_id": str,
            "access_key_id": str,
            "session_name": str,
            "issued_at": str,
            "expires_at": str,
            "duration_seconds": int,
            "reason": str,
        },
        pk="id",
    )
    db["access_grants"].create_index(["request_id"])


@migrations()
def m102_access_parent_index(db: sqlite_utils.Database) -> None:
    # Extensions are looked up by the access they extend on every end, revoke and extend.
    db["access_requests"].create_index(["parent_id"])


@migrations()
def m103_access_serialized(db: sqlite_utils.Database) -> None:
    # One lease per request: issuing (grant, re-issue, extension) and revoking take it in turn, across
    # threads and bot instances on the same file. ``until`` frees a lease whose holder died.
    db["access_leases"].create({"request_id": str, "holder": str, "until": str}, pk="request_id")
    # The revocation statements of every role, the truth the IAM policy is written from. A row is kept
    # until every session it targets has expired (``until``).
    db["access_revocations"].create(
        {
            "id": int,
            "role_arn": str,
            "account_id": str,
            "identity": str,
            "request_id": str,
            "issued_before": str,
            "until": str,
            "created_at": str,
        },
        pk="id",
    )
    db["access_revocations"].create_index(["role_arn"])
    # Per role: the version SQLite holds, the version AWS was last seen to hold, and who is writing.
    db["access_revocation_docs"].create(
        {
            "role_arn": str,
            "account_id": str,
            "version": int,
            "written_version": int,
            "writer": str,
            "writer_until": str,
            "last_error": str,
            "written_at": str,
        },
        pk="role_arn",
        defaults={"version": 0, "written_version": 0},
    )
    # Slack work that must happen eventually (no secrets: messages are rendered from state when sent).
    db["access_outbox"].create(
        {
            "id": int,
            "kind": str,
            "request_id": str,
            "created_at": str,
            "due_at": str,
            "attempts": int,
            "done_at": str,
            "last_error": str,
        },
        pk="id",
        defaults={"attempts": 0},
    )
    db["access_outbox"].create_index(["done_at", "due_at"])
    # Set just before AssumeRole: a crash after it leaves an outcome we cannot know (grant_uncertain).
    db["access_requests"].add_column("assume_started_at", str)


@migrations()
def m104_access_window_reminders(db: sqlite_utils.Database) -> None:
    # One row per (request, window end) reminded: the insert is the claim, so two sweeps never remind
    # twice, and an extension (a later window end) earns its own reminder.
    db["access_window_reminders"].create(
        {"request_id": str, "window_end": str, "at": str}, pk=("request_id", "window_end")
    )
