"""A lease per request, held in SQLite, so issuing and revoking one request never interleave.

Threads and bot instances on the same database file see the same row. A holder that dies leaves a
lease that frees itself after ``LEASE_FOR`` (well beyond one AssumeRole with all its retries).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from bot.access.model import AccessError
from bot.services import Services
from bot.store import iso

LEASE_FOR = timedelta(minutes=5)
POLL_SECONDS = 0.02


class LeaseBusy(AccessError):
    """Someone else held the request's lease for longer than we could wait."""


def holder_id() -> str:
    """Unique per call: host, process and thread make it readable, the token makes it unique."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(3)}"


def try_acquire(services: Services, key: str, holder: str, *, table: str = "access_leases") -> bool:
    now = services.clock.now()
    cursor = services.store.execute(
        f"INSERT INTO {table} (request_id, holder, until) VALUES (?, ?, ?) "  # noqa: S608 - our table names
        "ON CONFLICT(request_id) DO UPDATE SET holder = excluded.holder, until = excluded.until "
        f"WHERE {table}.until <= ?",
        [key, holder, iso(now + LEASE_FOR), iso(now)],
    )
    return cursor.rowcount == 1


def release(services: Services, key: str, holder: str) -> None:
    services.store.execute("DELETE FROM access_leases WHERE request_id = ? AND holder = ?", [key, holder])


@contextmanager
def request_lease(services: Services, request_id: str, *, wait_seconds: float = 60.0) -> Iterator[str]:
    """Hold the request's lease for the block; raises LeaseBusy after ``wait_seconds`` of waiting."""
    holder = holder_id()
    deadline = time.monotonic() + wait_seconds
    while not try_acquire(services, request_id, holder):
        if time.monotonic() >= deadline:
            raise LeaseBusy(f"Request {request_id} is busy (access is being issued or revoked); try again.")
        time.sleep(POLL_SECONDS)
    try:
        yield holder
    finally:
        release(services, request_id, holder)
