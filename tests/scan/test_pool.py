"""The checks in worker processes: the same findings as in the scan's own process, no account lost
to a killed worker, no worker left behind by a killed scan."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.scan import scan_accounts
from tests.scan.support import ROOT, create_organization, seed_mixed_account, services_for, stored_findings
from tests.scan_helpers import ACCOUNT_ID, failed

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


def test_checks_in_worker_processes_store_exactly_what_the_scans_own_process_would(
    aws, clock, access_analyzer, tmp_path
):
    from bot.scan import PROCESS_MIN_ACCOUNTS, check_processes

    seed_mixed_account(aws, clock, access_analyzer)
    members = create_organization(PROCESS_MIN_ACCOUNTS - 1)
    (tmp_path / "inline").mkdir()
    (tmp_path / "pooled").mkdir()
    inline = services_for(
        tmp_path / "inline", clock, {"organizations": {"enabled": True}, "scan": {"check_processes": 0}}
    )
    pooled = services_for(
        tmp_path / "pooled", clock, {"organizations": {"enabled": True}, "scan": {"check_processes": 2}}
    )
    assert check_processes(inline.config, len(members) + 1) == 0
    assert check_processes(pooled.config, len(members) + 1) == 2
    assert check_processes(pooled.config, PROCESS_MIN_ACCOUNTS - 1) == 0  # a small scan stays in-process

    expected = scan_accounts(inline, sleep=lambda s: None)
    got = scan_accounts(pooled, sleep=lambda s: None)

    assert [r.account_id for r in got] == [r.account_id for r in expected]
    assert all(r.error is None for r in got) and len(got) == PROCESS_MIN_ACCOUNTS
    assert stored_findings(pooled) == stored_findings(inline)
    assert [len(r.findings) for r in got] == [len(r.findings) for r in expected]
    management = next(r for r in got if r.account_id == ACCOUNT_ID)
    assert ("ADMIN_POLICY_ATTACHED", "admins") in failed(management.findings)


def test_a_killed_checks_worker_loses_no_account(aws, clock, access_analyzer, tmp_path, monkeypatch):
    """SIGKILL the workers mid-scan: the pool breaks, its jobs run in the scan's process instead."""
    import os
    import signal

    from bot.scan import PROCESS_MIN_ACCOUNTS
    from bot.scan import orchestration as scan_module  # where scan_accounts makes its ChecksPool

    pools: list = []

    class Watched(scan_module.ChecksPool):
        def __init__(self, processes: int) -> None:
            super().__init__(processes)
            pools.append(self)

    monkeypatch.setattr(scan_module, "ChecksPool", Watched)
    seed_mixed_account(aws, clock, access_analyzer)
    create_organization(PROCESS_MIN_ACCOUNTS - 1)
    (tmp_path / "inline").mkdir()
    (tmp_path / "pooled").mkdir()
    config = {"organizations": {"enabled": True}, "scan": {"check_processes": 1, "max_workers": 1}}
    inline = services_for(tmp_path / "inline", clock, {**config, "scan": {"check_processes": 0}})
    services = services_for(tmp_path / "pooled", clock, config)
    checks_started: list[str] = []
    killed: list[int] = []

    def progress(account: str, phase: str) -> None:
        if phase == "checks":
            checks_started.append(account)
            if len(checks_started) == 3 and pools:
                for process in list(pools[0]._executor._processes.values()):  # noqa: SLF001
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)

    results = scan_accounts(services, progress=progress, sleep=lambda s: None)
    scan_accounts(inline, sleep=lambda s: None)  # the same accounts, checked in the scan's own process

    assert killed  # the workers did die mid-scan
    assert len(results) == PROCESS_MIN_ACCOUNTS and all(r.error is None for r in results)
    assert stored_findings(services) == stored_findings(inline)


def test_checks_workers_leave_when_the_scans_process_is_killed(tmp_path):
    """SIGKILL the process that owns a ChecksPool: its forkserver and workers go too, no orphans."""
    import signal
    import time

    from bot.scan import _running as _alive

    script = (
        "import os, sys, time\n"
        "from bot.scan import ChecksPool\n"
        "pool = ChecksPool(1)\n"
        "print(pool._executor.submit(os.getpid).result(), flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ.copy()
    )
    worker = int(owner.stdout.readline())
    assert worker != owner.pid and _alive(worker)
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
