"""SQLite state through sqlite-utils: one file, WAL mode, migrations, a connection per thread.

Bolt runs listeners on worker threads and sqlite3 connections belong to the thread that made them,
so ``Store.db`` hands each thread its own ``sqlite_utils.Database`` on the same file. Writers that
must not race use ``Store.transaction()`` (``BEGIN IMMEDIATE``) or conditional ``UPDATE … WHERE``.

Each feature adds tables by appending a ``@migrations()`` function below; never edit an applied one.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

migrations = Migrations("iamwarden")

# Modules that declare tables with @migrations(); imported before migrating so every table exists.
SCHEMA_MODULES = ("bot.findings", "bot.digest", "bot.alerts", "bot.access", "bot.offboarding")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The one timestamp format stored: ISO 8601, UTC, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


@migrations()
def m001_core(db: sqlite_utils.Database) -> None:
    db["audit"].create(
        {
            "id": int,
            "at": str,
            "actor": str,
            "action": str,
            "request_id": str,
            "role": str,
            "account_id": str,
            "reason": str,
            "detail": str,
        },
        pk="id",
    )
    db["audit"].create_index(["request_id"])
    db["audit"].create_index(["at"])
    db["kv"].create({"key": str, "value": str, "updated_at": str}, pk="key")
    db["slack_users"].create(
        {
            "id": str,
            "name": str,
            "real_name": str,
            "email": str,
            "deleted": int,
            "is_bot": int,
            "tz": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["slack_users"].create_index(["email"])


class Store:
    """The bot's SQLite file. Safe to share across threads; each thread gets its own connection."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate_lock = threading.Lock()
        for module in SCHEMA_MODULES:
            importlib.import_module(module)
        with self._migrate_lock:
            migrations.apply(self.db)

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """An immediate (write-locked) transaction: everything inside commits or nothing does."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def ping(self) -> bool:
        try:
            return self.db.execute("SELECT 1").fetchone()[0] == 1
        except sqlite3.Error:
            return False

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    # -- small shared tables ---------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        actor: str,
        at: datetime,
        request_id: str | None = None,
        role: str | None = None,
        account_id: str | None = None,
        reason: str | None = None,
        **detail: Any,
    ) -> int:
        """Append one audit record. The log is append-only: nothing updates or deletes rows."""
        row = {
            "at": iso(at),
            "actor": actor,
            "action": action,
            "request_id": request_id,
            "role": role,
            "account_id": account_id,
            "reason": reason,
            "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
        }
        return self.db["audit"].insert(row).last_pk

    def audit_rows(self, *, since: str | None = None) -> Iterator[dict]:
        where, params = ("at >= ?", [since]) if since else (None, None)
        yield from self.db["audit"].rows_where(where, params, order_by="id")

    def get_kv(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_kv(self, key: str, value: str, *, at: datetime | None = None) -> None:
        self.db["kv"].upsert({"key": key, "value": value, "updated_at": iso(at or utcnow())}, pk="key")
