"""The hygiene scan: collect each account's snapshot, run the catalog, store snapshot and findings.

``scan_accounts`` reads every configured account concurrently (each in its own daemon thread, at
most ``[scan] max_workers`` at a time) and stores each account's snapshot as soon as it is read; one
account that cannot be read, or not within ``[scan] account_timeout``, is reported (a failed
snapshot row and ``AccountScan.error``) while the others complete. ``run_checks`` is the AWS-free half: inventory in, findings out (suppressions applied,
owners set). The CLI commands ``iamwarden scan`` and ``iamwarden checks`` live here too.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import logging
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFactory, CallCounter, describe_aws_error, is_access_denied
from bot.checks.catalog import CheckContext, Owners, clear_scan_memo, iter_checks
from bot.commands import EXIT_AWS, EXIT_FINDINGS, EXIT_OK, command, slack_client
from bot.findings import (
    Finding,
    FindingStatus,
    Severity,
    StoredFindings,
    apply_retention,
    finding_rows,
    inventory_json,
    save_snapshot,
    snapshot_inventory,
    sort_findings,
)
from bot.inventory import CollectError, Inventory, collect
from bot.permissions import suppress_own_principal
from bot.policy import ActionCatalog
from bot.settings import AccountConfig, Config, SuppressionConfig
from bot.store import iso

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (account id or name, phase)


@dataclass
class AccountTarget:
    """One account to read: its id (None = whoever the credentials belong to) and how to reach it."""

    account_id: str | None
    name: str = ""
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.account_id or "this account"


@dataclass
class AccountScan:
    account_id: str
    snapshot_id: int | None
    findings: Sequence[Finding]  # StoredFindings once stored: read back when iterated, not held
    api_calls: int
    error: str | None = None
    name: str = ""
    scanned_at: datetime | None = None
    # What the scan says once about the Slack directory (why ownership could not be evaluated).
    directory_note: str | None = None
    # A failed account: when its last good snapshot (the one answers still use) was taken.
    last_good_at: datetime | None = None
    # HTTP requests sent per operation ("iam:GetAccountAuthorizationDetails"), retries included.
    requests_by_operation: dict[str, int] = field(default_factory=dict)
    # Where the snapshot is stored: ``inventory`` reads it back from there when asked.
    store: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def inventory(self) -> Inventory | None:
        """The stored snapshot's inventory, read from the database when asked: a scan holds no
        account's inventory past its checks (1,000 accounts' inventories were most of a large
        scan's peak memory)."""
        if self.store is None or self.snapshot_id is None or self.error:
            return None
        return snapshot_inventory(self.store, self.snapshot_id)


# --------------------------------------------------------------------------- checks without AWS


def _suppression_expired(rule: SuppressionConfig, now: datetime) -> bool:
    if not rule.expires:
        return False
    try:
        expires = datetime.fromisoformat(rule.expires.replace("Z", "+00:00"))
    except ValueError:
        return True  # an unreadable expiry never hides a finding
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=now.tzinfo)
    return expires <= now


def _suppression_matches(rule: SuppressionConfig, finding: Finding) -> bool:
    if rule.fingerprint:
        return rule.fingerprint == finding.fingerprint
    if not rule.check_id or rule.check_id != finding.check_id:
        return False
    if rule.principal is None or rule.principal == "*":
        return True
    return rule.principal in (finding.principal_arn, finding.principal_name)


def apply_suppressions(
    findings: Iterable[Finding], rules: Iterable[SuppressionConfig], *, now: datetime
) -> list[Finding]:
    """Mark findings matched by an unexpired rule as suppressed (listed, never hidden)."""
    live = [r for r in rules if not _suppression_expired(r, now)]
    out = []
    for finding in findings:
        rule = next((r for r in live if _suppression_matches(r, finding)), None)
        if rule is not None:
            until = f" (until {rule.expires})" if rule.expires else ""
            finding = finding.model_copy(
                update={"suppressed": True, "suppression_reason": rule.reason + until}
            )
        out.append(finding)
    return out


