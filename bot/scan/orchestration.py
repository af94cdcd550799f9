"""The hygiene scan: collect each account's snapshot, run the catalog, store snapshot and findings.

``scan_accounts`` reads every configured account concurrently (each in its own daemon thread, at
most ``[scan] max_workers`` at a time) and stores each account's snapshot as soon as it is read; one
account that cannot be read, or not within ``[scan] account_timeout``, is reported (a failed
snapshot row and ``AccountScan.error``) while the others complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFactory, CallCounter, describe_aws_error
from bot.checks.catalog import Owners, clear_scan_memo
from bot.findings import Finding, StoredFindings, apply_retention, save_snapshot, snapshot_inventory
from bot.identity import IdentityMap, directory_for_scan
from bot.inventory import Inventory
from bot.scan.accounts import (
    AccountTarget,
    Collected,
    Progress,
    account_targets,
    collect_account,
    collect_with_deadlines,
)
from bot.scan.pool import CheckedAccount, ChecksPool, check_processes, checks_job
from bot.settings import Config

log = logging.getLogger(__name__)


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
    # The stored findings rows (``finding_rows``), kept only when the caller asked
    # (``scan_accounts(keep_rows=True)``: the CLI's one-account document); else None.
    kept_rows: list[tuple] | None = field(default=None, repr=False, compare=False)

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


def _identity_map(
    services: Any, inventories: dict[str, Inventory], unavailable: str | None = None
) -> Owners | None:
    """``bot.identity.IdentityMap`` when someone is known; else None."""
    try:
        owners = IdentityMap.build(services.config, services.store, inventories)
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
    """Refresh a stale Slack directory first (``bot.identity.directory_for_scan``); None if it failed."""
    try:
        return directory_for_scan(services, directory)
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
    keep_rows: bool = False,
) -> list[AccountScan]:
    """Scan every configured account concurrently; store each snapshot; return one result per account.

    A failed account is stored as a snapshot with status "failed" and its error, and returned with
    ``error`` set; the others complete. Findings carry owners when ``bot.identity`` can tell.
    ``directory`` reads Slack's ``users.list`` (the bot's WebClient): a stale directory is refreshed
    before the checks run; without one the cached directory is used, and ``directory_note`` says why
    ownership could not be evaluated when it could not.

    Each result's ``findings`` are read back from the store when iterated (a long-running bot holds
    none). ``keep_rows`` also keeps each account's stored rows (``AccountScan.kept_rows``), so a
    short-lived caller (the CLI's one-account document) builds its output without reading them back.
    """
    try:
        scans = _scan_accounts(
            services,
            progress=progress,
            targets=targets,
            sleep=sleep,
            directory=directory,
            keep_rows=keep_rows,
        )
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
    keep_rows: bool,
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
        finish(target, inventory, calls, checks_job(job))

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
            kept_rows=checked.rows if keep_rows else None,
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
            lambda target, watch: collect_account(
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
