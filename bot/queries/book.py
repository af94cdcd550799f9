"""The snapshot book: the newest successful snapshot of every account, parsed once, with who is who.

Parsing a large inventory takes far longer than Slack's 3-second budget allows per request, so the
parsed snapshots, the identity map and each principal's statements are kept in a ``SnapshotBook``
that is rebuilt only when a new snapshot is stored. Who is who (``bot.identity``) is joined to it at
answer time, cached per directory version, so a directory change shows on the next answer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.findings import latest_snapshots, snapshot_inventory
from bot.identity import IdentityMap, PrincipalRef, identity_for
from bot.inventory import PolicyIndex, principal_statements
from bot.services import Services
from bot.settings import Config
from bot.store import Store


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    account_id: str
    account_name: str
    scanned_at: datetime

    @property
    def label(self) -> str:
        return f"{self.account_name} ({self.account_id})" if self.account_name else self.account_id


@dataclass
class SnapshotBook:
    """The newest successful snapshot of every account, parsed once, with its identity map."""

    snapshots: list[SnapshotInfo]
    inventories: dict[str, dict[str, Any]]
    identity: IdentityMap
    principals: list[PrincipalRef] = field(default_factory=list)
    _credential_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    _indexes: dict[str, PolicyIndex] = field(default_factory=dict)  # by account id
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, config: Config, store: Store, rows: list[dict[str, Any]]) -> SnapshotBook:
        snapshots: list[SnapshotInfo] = []
        inventories: dict[str, dict[str, Any]] = {}
        for row in rows:
            inventory = snapshot_inventory(store, row["id"])
            if inventory is None:
                continue
            snapshots.append(
                SnapshotInfo(
                    row["id"], row["account_id"], row["account_name"] or "", parse_time(row["scanned_at"])
                )
            )
            inventories[row["account_id"]] = inventory
        identity = identity_for(config, store, [row["id"] for row in rows], inventories)
        book = cls(snapshots=snapshots, inventories=inventories, identity=identity)
        for account_id, inventory in inventories.items():
            for user in inventory.get("users") or []:
                book.principals.append(PrincipalRef(account_id, user["Arn"], user["UserName"], "user"))
            for role in inventory.get("roles") or []:
                book.principals.append(PrincipalRef(account_id, role["Arn"], role["RoleName"], "role"))
            for row in inventory.get("credential_report") or []:
                if row.get("arn"):
                    book._credential_rows[row["arn"]] = row
        return book

    @property
    def snapshot_ids(self) -> list[int]:
        return [s.id for s in self.snapshots]

    def snapshot_of(self, account_id: str) -> SnapshotInfo | None:
        return next((s for s in self.snapshots if s.account_id == account_id), None)

    def credential_row(self, arn: str) -> dict[str, str] | None:
        return self._credential_rows.get(arn)

    def statements(self, ref: PrincipalRef) -> list:
        """The principal's identity-policy statements. Each account's policies are parsed once and
        shared by every principal (a stored inventory never changes). Raises KeyError when the
        principal is not in the snapshot."""
        with self._lock:  # PolicyIndex caches without locks of its own
            index = self._indexes.get(ref.account_id)
            if index is None:
                index = self._indexes[ref.account_id] = PolicyIndex(self.inventories[ref.account_id])
            return principal_statements(index, ref.arn)


# The parsed snapshots are the bot's biggest objects, so only the current book of each database is
# kept (a new snapshot replaces the old book instead of sitting beside it), and at most
# MAX_BOOKS databases (tests and the demo run several bots in one process). Memory stays flat
# however many snapshots are taken.
MAX_BOOKS = 4
_BOOKS: OrderedDict[tuple, tuple[tuple, SnapshotBook]] = OrderedDict()
_BOOKS_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()


def _cached_book(owner: tuple, key: tuple) -> SnapshotBook | None:
    with _BOOKS_LOCK:
        entry = _BOOKS.get(owner)
        if entry is None or entry[0] != key:
            return None
        _BOOKS.move_to_end(owner)
        return entry[1]


def current_book(services: Services) -> SnapshotBook:
    """The book for the newest snapshots, with who is who as the directory is now; cheap when
    nothing changed (three small queries)."""
    store = services.store
    rows = latest_snapshots(store)
    owner = (id(services.config), str(store.path))
    # Who is who is joined at answer time (_with_current_identity), so only the snapshots key the book.
    key = (tuple(r["id"] for r in rows),)
    hit = _cached_book(owner, key)
    if hit is not None:
        return _with_current_identity(services, hit, key[0])
    # One thread parses a new snapshot; requests arriving meanwhile wait for it instead of each
    # parsing the same inventory.
    with _BUILD_LOCK:
        hit = _cached_book(owner, key)
        if hit is not None:
            return _with_current_identity(services, hit, key[0])
        with _BOOKS_LOCK:
            _BOOKS.pop(owner, None)  # let the superseded book go before parsing the new one
        book = SnapshotBook.build(services.config, store, rows)
        with _BOOKS_LOCK:
            _BOOKS[owner] = (key, book)
            while len(_BOOKS) > MAX_BOOKS:
                _BOOKS.popitem(last=False)
    return _with_current_identity(services, book, key[0])


def _with_current_identity(services: Services, book: SnapshotBook, snapshot_ids: tuple) -> SnapshotBook:
    """The book joined with the identity map of the directory as it is now (a cached look-up;
    the parsed snapshots, indexes and locks are shared, never copied)."""
    identity = identity_for(services.config, services.store, snapshot_ids, book.inventories)
    return book if identity is book.identity else dataclasses.replace(book, identity=identity)


def cached_book_count() -> int:
    """How many parsed books are held (for tests and the memory benchmark)."""
    with _BOOKS_LOCK:
        return len(_BOOKS)


def next_scan_at(services: Services) -> datetime | None:
    """When the scheduled scan runs next (``[schedule] scan_cron``), or None if it is not scheduled."""
    schedule = services.config.schedule
    if not schedule.scan_cron:
        return None
    from bot.jobs import crontab_trigger  # late: the scheduler (wiring, apscheduler) only when asked

    try:
        trigger = crontab_trigger(schedule.scan_cron, schedule.timezone)
    except ValueError:
        return None
    return trigger.get_next_fire_time(None, services.clock.now())


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as stored or as the credential report writes it; naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
