"""The alert tables. Append new migrations at the end; never edit an applied one."""

from __future__ import annotations

import sqlite_utils

from bot.store import migrations


@migrations()
def m070_alerts(db: sqlite_utils.Database) -> None:
    # One row per event id ever processed: the exactly-once guard for redeliveries and re-reads.
    db["alert_events"].create(
        {
            "event_id": str,
            "source": str,
            "event_name": str,
            "event_time": str,
            "account_id": str,
            "processed_at": str,
            "alert_ids": str,
        },
        pk="event_id",
    )
    db["alert_events"].create_index(["processed_at"])
    # What windowed rules count (failed sign-ins), by event time.
    db["alert_signals"].create(
        {"id": int, "rule_id": str, "account_id": str, "subject": str, "at": str, "event_id": str},
        pk="id",
    )
    db["alert_signals"].create_index(["rule_id", "account_id", "at"])
    db["alerts"].create(
        {
            "id": int,
            "rule_id": str,
            "severity": str,
            "dedupe_key": str,
            "title": str,
            "account_id": str,
            "region": str,
            "event_name": str,
            "event_source": str,
            "first_event_id": str,
            "last_event_id": str,
            "principal_arn": str,
            "principal_type": str,
            "principal_name": str,
            "owner": str,
            "source_ip": str,
            "user_agent": str,
            "first_seen": str,
            "last_seen": str,
            "count": int,
            "jit_request_id": str,
            "jit_requester": str,
            "context": str,
            "state": str,
            "acknowledged_by": str,
            "acknowledged_at": str,
            "actor_status": str,
            "actor_user": str,
            "actor_asked_by": str,
            "actor_asked_at": str,
            "actor_deadline": str,
            "actor_answered_at": str,
            "escalated_at": str,
            "channel": str,
            "ts": str,
            "dm_channel": str,
            "dm_ts": str,
            "dirty": int,
            "created_at": str,
        },
        pk="id",
        defaults={"count": 1, "state": "open", "actor_status": "", "dirty": 1},
        not_null={"rule_id", "severity", "dedupe_key", "first_seen", "last_seen"},
    )
    db["alerts"].create_index(["dedupe_key", "first_seen"])
    db["alerts"].create_index(["dirty"])
    db["alerts"].create_index(["actor_status", "actor_deadline"])


@migrations()
def m071_alert_post_claims(db: sqlite_utils.Database) -> None:
    # Two instances delivering at once must not both post a new alert: the first claims it.
    db["alerts"].add_column("post_claimed_until", str)


@migrations()
def m072_alert_signal_details(db: sqlite_utils.Database) -> None:
    # What a signal was about (the denied action for UNAUTHORIZED_API_CALLS' "top denied actions").
    db["alert_signals"].add_column("detail", str)
    # Covering indexes: per-subject counts (failures per user, denials per principal) and
    # distinct-subject counts (password spray) read the index alone, never the table.
    db["alert_signals"].create_index(["rule_id", "account_id", "subject", "at"])
    db["alert_signals"].create_index(["rule_id", "account_id", "at", "subject"])
    # The last trust policy seen in events per role, so a change that drops an ExternalId/MFA
    # condition is recognised as one (the scan snapshot is the fallback).
    db["alert_role_trusts"].create(
        {"account_id": str, "role_name": str, "guarded": str, "at": str, "event_id": str},
        pk=("account_id", "role_name"),
    )
