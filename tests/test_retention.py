"""Snapshot retention: the newest ``keep_snapshots`` per account plus one a week for ``keep_weekly_days``,
never an account's latest (successful) snapshot nor one a digest diffs against; the file gives the space
back (incremental vacuum), and an old database without auto_vacuum is converted once."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from bot.clock import FrozenClock
from bot.digest import build_digest
from bot.findings import (
    Finding,
    Severity,
    latest_findings,
    latest_snapshots,
    prune_snapshots,
    save_snapshot,
)
from bot.scan import scan_accounts
from bot.store import Store, iso
from tests.scan.support import services_for

START = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # a Monday: ISO week k holds days 7k … 7k+6
ACCOUNTS = ("111111111111", "222222222222")
CHANNEL = "C0SECURITY"
PADDING = "x" * 40_000  # an inventory big enough that pruning frees pages


def finding(account_id: str, name: str) -> Finding:
    return Finding(
        check_id="MFA_DISABLED",
        severity=Severity.HIGH,
        account_id=account_id,
        principal_arn=f"arn:aws:iam::{account_id}:user/{name}",
        principal_name=name,
        title="MFA disabled",
        detail=f"{name} has no MFA",
        remediation="enable it",
    )


def store_history(store: Store, clock: FrozenClock) -> dict[tuple[str, int], int]:
    """30 scans of two accounts, one every 2 days (days 0 … 58); the second account's scans fail from
    day 40 on. Returns the snapshot id of each (account, day)."""
    ids: dict[tuple[str, int], int] = {}
    for day in range(0, 60, 2):
        clock.set(START + timedelta(days=day))
        for account in ACCOUNTS:
            failed = account == ACCOUNTS[1] and day >= 40
            ids[(account, day)] = save_snapshot(
                store,
                account_id=account,
                scanned_at=clock.now(),
                api_calls=3,
                inventory=None if failed else {"account_id": account, "padding": PADDING},
                findings=[] if failed else [finding(account, "always"), finding(account, f"day{day}")],
                status="failed" if failed else "ok",
                error="AccessDenied" if failed else None,
            )
    return ids


def record_digest(store: Store, snapshots: dict[str, int], at: datetime) -> None:
    store.db["digests"].insert(
        {
            "channel": CHANNEL,
            "slot": iso(at),
            "posted_at": iso(at),
            "ts": "1.0",
            "snapshots": json.dumps(snapshots),
        }
    )


def remaining(store: Store, ids: dict[tuple[str, int], int], account: str) -> set[int]:
    present = {row[0] for row in store.execute("SELECT id FROM snapshots WHERE account_id = ?", [account])}
    return {day for (acc, day), sid in ids.items() if acc == account and sid in present}


def pages(store: Store) -> tuple[int, int]:
    return (
        store.execute("PRAGMA page_count").fetchone()[0],
        store.execute("PRAGMA freelist_count").fetchone()[0],
    )


def test_prune_keeps_exactly_the_newest_the_weekly_and_the_referenced(tmp_path: Path):
    store = Store(tmp_path / "iamwarden.db")
    clock = FrozenClock(START)
    ids = store_history(store, clock)
    # An older digest (history only) and the channel's newest one, which the next digest diffs against.
    record_digest(store, {ACCOUNTS[0]: ids[(ACCOUNTS[0], 2)]}, START + timedelta(days=3))
    record_digest(
        store,
        {ACCOUNTS[0]: ids[(ACCOUNTS[0], 20)], ACCOUNTS[1]: ids[(ACCOUNTS[1], 10)]},
        START + timedelta(days=21),
    )
    before_findings = {f.fingerprint for f in latest_findings(store)}
    before_pages, _ = pages(store)
    assert store.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # a new database is incremental

    deleted = prune_snapshots(store, keep=5, weekly_days=28, now=clock.now())

    # Account 1: the newest 5 (50 … 58), the newest of each week since day 30 (34, 40, 48, 54, 58) and
    # the snapshot the newest digest names (20); not day 2, which only an older digest named.
    assert remaining(store, ids, ACCOUNTS[0]) == {20, 34, 40, 48, 50, 52, 54, 56, 58}
    # Account 2: the newest 5 are failures; its newest successful scan (38) stays (answers read it),
    # weekly counts successful scans only (34, 38), and the digest's baseline (10) stays.
    assert remaining(store, ids, ACCOUNTS[1]) == {10, 34, 38, 50, 52, 54, 56, 58}
    assert deleted == 60 - 9 - 8
    # The findings of deleted snapshots went with them (no orphans).
    assert not store.execute(
        "SELECT count(*) FROM findings WHERE snapshot_id NOT IN (SELECT id FROM snapshots)"
    ).fetchone()[0]

    # Answers read the same latest snapshots and findings as before.
    assert {s["account_id"]: s["id"] for s in latest_snapshots(store)} == {
        ACCOUNTS[0]: ids[(ACCOUNTS[0], 58)],
        ACCOUNTS[1]: ids[(ACCOUNTS[1], 38)],
    }
    assert {f.fingerprint for f in latest_findings(store)} == before_findings
    # The digest still diffs against its baseline: day 58 against day 20 for account 1.
    digest = build_digest(store, channel=CHANNEL, now=clock.now())
    first = next(a for a in digest.accounts if a.account_id == ACCOUNTS[0])
    assert (
        first.snapshot_id == ids[(ACCOUNTS[0], 58)] and first.previous_snapshot_id == ids[(ACCOUNTS[0], 20)]
    )
    assert [f.principal_name for f in first.new] == ["day58"]
    assert [r.finding.principal_name for r in first.resolved] == ["day20"]
    second = next(a for a in digest.accounts if a.account_id == ACCOUNTS[1])
    assert second.previous_snapshot_id == ids[(ACCOUNTS[1], 10)]

    # The space went back to the file system: fewer pages, none left on the free list.
    after_pages, free = pages(store)
    assert free == 0 and after_pages < before_pages * 0.5, (before_pages, after_pages)
    assert (tmp_path / "iamwarden.db").stat().st_size == after_pages * store.execute(
        "PRAGMA page_size"
    ).fetchone()[0]

    # Pruning again deletes nothing (the kept set is stable).
    assert prune_snapshots(store, keep=5, weekly_days=28, now=clock.now()) == 0


def test_the_latest_snapshot_survives_the_smallest_retention(tmp_path: Path):
    store = Store(tmp_path / "iamwarden.db")
    clock = FrozenClock(START)
    ids = store_history(store, clock)
    clock.advance(days=400)  # long after the last scan: nothing is within the weekly window
    prune_snapshots(store, keep=1, weekly_days=0, now=clock.now())
    assert remaining(store, ids, ACCOUNTS[0]) == {58}
    assert remaining(store, ids, ACCOUNTS[1]) == {38, 58}  # the newest, and the newest successful


def test_an_old_database_without_auto_vacuum_is_converted_once(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as an older release left it: auto_vacuum NONE, tables exist
        conn.execute("CREATE TABLE legacy (x)")
    store = Store(path)
    assert store.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    clock = FrozenClock(START)
    store_history(store, clock)
    before_pages, _ = pages(store)

    prune_snapshots(store, keep=2, weekly_days=0, now=clock.now())
    assert store.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    converted = store.get_kv("auto_vacuum_converted_at")
    assert converted == iso(clock.now())
    after_pages, free = pages(store)
    assert free == 0 and after_pages < before_pages * 0.5

    # Later prunes use the incremental vacuum: the conversion is not repeated.
    clock.advance(days=2)
    save_snapshot(
        store, account_id=ACCOUNTS[0], scanned_at=clock.now(), api_calls=1, inventory={}, findings=[]
    )
    assert prune_snapshots(store, keep=2, weekly_days=0, now=clock.now()) == 1
    assert store.get_kv("auto_vacuum_converted_at") == converted
    assert Store(path).execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def test_each_scan_prunes_with_the_configured_retention(aws, clock, tmp_path: Path):
    boto3.client("iam").create_user(UserName="alice")
    services = services_for(tmp_path, clock, {"scan": {"keep_snapshots": 2, "keep_weekly_days": 0}})
    stored = []
    for _ in range(4):
        [result] = scan_accounts(services, sleep=lambda s: None)
        stored.append(result.snapshot_id)
        clock.advance(days=1)
    assert [row[0] for row in services.store.execute("SELECT id FROM snapshots ORDER BY id")] == stored[-2:]
    assert {s["id"] for s in latest_snapshots(services.store)} == {stored[-1]}