def run_checks(
    inventory: Mapping[str, Any],
    config: Config,
    *,
    now: datetime,
    owners: Owners | None = None,
    known_accounts: Iterable[str] = (),
) -> list[Finding]:
    """Every check of the catalog over one snapshot; suppressions applied, owners set when known.

    ``known_accounts`` are account ids that are ours besides ``[[accounts]]`` (the organization's
    members found by the scan): a role trusting one of them is not trusting an outside account.
    """
    known = frozenset(known_accounts) | {a.id for a in config.accounts}
    ctx = CheckContext(inventory=inventory, config=config, now=now, owners=owners, known_accounts=known)
    findings: list[Finding] = []
    for check in iter_checks():
        findings.extend(check.run(ctx))
    return sort_findings(apply_suppressions(findings, config.suppressions, now=now))


# --------------------------------------------------------------------------- checks in processes

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


def _checks_job(job: tuple) -> CheckedAccount:
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
            future = self._executor.submit(_checks_job, job)
        except (BrokenProcessPool, RuntimeError):
            self._slots.release()
            then(_checks_job(job))
            return

        def done(future: Any) -> None:
            try:
                try:
                    checked = future.result()
                except Exception:  # a broken pool, a job that would not pickle, a worker's error
                    log.warning("checks in a worker process failed; running them in the scan's process")
                    checked = _checks_job(job)
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


# --------------------------------------------------------------------------- accounts


def _organization_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    org = aws.client("organizations")
    management = org.describe_organization()["Organization"].get("MasterAccountId")
    targets = []
    for page in org.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts") or []:
            if account.get("Status", "ACTIVE") != "ACTIVE" or account["Id"] in config.organizations.exclude:
                continue
            role = (
                None
                if account["Id"] == management
                else f"arn:aws:iam::{account['Id']}:role/{config.organizations.audit_role_name}"
            )
            targets.append(AccountTarget(account["Id"], account.get("Name", ""), role))
    return targets


def account_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    """Accounts to scan: ``[[accounts]]``, plus AWS Organizations members when enabled; else our own."""
    targets: dict[str, AccountTarget] = {}
    if config.organizations.enabled:
        for target in _organization_targets(aws, config):
            targets[target.account_id or ""] = target
    for account in config.accounts:
        targets[account.id] = _target_of(account)
    return list(targets.values()) or [AccountTarget(None)]


def _target_of(account: AccountConfig) -> AccountTarget:
    return AccountTarget(account.id, account.name, account.role_arn, account.external_id)


class AccountAbandoned(Exception):
    """Raised in an abandoned account's thread by its next request: it stops at once, unsent."""


