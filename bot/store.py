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

from bot.features import modules
from bot.settings import SettingsError

migrations = Migrations("iamwarden")

# How long a writer waits for another's lock while running (start-up waits far less: see open_store).
BUSY_TIMEOUT_MS = 30000

# Modules that declare tables with @migrations() (each feature's ``tables`` in bot.features),
# imported before migrating so every table exists.
SCHEMA_MODULES = modules("tables")


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
    """The bot's SQLite file. Safe to share across threads; each thread gets its own connection.

    ``lock_wait_ms`` bounds how long opening (migrations) waits for another process's lock; after
    that, writers wait up to BUSY_TIMEOUT_MS."""

    def __init__(self, path: Path | str, *, lock_wait_ms: int = BUSY_TIMEOUT_MS):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate_lock = threading.Lock()
        for module in SCHEMA_MODULES:
            importlib.import_module(module)
        # A fresh database applies the migrations in name order (m001, m010, m050, …), not in the
        # order the feature packages happened to be imported in (sqlite-utils applies them in the
        # order they were registered). Existing databases apply only what is missing, by name.
        migrations._migrations.sort(key=lambda m: m.name)
        with self._migrate_lock:
            db = self.db
            db.execute(f"PRAGMA busy_timeout={int(lock_wait_ms)}")
            try:
                migrations.apply(db)
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=1, isolation_level=None)
            # Before anything creates the file (WAL does): a new database can give freed pages back
            # (reclaim_space); on an existing one it has no effect until a VACUUM.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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

    def ping(self, *, write: bool = True, timeout_ms: int = 2000) -> bool:
        """Whether the database answers and (``write``) accepts a write, within ``timeout_ms``.

        The write is one tiny upsert: a read-only file, a full disk or a lock held too long all
        show here, where a SELECT would still succeed."""
        try:
            db = self.db
            db.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
            try:
                if not write:
                    return db.execute("SELECT 1").fetchone()[0] == 1
                db.execute(
                    "INSERT INTO kv (key, value, updated_at) VALUES ('healthz', 'ok', ?) "
                    "ON CONFLICT(key) DO UPDATE SET updated_at = excluded.updated_at",
                    [iso(utcnow())],
                )
                return True
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error:
            return False

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    # -- small shared tables ---------------------------------------------------------------

    def reclaim_space(self, *, at: datetime | None = None) -> None:
        """Give the pages freed by deletions back to the file system (incremental vacuum). A database
        created before auto_vacuum was set is converted once by a full VACUUM, recorded in ``kv``."""
        if str(self.path) == ":memory:":
            return
        db = self.db
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("VACUUM")  # rewrites the file once; from now on incremental_vacuum suffices
            self.set_kv("auto_vacuum_converted_at", iso(at or utcnow()), at=at)
        # executescript steps the pragma to the end (a cursor frees one page a step, then stops)
        db.conn.executescript("PRAGMA incremental_vacuum;")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

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


# -- opening at start-up -------------------------------------------------------------------------

# A database locked by another process is reported after this long (not after BUSY_TIMEOUT_MS).
STARTUP_LOCK_WAIT_MS = 3000
_WHERE = "IAMWARDEN_DB"


def open_store(path: Path | str, *, lock_wait_ms: int = STARTUP_LOCK_WAIT_MS) -> Store:
    """Open (creating and migrating) the database, or raise SettingsError: one line naming the file,
    what is wrong with it and what to do. Proves the file accepts a write before returning."""
    target = Path(path)
    if str(target) == ":memory:":
        return Store(target)
    if target.is_dir():
        raise SettingsError(f"{_WHERE}: {target} is a directory; point {_WHERE} at a database file inside it")
    if target.exists() and target.stat().st_size > 0:
        with open(target, "rb") as handle:
            header = handle.read(16)
        if header != b"SQLite format 3\x00":
            raise SettingsError(
                f"{_WHERE}: {target} is not an SQLite database; point {_WHERE} at the bot's database or a new file"
            )
    try:
        store = Store(target, lock_wait_ms=lock_wait_ms)
        db = store.db
        check = db.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed")
        db.execute(f"PRAGMA busy_timeout={int(lock_wait_ms)}")
        try:
            store.set_kv("opened_at", iso(utcnow()))
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except FileNotFoundError as exc:
        raise SettingsError(f"{_WHERE}: cannot create {target}: {exc.strerror}") from None
    except OSError as exc:  # a parent that is a file, a directory we may not write, …
        raise SettingsError(f"{_WHERE}: cannot create {target}: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise SettingsError(_explain(target, exc, lock_wait_ms)) from None
    return store


def _explain(target: Path, exc: sqlite3.Error, lock_wait_ms: int) -> str:
    message = str(exc).lower()
    if "locked" in message or "busy" in message:
        return (
            f"{_WHERE}: {target} is locked by another process (waited {lock_wait_ms / 1000:g} s); "
            "stop the other iamwarden or point this one at its own file"
        )
    if "malformed" in message or "not a database" in message or "corrupt" in message:
        return f"{_WHERE}: {target} is corrupted ({exc}); restore it from a backup or move it aside to start afresh"
    if "readonly" in message or "read-only" in message:
        return f"{_WHERE}: {target} is read-only; the bot needs to write to it and to its directory"
    if "disk is full" in message or "disk i/o" in message:
        return f"{_WHERE}: cannot write {target} ({exc}); free disk space on its volume"
    if "unable to open" in message:
        return f"{_WHERE}: cannot open {target} ({exc}); check its directory exists and is writable"
    return f"{_WHERE}: cannot use {target} ({exc})"
