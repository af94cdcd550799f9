"""The offboarding table (``bot.store`` migrates it: ``SCHEMA_MODULES`` names this package).

The directory itself (``slack_users``) is a core table of ``bot.store``.
"""

from __future__ import annotations

import sqlite_utils

from bot.store import migrations


@migrations()
def m601_offboardings(db: sqlite_utils.Database) -> None:
    db["offboardings"].create(
        {
            "id": int,
            "user_id": str,
            "source": str,  # user_change | directory_refresh | demo
            "event_id": str,
            "detected_at": str,
            "state": str,  # detected → ending → access_ended → alerting → alerted
            "claimed_at": str,
            "revoked": str,  # JSON: what was revoked / withdrawn (ids, roles)
            "withdrawn": str,
            "alert_channel": str,
            "alert_ts": str,
            "alert_error": str,
            "alert_attempts": int,
            "reactivated_at": str,
        },
        pk="id",
        defaults={"alert_attempts": 0},
    )
    # Exactly once per member: one open (not reactivated) offboarding each.
    db.execute(
        "CREATE UNIQUE INDEX offboardings_open_member ON offboardings(user_id) WHERE reactivated_at IS NULL"
    )