class AccountWatch(CallCounter):
    """One account's requests: counted, the operation in flight known (for "timed out reading X"),
    and stopped once the coordinator has given up on the account (its ``before-send`` raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()
        self._in_flight: list[str] = []

    def attach(self, client: Any) -> Any:
        super().attach(client)
        events = client.meta.events
        events.register("before-call.*.*", self._started)
        events.register("after-call.*.*", self._finished)
        events.register("after-call-error.*.*", self._finished)
        events.register_first("before-send.*.*", self._refuse_if_abandoned)
        return client

    # The operation comes from the event's name ("before-call.iam.GetAccountAuthorizationDetails"):
    # after-call-error carries no model.
    def _started(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self._in_flight.append(event_name.rsplit(".", 1)[-1])

    def _finished(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            if operation in self._in_flight:
                self._in_flight.remove(operation)

    def _refuse_if_abandoned(self, **_: Any) -> None:
        if self.abandoned.is_set():
            raise AccountAbandoned("the scan gave up on this account")

    @property
    def operation(self) -> str | None:
        """The oldest operation still in flight, if any."""
        with self._lock:
            return self._in_flight[0] if self._in_flight else None


Collected = tuple[AccountTarget, Inventory | None, int, str | None]


def _collect_one(
    base: AwsFactory,
    target: AccountTarget,
    *,
    clock: Any,
    progress: Progress | None,
    sleep: Callable[[float], None] | None,
    watch: AccountWatch | None = None,
) -> Collected:
    counter = watch or AccountWatch()
    aws = base.with_counter(counter)
    say = (lambda phase: progress(target.label, phase)) if progress else None
    try:
        if target.role_arn:
            if say:
                say("assuming " + target.role_arn)
            aws = aws.for_role(target.role_arn, external_id=target.external_id)
        kwargs: dict[str, Any] = {"account_id": target.account_id, "clock": clock, "progress": say}
        if sleep is not None:
            kwargs["sleep"] = sleep
        inventory = collect(aws, **kwargs)
        inventory["api_calls"] = counter.total  # the assume-role call counts too
        inventory["api_calls_by_operation"] = dict(counter.by_operation)
        return target, inventory, counter.total, None
    except AccountAbandoned:
        return target, None, counter.total, "abandoned"  # the coordinator no longer listens
    except CollectError as exc:
        return target, None, counter.total, str(exc)
    except (ClientError, BotoCoreError) as exc:
        what = f"assuming {target.role_arn}" if target.role_arn else "reading the account"
        message = describe_aws_error(exc, what)
        if target.role_arn and is_access_denied(exc):
            # AssumeRole needs both halves: our permission and the member role's trust. The trust
            # policy is the usual culprit (a role made before the bot, or by another stack).
            message += (
                f" Most often the member role's trust policy does not admit the bot's role: "
                f"add the bot's role ARN as a Principal of {target.role_arn}'s trust policy."
            )
        return target, None, counter.total, message
    except Exception as exc:  # one broken account must not stop the others
        log.exception("scanning %s failed", target.label)
        return target, None, counter.total, f"scanning failed: {type(exc).__name__}"


def human_duration(seconds: float) -> str:
    """``300`` → "5 min", ``2`` → "2 s", ``5400`` → "90 min"."""
    seconds = round(seconds)
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def _timed_out(watch: AccountWatch, limit: float, what: str = "") -> str:
    operation = watch.operation
    reading = f" reading {operation}" if operation else " between AWS requests"
    return f"timed out after {human_duration(limit)}{reading}{what}"


def collect_with_deadlines(
    targets: list[AccountTarget],
    read: Callable[[AccountTarget, AccountWatch], Collected],
    *,
    workers: int,
    account_timeout: float,
    scan_timeout: float,
    on_done: Callable[[Collected], None],
) -> None:
    """Read each target in its own daemon thread (at most ``workers`` at a time) and hand each
    result to ``on_done`` in this thread as soon as it arrives. A target past ``account_timeout``
    (or still unread at ``scan_timeout``) is handed over as failed, "timed out after …", and
    abandoned: its thread's further requests fail at once and its late result is dropped."""
    results: queue.SimpleQueue[tuple[int, Collected]] = queue.SimpleQueue()
    pending = list(enumerate(targets))
    pending.reverse()
    running: dict[int, tuple[AccountTarget, AccountWatch, float]] = {}
    scan_deadline = time.monotonic() + scan_timeout

    def start(index: int, target: AccountTarget) -> None:
        watch = AccountWatch()
        running[index] = (target, watch, time.monotonic() + account_timeout)
        threading.Thread(
            target=lambda: results.put((index, read(target, watch))), name=f"scan-{index}", daemon=True
        ).start()

    def give_up(index: int, error: str) -> None:
        target, watch, _ = running.pop(index)
        watch.abandoned.set()
        on_done((target, None, watch.total, error))

    while pending or running:
        while pending and len(running) < workers:
            start(*pending.pop())
        deadline = min(min(d for _, _, d in running.values()), scan_deadline)
        try:
            index, collected = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            if now >= scan_deadline:
                for index in list(running):
                    give_up(
                        index,
                        _timed_out(
                            running[index][1],
                            scan_timeout,
                            f" (the scan's {human_duration(scan_timeout)} deadline)",
                        ),
                    )
                for _, target in reversed(pending):
                    on_done(
                        (
                            target,
                            None,
                            0,
                            f"not read: the scan's {human_duration(scan_timeout)} deadline passed",
                        )
                    )
                return
            for index, (_, watch, account_deadline) in list(running.items()):
                if now >= account_deadline:
                    give_up(index, _timed_out(watch, account_timeout))
            continue
        if index in running:  # else: a late result of an abandoned account, never stored
            del running[index]
            on_done(collected)


