"""Signed requests seen recently, in SQLite: a replay within Slack's window does nothing.

Slack signs ``v0:{timestamp}:{body}`` and a receiver accepts a timestamp within 5 minutes of its own
clock, so a captured request stays valid for that long. Each accepted signature is recorded until
its timestamp leaves the window; a second sighting is acknowledged and ignored. Events API retries
(``X-Slack-Retry-Num``) are re-signed, so events are also recorded by ``event_id``, for the hour
over which Slack retries. Kept in SQLite (not memory) so it holds across threads, across bot
instances sharing the database, and across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import sqlite_utils

from bot.store import Store, migrations

# Slack's timestamp window, seconds either side of now.
SIGNATURE_WINDOW_SECONDS = 5 * 60
# Slack retries an event three times over about an hour.
EVENT_RETRY_WINDOW_SECONDS = 60 * 60
# Expired rows are deleted at most this often.
PRUNE_EVERY_SECONDS = 60


@migrations()
def m050_seen_requests(db: sqlite_utils.Database) -> None:
    db["seen_requests"].create({"key": str, "expires_at": float}, pk="key")
    db["seen_requests"].create_index(["expires_at"])


class SeenRequests:
    """``first_sighting(key, until)`` is True exactly once per key while the key is unexpired."""

    def __init__(self, store: Store, *, now=time.time):  # noqa: ANN001 - a wall-clock callable
        self.store = store
        self.now = now
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()

    def first_sighting(self, key: str, *, until: float) -> bool:
        now = self.now()
        self._maybe_prune(now)
        db = self.store.db
        # One statement, so two threads or two instances racing on one key cannot both win: an
        # expired row is taken over, a live one is left alone.
        cursor = db.execute(
            "INSERT INTO seen_requests (key, expires_at) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET expires_at = excluded.expires_at "
            "WHERE seen_requests.expires_at < ?",
            [key, until, now],
        )
        return cursor.rowcount == 1

    def signature(self, signature: str, timestamp: int) -> bool:
        """First sighting of a signed request (valid until its timestamp leaves the window)."""
        return self.first_sighting("sig:" + signature, until=timestamp + SIGNATURE_WINDOW_SECONDS)

    def event(self, event_id: str) -> bool:
        """First sighting of an Events API event id (Slack's retries carry the same id)."""
        return self.first_sighting("event:" + event_id, until=self.now() + EVENT_RETRY_WINDOW_SECONDS)

    def _maybe_prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY_SECONDS or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._pruned_at = now
            self.store.db.execute("DELETE FROM seen_requests WHERE expires_at < ?", [now])
        except sqlite3.Error:
            pass  # pruning is housekeeping; the next sighting tries again
        finally:
            self._prune_lock.release()

    def count(self) -> int:
        return self.store.db.execute("SELECT count(*) FROM seen_requests").fetchone()[0]
