"""``python -m bench.scan --cost``: the whole ``iamwarden scan`` (process start to exit) against the
bare collection it cannot do without, side by side on the same seeded moto server.

The bare collection is a process that reads what the scan reads at the least: the credential
report (generated, polled, fetched) and one filtered ``GetAccountAuthorizationDetails``, through
boto3's paginator, then exits. The scan is ``python -m iamwarden scan --format json`` with a fresh
database. Each is run ``REPEATS`` times, alternating, and the median taken; wall, CPU (user +
system, from ``wait4``) and peak RSS are the processes' own. The escalation graph's own time is
measured in this process over the inventory the scan stored.

Targets (issue 12): the scan <= 1.5x the bare collection at 2,000 users / 500 roles and <= 1.3x at
10,000 / 2,000; the graph < 1 s at 10,000 / 2,000.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3
SIZES = ((200, 50), (2000, 500), (10000, 2000))

BARE = """
import time, boto3
iam = boto3.client("iam")
while iam.generate_credential_report()["State"] != "COMPLETE":
    time.sleep(0.5)
iam.get_credential_report()
for page in iam.get_paginator("get_account_authorization_details").paginate(
    Filter=["User", "Role", "Group", "LocalManagedPolicy"], PaginationConfig={"PageSize": 1000}
):
    pass
"""


def _measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit status) of one process, start to exit."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # 1: findings failed, the scan's normal answer
        raise SystemExit(f"{argv[2]}: exit {process.returncode}: {process.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def _graph_seconds(db: Path) -> float:
    """CPU of the escalation graph built as the scan builds it (``CheckContext.escalation_graph``:
    statements filtered to the actions that matter, so principals alike share a class), policy
    parsing included."""
    from datetime import UTC, datetime

    from bot.checks.catalog import CheckContext
    from bot.policy import ActionCatalog
    from bot.settings import Config

    ActionCatalog.default()
    inventory = json.loads(sqlite3.connect(db).execute("SELECT inventory FROM snapshots").fetchone()[0])
    ctx = CheckContext(
        inventory=inventory, config=Config(), now=datetime.now(UTC), owners=None, known_accounts=frozenset()
    )
    started = time.process_time()
    ctx.escalation_graph  # noqa: B018 - built on first use
    return time.process_time() - started


def main_cost(sizes: tuple[tuple[int, int], ...] = SIZES) -> int:
    from bench.scan import DUMMY_ENV, serve_child

    print("iamwarden scan (process start to exit) vs the bare collection; medians of", REPEATS, "runs each")
    for users, roles in sizes:
        child = serve_child(users, roles)
        try:
            endpoints = json.loads(child.stdout.readline())
            workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-cost-"))
            run_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IAMWARDEN_"))}
            run_env |= {
                **DUMMY_ENV,
                "AWS_ENDPOINT_URL": endpoints["moto"],
                "AWS_ENDPOINT_URL_ACCESSANALYZER": endpoints["analyzer"],
            }
            bare, scan = [], []
            for i in range(REPEATS):
                bare.append(_measure([sys.executable, "-c", BARE], run_env))
                db = workdir / f"scan-{i}.db"
                scan.append(
                    _measure(
                        [sys.executable, "-m", "iamwarden", "scan", "--format", "json"],
                        {**run_env, "IAMWARDEN_DB": str(db)},
                    )
                )
            graph = _graph_seconds(db)
        finally:
            child.stdin.close()
            child.wait(timeout=120)

        def median(rows: list, column: int) -> float:
            return statistics.median(r[column] for r in rows)

        print(f"\n{users} users / {roles} roles (seeded in {endpoints['seed_s']:.1f} s)")
        for name, column, unit in (("wall", 0, "s"), ("CPU", 1, "s"), ("peak RSS", 2, "MB")):
            b, s = median(bare, column), median(scan, column)
            print(f"  {name:8s} bare {b:8.2f} {unit}   scan {s:8.2f} {unit}   ratio {s / b:5.2f}x")
        print(f"  escalation graph over the stored snapshot: {graph:.2f} s CPU")
    return 0