def _identity_map(
    services: Any, inventories: dict[str, Inventory], unavailable: str | None = None
) -> Owners | None:
    """``bot.identity.IdentityMap`` when that module exists and someone is known; else None."""
    try:
        identity = importlib.import_module("bot.identity")
    except ModuleNotFoundError:
        return None
    try:
        owners = identity.IdentityMap.build(services.config, services.store, inventories)
        owners.unavailable = unavailable
        return owners
    except Exception:  # owners are a nicety: a broken directory must not fail the scan
        log.exception("building the identity map failed; findings will have no owner")
        return None


def _own_principal(aws: AwsFactory) -> list[str]:
    """The bot's own ARN, so its findings are recognised as by design (none when unknown)."""
    try:
        return [aws.client("sts", counter=CallCounter()).get_caller_identity()["Arn"]]
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "could not tell the bot's own principal: %s", describe_aws_error(exc, "GetCallerIdentity")
        )
        return []


def _directory_for_scan(services: Any, directory: Any) -> Any:
    """Refresh a stale Slack directory first (``bot.identity.directory_for_scan``); None if absent."""
    try:
        identity = importlib.import_module("bot.identity")
        return identity.directory_for_scan(services, directory)
    except ModuleNotFoundError:
        return None
    except Exception:  # a broken directory must not fail the scan; the checks say "could not evaluate"
        log.exception("preparing the Slack directory failed")
        return None


def scan_accounts(
    services: Any,
    *,
    progress: Progress | None = None,
    targets: list[AccountTarget] | None = None,
    sleep: Callable[[float], None] | None = None,
    directory: Any = None,
) -> list[AccountScan]:
    """Scan every configured account concurrently; store each snapshot; return one result per account.

    A failed account is stored as a snapshot with status "failed" and its error, and returned with
    ``error`` set; the others complete. Findings carry owners when ``bot.identity`` can tell.
    ``directory`` reads Slack's ``users.list`` (the bot's WebClient): a stale directory is refreshed
    before the checks run; without one the cached directory is used, and ``directory_note`` says why
    ownership could not be evaluated when it could not.
    """
    try:
        scans = _scan_accounts(services, progress=progress, targets=targets, sleep=sleep, directory=directory)
        apply_retention(services.store, services.config.scan, now=services.clock.now())
        return scans
    finally:
        clear_scan_memo()  # memory stays flat across the scans of a long-running bot


