"""The digest's tables: scheduled slots, posted digests, snoozes, acknowledgements, marks, nudges."""

from __future__ import annotations

import sqlite_utils

from bot.store import migrations


@migrations()
def m050_digest(db: sqlite_utils.Database) -> None:
    db["digest_slots"].create(
        {
            "kind": str,  # "digest" | "scan"
            "channel": str,
            "slot": str,  # ISO time of the scheduled fire time
            "status": str,  # "claimed" | "posted" | "failed"
            "claimed_by": str,
            "claimed_at": str,
            "finished_at": str,
            "ts": str,
            "error": str,
        },
        pk=("kind", "channel", "slot"),
    )
    db["digests"].create(
        {
            "id": int,
            "channel": str,
            "slot": str,
            "posted_at": str,
            "ts": str,
            "snapshots": str,  # JSON {account_id: snapshot_id} the digest was built from
            "summary": str,  # JSON counts, for the record
        },
        pk="id",
    )
    db["digests"].create_index(["channel", "id"])
    db["snoozes"].create(
        {
            "id": int,
            "fingerprint": str,
            "account_id": str,
            "check_id": str,
            "principal_arn": str,
            "reason": str,
            "snoozed_by": str,
            "snoozed_at": str,
            "until": str,
            "state": str,  # "active" | "expired"
        },
        pk="id",
    )
    db["snoozes"].create_index(["fingerprint", "state"])
    db["acknowledgements"].create(
        {"fingerprint": str, "acknowledged_by": str, "acknowledged_at": str}, pk="fingerprint"
    )
    db["finding_marks"].create(
        {"id": int, "fingerprint": str, "kind": str, "marked_by": str, "marked_at": str, "note": str},
        pk="id",
    )
    db["finding_marks"].create_index(["fingerprint"])
    db["nudges"].create(
        {"fingerprint": str, "user_id": str, "sent_at": str, "count": int},
        pk=("fingerprint", "user_id"),
    )
