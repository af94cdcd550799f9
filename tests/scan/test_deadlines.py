"""Deadlines: a slow account never holds the scan; a failed account says how old its last good
snapshot is; an abandoned account's late requests fail unsent."""

from __future__ import annotations

import json
import re

import pytest

from bot.findings import latest_snapshots
from bot.scan import scan_accounts
from tests.scan.support import create_organization, scan_threads_done, services_for
from tests.scan_helpers import ACCOUNT_ID

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


@pytest.mark.parametrize(
    ("hold", "operation"),
    [
        ("iam", r"(GetAccountAuthorizationDetails|GenerateCredentialReport|GetAccountSummary|\w+)"),
        ("assume", "AssumeRole"),
    ],
    ids=["iam-calls-stalled", "assume-role-stalled"],
)
def test_a_stalled_account_times_out_and_the_others_are_stored_without_waiting(
    aws, clock, tmp_path, stalling_proxy, hold, operation
):
    import time

    members = create_organization(3)
    slow = members[1]
    config = {"organizations": {"enabled": True}, "scan": {"account_timeout": "2s"}}
    services = services_for(tmp_path, clock, config)
    first = {r.account_id: r for r in scan_accounts(services, sleep=lambda s: None)}
    assert all(r.error is None for r in first.values())
    clock.advance(hours=3)

    stalling_proxy.stall(slow, hold)
    stored_before_the_slow_one_failed: list[int] = []

    def progress(account: str, phase: str) -> None:
        if phase.startswith("failed"):  # what is stored while the slow account is still being waited for
            row = services.store.execute("SELECT count(*) FROM snapshots WHERE status = 'ok'").fetchone()
            stored_before_the_slow_one_failed.append(row[0])

    started = time.monotonic()
    results = {r.account_id: r for r in scan_accounts(services, progress=progress, sleep=lambda s: None)}
    elapsed = time.monotonic() - started
    # The three fast accounts were stored as each finished, before the slow one's deadline.
    assert stored_before_the_slow_one_failed == [len(first) + 3]

    assert stalling_proxy.held.is_set()
    assert elapsed < 2 + 30, elapsed  # the deadline plus a generous margin, not the stall's 120 s
    timed_out = results[slow]
    assert re.fullmatch(rf"timed out after 2 s reading {operation}", timed_out.error), timed_out.error
    if hold == "iam":
        assert timed_out.error != "timed out after 2 s reading AssumeRole"
    others = set(results) - {slow}
    assert others == {ACCOUNT_ID, *members} - {slow}
    assert all(results[a].error is None for a in others)
    # Rows in SQLite: the others' new snapshots, the slow one's failure; its previous snapshot is
    # still the latest good one (what answers use), and the failure names its age.
    good = {s["account_id"]: s["id"] for s in latest_snapshots(services.store)}
    assert good[slow] == first[slow].snapshot_id
    assert all(good[a] == results[a].snapshot_id for a in others)
    newest = {s["account_id"]: s for s in latest_snapshots(services.store, status=None)}
    assert newest[slow]["status"] == "failed" and newest[slow]["error"] == timed_out.error
    from bot.scan import summary_line

    assert summary_line(timed_out).endswith(f"{timed_out.error} (last good snapshot 3 h old)")

    # Released, the abandoned thread's further requests fail at once and nothing late is stored.
    count = services.store.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    stalling_proxy.release.set()
    scan_threads_done()
    assert services.store.execute("SELECT count(*) FROM snapshots").fetchone()[0] == count


def test_a_failed_account_with_no_earlier_snapshot_says_so(aws, clock, tmp_path, stalling_proxy):
    from bot.scan import summary_line
    from handlers.queries import scan_result_message

    [slow] = create_organization(1)
    stalling_proxy.stall(slow, "assume")
    config = {"organizations": {"enabled": True}, "scan": {"account_timeout": 2}}
    results = {
        r.account_id: r for r in scan_accounts(services_for(tmp_path, clock, config), sleep=lambda s: None)
    }
    assert results[ACCOUNT_ID].error is None
    assert summary_line(results[slow]).endswith(
        "timed out after 2 s reading AssumeRole (no earlier snapshot)"
    )
    message = json.dumps(scan_result_message(list(results.values())).blocks)
    assert "timed out after 2 s reading AssumeRole (no earlier snapshot)" in message


def test_the_scan_deadline_fails_the_account_in_flight_and_those_never_started():
    import threading

    from bot.scan import AccountTarget, collect_with_deadlines

    stuck, done = threading.Event(), []
    targets = [AccountTarget("111111111111"), AccountTarget("222222222222"), AccountTarget("333333333333")]

    def read(target, watch):
        stuck.wait(60)  # the first account never answers within the scan's deadline
        return target, {"account_id": target.account_id}, 0, None

    try:
        collect_with_deadlines(
            targets, read, workers=1, account_timeout=600, scan_timeout=1, on_done=done.append
        )
    finally:
        stuck.set()
    assert [(t.account_id, inventory, error) for t, inventory, _, error in done] == [
        ("111111111111", None, "timed out after 1 s between AWS requests (the scan's 1 s deadline)"),
        ("222222222222", None, "not read: the scan's 1 s deadline passed"),
        ("333333333333", None, "not read: the scan's 1 s deadline passed"),
    ]


def test_an_abandoned_accounts_next_request_fails_unsent_and_leaves_nothing_in_flight(aws):
    from bot.aws import AwsFactory
    from bot.scan import AccountAbandoned, AccountWatch

    watch = AccountWatch()
    iam = AwsFactory().with_counter(watch).client("iam")
    iam.list_users()
    assert watch.total == 1 and watch.operation is None
    watch.abandoned.set()
    with pytest.raises(AccountAbandoned):
        iam.list_users()
    assert watch.total == 1  # refused before it was sent (and counted)
    assert watch.operation is None  # after-call-error cleared it