def _scan_accounts(
    services: Any,
    *,
    progress: Progress | None,
    targets: list[AccountTarget] | None,
    sleep: Callable[[float], None] | None,
    directory: Any,
) -> list[AccountScan]:
    config: Config = services.config
    now = services.clock.now()
    if targets is None:
        try:
            targets = account_targets(services.aws, config)
        except (ClientError, BotoCoreError) as exc:
            error = describe_aws_error(exc, "listing the organization's accounts")
            return [AccountScan(account_id="", snapshot_id=None, findings=[], api_calls=0, error=error)]
    workers = max(1, min(config.scan.max_workers, len(targets)))
    known_accounts = {t.account_id for t in targets if t.account_id}
    results: list[tuple[AccountTarget, AccountScan]] = []
    shared: dict[str, Any] = {}  # the bot's own principal and the directory: once, at the first success

    def store(collected: Collected) -> None:
        """One account done (or given up): its snapshot is stored now, not at the end of the scan."""
        target, inventory, calls, error = collected
        if inventory is None:
            results.append((target, _store_failed(services, target, calls, error, now, progress)))
            return
        if not shared:
            shared["own"] = _own_principal(services.aws)
            prepared = _directory_for_scan(services, directory)
            shared["unavailable"] = prepared.unavailable if prepared else None
            shared["note"] = prepared.note if prepared else None
        account_id = inventory["account_id"]
        owners = _identity_map(services, {account_id: inventory}, shared["unavailable"])
        if progress:
            progress(target.label, "checks")
        own = [*shared["own"], *([target.role_arn] if target.role_arn else [])]
        job = (inventory, config, now, owners, known_accounts | {account_id}, own)
        if pool is not None:
            pool.submit(job, lambda checked: finish(target, inventory, calls, checked))
            return
        finish(target, inventory, calls, _checks_job(job))

    def finish(target: AccountTarget, inventory: Inventory, calls: int, checked: CheckedAccount) -> None:
        account_id = inventory["account_id"]
        snapshot_id = save_snapshot(
            services.store,
            account_id=account_id,
            account_name=target.name,
            scanned_at=now,
            api_calls=calls,
            inventory=None,
            inventory_text=checked.inventory_text,
            rows=checked.rows,
        )
        if progress:
            progress(target.label, f"done: {checked.count} findings, {calls} API calls")
        scan = AccountScan(
            account_id,
            snapshot_id,
            StoredFindings(services.store, snapshot_id, checked.count),
            calls,
            None,
            target.name,
            now,
            shared["note"],
            requests_by_operation=dict(inventory.get("api_calls_by_operation") or {}),
            store=services.store,
        )
        results.append((target, scan))

    if workers > 1:
        try:
            services.aws.warm(("sts", "iam", "accessanalyzer"))
        except Exception:  # only a head start: each thread loads what it needs anyway
            log.debug("warming botocore's caches failed", exc_info=True)
    processes = check_processes(config, len(targets))
    pool = ChecksPool(processes) if processes else None
    try:
        collect_with_deadlines(
            targets,
            lambda target, watch: _collect_one(
                services.aws, target, clock=services.clock, progress=progress, sleep=sleep, watch=watch
            ),
            workers=workers,
            account_timeout=config.scan.account_timeout.total_seconds(),
            scan_timeout=config.scan.scan_timeout.total_seconds(),
            on_done=store,
        )
    finally:
        if pool is not None:
            pool.close()  # waits for the checks still running; each account is stored as it finishes
    order = {id(t): i for i, t in enumerate(targets)}
    return [scan for _, scan in sorted(results, key=lambda r: order[id(r[0])])]


def _store_failed(
    services: Any,
    target: AccountTarget,
    calls: int,
    error: str | None,
    now: datetime,
    progress: Progress | None,
) -> AccountScan:
    """A failed account: stored as a failed snapshot (never its latest good one), with the age of
    the last good snapshot, which stays the one answers use."""
    account_id = target.account_id or ""
    if progress:
        progress(target.label, "failed: " + (error or ""))
    last_good = services.store.execute(
        "SELECT scanned_at FROM snapshots WHERE account_id = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
        [account_id],
    ).fetchone()
    snapshot_id = save_snapshot(
        services.store,
        account_id=account_id,
        account_name=target.name,
        scanned_at=now,
        api_calls=calls,
        inventory=None,
        findings=[],
        status="failed",
        error=error,
    )
    last_good_at = datetime.fromisoformat(last_good[0].replace("Z", "+00:00")) if last_good else None
    return AccountScan(account_id, snapshot_id, [], calls, error, target.name, now, last_good_at=last_good_at)


# --------------------------------------------------------------------------- report


