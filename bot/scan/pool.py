"""Each account's checks in worker processes (``forkserver``), beside the threads reading AWS.

The workers import ``_warm_worker`` and ``checks_job`` by their module path (``bot.scan.pool``):
keep them module-level functions of this module.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from bot.findings import finding_rows, inventory_json
from bot.permissions import suppress_own_principal
from bot.policy import ActionCatalog
from bot.scan.checking import run_checks
from bot.settings import Config

log = logging.getLogger(__name__)

# Below this many accounts a scan runs its checks in its own process: starting workers (~1 s:
# imports and the action catalog) would cost more than it saves.
PROCESS_MIN_ACCOUNTS = 8


def check_processes(config: Config, accounts: int) -> int:
    """How many worker processes run the checks of a scan of ``accounts`` accounts (0: none).
    ``[scan] check_processes`` unset: one per core but the one that reads AWS, at most 4."""
    wanted = config.scan.check_processes
    if wanted is None:
        wanted = min(4, (os.cpu_count() or 1) - 1)
    return max(0, wanted) if accounts >= PROCESS_MIN_ACCOUNTS else 0


def _warm_worker(owner: int) -> None:
    ActionCatalog.default()  # once per worker, not once per account
    # A worker would outlive a killed scan: it holds its own ends of the job queue, and the
    # forkserver, its parent, stays as long as any worker holds its liveness pipe. So each worker
    # watches the scan's process itself and leaves when it is gone.

    def leave_with_owner() -> None:
        while _running(owner):
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=leave_with_owner, name="checks-worker-watchdog", daemon=True).start()


def _running(pid: int) -> bool:
    """Is ``pid`` a live process? (One that has exited but is not yet reaped is not.)"""
    try:
        with open(f"/proc/{pid}/stat") as stat:  # Linux: the state after the command name
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class CheckedAccount:
    """One account's checks, ready to store: serialised where they ran (a worker process, or the
    scan's own), so the scan's process, which also reads AWS, only writes them."""

    count: int
    rows: list[tuple]
    inventory_text: str | None


def checks_job(job: tuple) -> CheckedAccount:
    """One account's checks, serialised for storing (run in a worker, or in the scan's process)."""
    inventory, config, now, owners, known, own = job
    findings = run_checks(inventory, config, now=now, owners=owners, known_accounts=known)
    findings = suppress_own_principal(findings, own)
    return CheckedAccount(len(findings), finding_rows(findings), inventory_json(inventory))


class ChecksPool:
    """Each account's checks in worker processes, beside the threads reading the next accounts.

    The checks are CPU (the escalation graph above all) and one Python process runs on one core at
    a time, so at 1,000 accounts the reading and the checks queued behind each other. Workers are
    started by ``forkserver`` (never ``fork``: the bot runs threads). At most two accounts per
    worker wait in memory (``submit`` blocks beyond). A job a worker cannot finish, or a pool that
    breaks, is run here instead: an account is never lost to the pool. An error storing an account
    is raised by ``close`` as it would have been raised inline."""

    def __init__(self, processes: int) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_warm_worker,
            initargs=(os.getpid(),),
        )
        self._slots = threading.BoundedSemaphore(2 * processes)
        self._errors: list[BaseException] = []

    def submit(self, job: tuple, then: Callable[[CheckedAccount], None]) -> None:
        """Run the checks of ``job`` in a worker; ``then(checked)`` when they are done."""
        self._slots.acquire()
        try:
            future = self._executor.submit(checks_job, job)
        except (BrokenProcessPool, RuntimeError):
            self._slots.release()
            then(checks_job(job))
            return

        def done(future: Any) -> None:
            try:
                try:
                    checked = future.result()
                except Exception:  # a broken pool, a job that would not pickle, a worker's error
                    log.warning("checks in a worker process failed; running them in the scan's process")
                    checked = checks_job(job)
                then(checked)
            except BaseException as exc:
                self._errors.append(exc)
            finally:
                self._slots.release()

        future.add_done_callback(done)

    def close(self) -> None:
        """Wait for every job (each stored as it finishes), stop the workers, raise a failure."""
        self._executor.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]