def summary_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Open (failed, unsuppressed) findings per severity, plus "unknown" and "suppressed"."""
    counts = {s.value: 0 for s in Severity} | {"unknown": 0, "suppressed": 0}
    for f in findings:
        if f.suppressed:
            counts["suppressed"] += 1
        elif f.status == FindingStatus.UNKNOWN:
            counts["unknown"] += 1
        else:
            counts[f.severity.value] += 1
    return counts


def snapshot_age(last_good_at: datetime | None, now: datetime) -> str:
    """ "last good snapshot 3 h old" / "no earlier snapshot": what answers use while an account fails."""
    if last_good_at is None:
        return "no earlier snapshot"
    minutes = max(0, int((now - last_good_at).total_seconds() // 60))
    if minutes < 60:
        age = f"{minutes} min"
    elif minutes < 48 * 60:
        age = f"{minutes // 60} h"
    else:
        age = f"{minutes // (24 * 60)} days"
    return f"last good snapshot {age} old"


def failure_text(scan: AccountScan) -> str:
    """Why the account failed and how old the snapshot answers still use is."""
    return f"{scan.error} ({snapshot_age(scan.last_good_at, scan.scanned_at or datetime.now(UTC))})"


def summary_line(scan: AccountScan) -> str:
    if scan.error:
        return f"{scan.name or scan.account_id or 'this account'}: could not be scanned: {failure_text(scan)}"
    c = summary_counts(scan.findings)
    parts = [f"{c[s.value]} {s.value}" for s in Severity if c[s.value]]
    tail = []
    if c["unknown"]:
        tail.append(f"{c['unknown']} could not evaluate")
    if c["suppressed"]:
        tail.append(f"{c['suppressed']} suppressed")
    head = ", ".join(parts) if parts else "no open findings"
    label = f"{scan.account_id}" + (f" ({scan.name})" if scan.name else "")
    return f"{label}: {head}" + (f"; {', '.join(tail)}" if tail else "") + f" · {scan.api_calls} API calls"


def _requests_by_operation(scan: AccountScan) -> dict[str, int]:
    return dict(scan.requests_by_operation)


def scan_document(scans: list[AccountScan], scanned_at: datetime) -> dict[str, Any]:
    """The findings JSON document (DESIGN.md): accounts, scanned_at, api_calls, findings.

    ``api_calls`` counts HTTP requests sent, retries included; ``api_requests_by_operation``
    breaks them down (``"iam:GetAccountAuthorizationDetails": 3``)."""
    by_operation: dict[str, int] = {}
    for s in scans:
        for operation, count in _requests_by_operation(s).items():
            by_operation[operation] = by_operation.get(operation, 0) + count
    doc: dict[str, Any] = {
        "scanned_at": iso(scanned_at),
        "api_calls": sum(s.api_calls for s in scans),
        "api_requests_by_operation": dict(sorted(by_operation.items())),
        "accounts": [
            {
                "account_id": s.account_id,
                "name": s.name,
                "snapshot_id": s.snapshot_id,
                "api_calls": s.api_calls,
                "api_requests_by_operation": dict(sorted(_requests_by_operation(s).items())),
                "status": "ok" if s.ok else "failed",
                "error": s.error,
            }
            for s in scans
        ],
        "findings": [f.public() for s in scans for f in s.findings],
    }
    if len(scans) == 1:
        doc["account_id"] = scans[0].account_id
    return doc


CSV_FIELDS = [
    "account_id",
    "check_id",
    "severity",
    "status",
    "principal_arn",
    "principal_name",
    "title",
    "detail",
    "cis",
    "owner",
    "fingerprint",
    "suppressed",
    "suppression_reason",
    "remediation",
]


def _write_csv(scans: list[AccountScan], out: Any) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for s in scans:
        for f in s.findings:
            row = f.public()
            row["cis"] = " ".join(row["cis"])
            writer.writerow(row)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_table(scans: list[AccountScan], out: Any) -> None:
    rows = []
    for s in scans:
        for f in s.findings:
            mark = (
                "suppressed"
                if f.suppressed
                else ("?unknown" if f.status == FindingStatus.UNKNOWN else f.severity.value)
            )
            rows.append(
                (mark, f.check_id, f.account_id, _clip(f.principal_name or "-", 28), _clip(f.detail, 90))
            )
    header = ("SEVERITY", "CHECK", "ACCOUNT", "PRINCIPAL", "DETAIL")
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for r in [header, *rows]:
            out.write("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] + "\n")
        out.write("\n")
    for s in scans:
        out.write(summary_line(s) + "\n")


def _stderr_progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None
    lock = threading.Lock()

    def show(account: str, phase: str) -> None:
        with lock:
            sys.stderr.write(f"\r\x1b[2K[{account}] {phase}")
            if phase.startswith(("done", "failed")):
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        metavar="SEVERITY",
        help="exit 1 when an open finding is at or above this severity (critical, high, medium, low)",
    )


@command(
    "scan",
    "Scan the configured AWS account(s) and print the findings (no Slack settings needed).",
    _scan_arguments,
)
def cmd_scan(args: argparse.Namespace) -> int:
    from bot.services import Services
    from bot.settings import load_settings

    settings = load_settings()
    import boto3

    # Checked before the database is opened: a scan that cannot start leaves nothing behind.
    if boto3.session.Session(region_name=settings.aws_region).get_credentials() is None:
        print(
            "iamwarden: no AWS credentials found (environment, AWS_PROFILE, container or instance role);"
            " nothing was scanned",
            file=sys.stderr,
        )
        return EXIT_AWS
    services = Services.from_settings(settings)
    directory = slack_client(services)  # the Slack directory, only with a token (see bot.commands)
    scans = scan_accounts(services, progress=_stderr_progress(), directory=directory)
    scanned_at = services.clock.now()
    if args.format == "json":
        # One string, one write: json.dump wrote each of ~3 million fragments of a 10,000-user
        # account's document to stdout on its own (a third of the scan's time after the checks).
        sys.stdout.write(json.dumps(scan_document(scans, scanned_at), indent=2) + "\n")
    elif args.format == "csv":
        _write_csv(scans, sys.stdout)
    else:
        _write_table(scans, sys.stdout)
    for s in scans:
        if s.error:
            print(
                f"iamwarden: {s.name or s.account_id or 'this account'}: {failure_text(s)}", file=sys.stderr
            )
    note = next((s.directory_note for s in scans if s.directory_note), None)
    if note:  # once per scan, not once per account
        print(f"iamwarden: {note}", file=sys.stderr)
    if args.fail_on:
        threshold = Severity(args.fail_on)
        if any(
            f.status == FindingStatus.FAIL and not f.suppressed and f.severity.at_least(threshold)
            for s in scans
            for f in s.findings
        ):
            return EXIT_FINDINGS
    if any(s.error for s in scans):
        return EXIT_AWS
    return EXIT_OK


def _checks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


@command(
    "checks",
    "List the catalog of checks (id, severity, CIS controls, title) without running them.",
    _checks_arguments,
)
def cmd_checks(args: argparse.Namespace) -> int:
    checks = list(iter_checks())
    if args.format == "json":
        json.dump([c.describe() for c in checks], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if args.format == "csv":
        fields = [
            "id",
            "severity",
            "cis",
            "title",
            "theme",
            "needs",
            "risk",
            "remediation_console",
            "remediation_cli",
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for c in checks:
            row = c.describe()
            remediation = row.pop("remediation")
            row.update(remediation_console=remediation["console"], remediation_cli=remediation["cli"])
            writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})
        return EXIT_OK
    width = max(len(c.id) for c in checks)
    sys.stdout.write(f"{'CHECK'.ljust(width)}  SEVERITY  CIS        TITLE\n")
    for c in checks:
        cis = ",".join(c.cis) or "-"
        sys.stdout.write(f"{c.id.ljust(width)}  {c.severity.value.ljust(8)}  {cis.ljust(9)}  {c.title}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- the demo's tour


def demo_tour(session: Any) -> None:
    """The demo (``sandbox.demo.TOUR``): ``iamwarden scan`` of the demo account, as the terminal shows it."""
    session.say("\n── The hygiene scan: `iamwarden scan` reads the demo account in a few bulk calls ──")
    [scan] = scan_accounts(session.services)
    if scan.error:
        session.say(f"  {summary_line(scan)}")
        return
    out = io.StringIO()
    _write_table([scan], out)
    lines = out.getvalue().splitlines()
    shown = [line for line in lines if line.strip()]
    for line in shown[:-1][:14]:
        session.say("  " + line)
    if len(shown) - 1 > 14:
        session.say(f"  … {len(shown) - 15} more (iamwarden scan --format json|csv has them all)")
    session.say("  " + shown[-1])
    session.say(
        f"  Stored as snapshot {scan.snapshot_id}: answers, digests and alerts read it, never AWS live."
    )
