"""Benchmark a full hygiene scan of one large account: API calls, wall time, peak memory.

Run by hand: ``.venv/bin/python -m bench.scan [USERS] [ROLES]`` (defaults 2000 and 500), or
``.venv/bin/python -m bench.scan --org ACCOUNTS [USERS] [ROLES]`` (defaults 50 and 20) for an
organization of member accounts (``main_org``).

A child process runs moto's server with a seeded account (USERS IAM users with console passwords,
MFA on some, one or two access keys aged over the last year, groups, admin, inline and direct
policies; ROLES roles with same-account, service and cross-account trust, admin and inline
policies, last-used dates) plus the local Access Analyzer stand-in. The parent process is the
scanner alone, so its figures are the scan's: ``bot.scan.scan_accounts`` collects the snapshot
over HTTP, runs every check, and stores snapshot and findings in a fresh SQLite file.

Targets (issue 3): at most 20 API calls for the account, plus pagination pages; under 5 s wall;
under 300 MB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox.aws import DUMMY_ENV

ACCOUNT_ID = "123456789012"
NOW = datetime.now(UTC).replace(microsecond=0)
AWS = "arn:aws:iam::aws:policy/"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(action, resource="*") -> dict:  # noqa: ANN001
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def _trust(principal: dict) -> str:
    return _doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


def seed(sandbox, users: int, roles: int, account_id: str = ACCOUNT_ID) -> None:  # noqa: ANN001
    """Create the account straight in moto's backend (seeding over HTTP would take minutes)."""
    from moto.iam.models import AccessKeyLastUsed

    from sandbox.aws import RootAccount

    rng = random.Random(7)
    b = sandbox.iam_backend(account_id)
    b.update_account_password_policy(
        allow_change_password=True,
        hard_expiry=False,
        max_password_age=0,
        minimum_password_length=8,
        password_reuse_prevention=0,
        require_lowercase_characters=False,
        require_numbers=False,
        require_symbols=False,
        require_uppercase_characters=False,
    )
    custom = {
        "legacy-admin": _doc(_allow("*")),
        "deploy": _doc(_allow(["lambda:*", "iam:PassRole"])),
        "data-read": _doc(_allow(["s3:GetObject", "s3:ListBucket"], "arn:aws:s3:::data/*")),
        "policy-editor": _doc(_allow("iam:CreatePolicyVersion")),
    }
    arns = {}
    for name, document in custom.items():
        arns[name] = b.create_policy("", "/", document, name, []).arn
    groups = {
        "admins": [AWS + "AdministratorAccess"],
        "developers": [AWS + "ReadOnlyAccess", arns["deploy"]],
        "analysts": [arns["data-read"]],
        "support": [AWS + "AWSSupportAccess"],
    }
    for group, policies in groups.items():
        b.create_group(group, "/")
        for arn in policies:
            b.attach_group_policy(arn, group)
    b.put_group_policy("developers", "ops", _doc(_allow(["ec2:StartInstances", "ec2:StopInstances"])))
    group_names = list(groups)

    def ago(days: float) -> datetime:
        return NOW - timedelta(days=days, seconds=rng.randint(0, 3600))

    for i in range(users):
        name = f"user-{i:04d}"
        user = b.create_user("us-east-1", name, "/", [{"Key": "email", "Value": f"{name}@example.com"}])
        user.create_date = ago(rng.uniform(30, 900))
        b.add_user_to_group(group_names[0] if i % 50 == 0 else rng.choice(group_names[1:]), name)
        if rng.random() < 0.6:
            b.create_login_profile(name, "Passw0rd!Passw0rd")
            user.password_last_used = ago(rng.uniform(0, 120)) if rng.random() < 0.9 else None
            if rng.random() < 0.5:
                device = b.create_virtual_mfa_device(name, "/")
                b.enable_mfa_device(name, device.serial_number, "123456", "654321")
        for _ in range(2 if rng.random() < 0.05 else (1 if rng.random() < 0.7 else 0)):
            key = b.create_access_key(name)
            key.create_date = ago(rng.uniform(1, 400))
            if rng.random() < 0.85:
                key.last_used = AccessKeyLastUsed(
                    timestamp=ago(rng.uniform(0, 200)), service="s3", region="us-east-1"
                )
        if rng.random() < 0.1:
            b.put_user_policy(name, "own-s3", _doc(_allow("s3:PutObject", f"arn:aws:s3:::home/{name}/*")))
        if rng.random() < 0.05:
            b.attach_user_policy(AWS + "SecurityAudit", name)
        if i % 400 == 7:
            b.attach_user_policy(arns["policy-editor"], name)

    trusts = [
        _trust({"AWS": f"arn:aws:iam::{account_id}:root"}),
        _trust({"Service": "lambda.amazonaws.com"}),
        _trust({"AWS": "arn:aws:iam::999988887777:root"}),
    ]
    for i in range(roles):
        name = f"role-{i:04d}"
        role = b.create_role(name, trusts[i % 3] if i % 10 else trusts[0], "/", None, "", [], None)
        if i % 25 == 0:
            b.attach_role_policy(AWS + "AdministratorAccess", name)
        elif i % 3 == 1:
            b.put_role_policy(name, "work", _doc(_allow(["s3:*", "dynamodb:GetItem"])))
        else:
            b.attach_role_policy(AWS + "ReadOnlyAccess", name)
        role.create_date = ago(rng.uniform(30, 700))
        if rng.random() < 0.8:
            role.last_used = ago(rng.uniform(0, 200))
            role.last_used_region = "us-east-1"
    sandbox.set_root(RootAccount(mfa_active=True, password_last_used=ago(40)), account_id=account_id)


def serve(users: int, roles: int) -> None:
    """Child: moto + Access Analyzer stand-in, seeded; prints the endpoints, then waits for stdin EOF."""
    from sandbox.access_analyzer import AccessAnalyzerStub
    from sandbox.aws import MotoSandbox

    sandbox = MotoSandbox().start()
    analyzer = AccessAnalyzerStub(page_size=100).start()
    arn = analyzer.add_analyzer("account")
    for i in range(0, roles, 50):
        analyzer.add_finding(arn, f"arn:aws:iam::{ACCOUNT_ID}:role/role-{i:04d}")
    started = time.monotonic()
    seed(sandbox, users, roles)
    print(
        json.dumps(
            {"moto": sandbox.endpoint_url, "analyzer": analyzer.url, "seed_s": time.monotonic() - started}
        )
    )
    sys.stdout.flush()
    sys.stdin.read()
    analyzer.stop()
    sandbox.stop()


def serve_org(accounts: int, users: int, roles: int, latency: float = 0.0) -> None:
    """Child: moto with an organization of ACCOUNTS members, each seeded with USERS users and ROLES
    roles, behind a recording proxy (``bench.replay``); prints the endpoints, then obeys stdin
    ("replay", "misses") until EOF."""
    from moto.organizations.models import organizations_backends

    from sandbox.access_analyzer import AccessAnalyzerStub
    from sandbox.aws import MotoSandbox

    sandbox = MotoSandbox().start()
    analyzer = AccessAnalyzerStub(page_size=100).start()
    analyzer.add_analyzer("account")
    started = time.monotonic()
    org = organizations_backends[ACCOUNT_ID]["aws"]
    org.create_organization(region="us-east-1", FeatureSet="ALL")
    members = []
    for i in range(accounts):
        created = org.create_account(AccountName=f"member-{i:04d}", Email=f"member-{i:04d}@example.com")
        members.append(created["CreateAccountStatus"]["AccountId"])
        seed(sandbox, users, roles, members[-1])
    from bench.replay import RecordReplayProxy

    recorder = RecordReplayProxy(sandbox.endpoint_url, latency=latency).start()
    endpoints = {
        "moto": sandbox.endpoint_url,
        "recorder": recorder.url,
        "analyzer": analyzer.url,
        "members": members,
    }
    print(json.dumps({**endpoints, "seed_s": time.monotonic() - started}))
    sys.stdout.flush()
    for line in sys.stdin:  # "replay": answer from the recording from now on; EOF: stop
        if line.strip() == "replay":
            recorder.replay()
            print(json.dumps({"replaying": len(recorder.answers)}), flush=True)
        elif line.strip() == "misses":
            print(json.dumps({"misses": recorder.misses}), flush=True)
    recorder.stop()
    analyzer.stop()
    sandbox.stop()


def serve_child(users: int, roles: int) -> subprocess.Popen:
    """A child process serving moto seeded with one account of USERS users and ROLES roles; its
    first line of output is the endpoints (JSON), and it stops when its stdin closes."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.scan", "--serve", str(users), str(roles)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **DUMMY_ENV, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        cwd=Path(__file__).resolve().parents[1],
    )


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers_cpu() -> float:
    """CPU of the scanner's finished child processes (the checks' workers, stopped after each scan)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _db_bytes(path: Path) -> int:
    """The database's size with its write-ahead log (not yet checkpointed into the file)."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _scan_figures(label: str, scans: list, wall: float, cpu: float, server_cpu: float, server: str) -> None:
    failed = [s for s in scans if s.error]
    print(f"\n--- {label}")
    print(f"accounts scanned: {len(scans)} ({len(failed)} failed)")
    for scan in failed[:5]:
        print(f"  failed {scan.account_id}: {scan.error}")
    print(f"API calls: {sum(s.api_calls for s in scans)}; findings: {sum(len(s.findings) for s in scans)}")
    print(f"wall time: {wall:.2f} s (collect + checks + store, every account)")
    print(f"scanner CPU: {cpu:.2f} s in all, {cpu / max(len(scans), 1) * 1000:.0f} ms per account")
    print(f"{server} CPU (the other process, serving the same scan): {server_cpu:.2f} s")


def main_org(
    accounts: int,
    users: int = 50,
    roles: int = 20,
    stalled: int = 0,
    account_timeout: float | None = None,
    replay: bool = False,
    latency: float = 0.0,
    workers: int | None = None,
) -> int:
    """``python -m bench.scan --org 100 [USERS] [ROLES]``: a full scan of an organization of ACCOUNTS
    member accounts (plus the management account) on one moto server: wall time, the scanner's total
    CPU and CPU per account, moto's CPU beside it, and the database size with retention applied.
    ``--replay`` scans again against the recording of the first scan (``bench.replay``): the
    scanner's own cost, without moto's. Target (issue 18): 100 accounts in <= 15 s on a 2-core
    machine, 1,000 in < 2 min."""
    env = {**os.environ, **DUMMY_ENV, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    print(
        f"seeding moto with {accounts} member accounts x {users} users / {roles} roles (child)...", flush=True
    )
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.scan",
            "--serve-org",
            str(accounts),
            str(users),
            str(roles),
            str(latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    status = 0
    try:
        endpoints = json.loads(child.stdout.readline())
        print(f"seeded in {endpoints['seed_s']:.1f} s")
        os.environ.update(DUMMY_ENV)
        os.environ["AWS_ENDPOINT_URL_ACCESSANALYZER"] = endpoints["analyzer"]

        from bot.clock import FrozenClock
        from bot.policy import ActionCatalog
        from bot.scan import AccountTarget, scan_accounts
        from bot.services import Services
        from bot.settings import Config, load_settings

        ActionCatalog.default()  # loaded once per process at start-up; not part of a scan
        workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-org-"))
        scan_config: dict = {} if account_timeout is None else {"account_timeout": account_timeout}
        if workers is not None:
            scan_config["max_workers"] = workers
        config = Config.model_validate({"organizations": {"enabled": True}, "scan": scan_config})
        timeout = config.scan.account_timeout.total_seconds()
        # Past ~200 accounts moto's ListAccounts takes longer than the read timeout (its CPU, not the
        # bot's), so the members are given as targets, exactly as ListAccounts would name them.
        role = config.organizations.audit_role_name
        targets = [AccountTarget(ACCOUNT_ID, "management")] + [
            AccountTarget(member, "", f"arn:aws:iam::{member}:role/{role}") for member in endpoints["members"]
        ]

        def run(name: str, endpoint: str) -> tuple[list, float]:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            settings = load_settings(db=workdir / f"bench-{name}.db", config=config)
            services = Services.from_settings(settings, clock=FrozenClock(NOW))
            cpu_before, server_before = time.process_time(), _cpu_of(child.pid)
            workers_before = _workers_cpu()
            started = time.perf_counter()
            scans = scan_accounts(services, targets=targets)
            wall = time.perf_counter() - started
            cpu, server_cpu = time.process_time() - cpu_before, _cpu_of(child.pid) - server_before
            workers_cpu = _workers_cpu() - workers_before
            if workers_cpu:
                print(f"\n(the checks' worker processes: {workers_cpu:.2f} s of CPU, included below)")
            return scans, wall, cpu + workers_cpu, server_cpu

        scans, wall, cpu, moto_cpu = run("moto", endpoints["recorder"])
        _scan_figures(
            f"against moto (workers {config.scan.max_workers}, account_timeout {timeout:g} s)",
            scans,
            wall,
            cpu,
            moto_cpu,
            "moto",
        )
        print(f"database {_db_bytes(workdir / 'bench-moto.db') / 1e6:.1f} MB")
        status = 1 if any(s.error for s in scans) and not stalled else 0
        if replay:
            child.stdin.write("replay\n")
            child.stdin.flush()
            recorded = json.loads(child.stdout.readline())["replaying"]
            scans, wall, cpu, replay_cpu = run("replay", endpoints["recorder"])
            _scan_figures(
                f"against the recording of that scan ({recorded} distinct requests, "
                f"{latency * 1000:g} ms a request): the scanner's own cost",
                scans,
                wall,
                cpu,
                replay_cpu,
                "replayer",
            )
            child.stdin.write("misses\n")
            child.stdin.flush()
            print(f"requests not in the recording: {json.loads(child.stdout.readline())['misses']}")
        if stalled:
            from tests.aws_stubs import StallingProxy

            proxy = StallingProxy(endpoints["moto"]).start()
            walls = {}
            for k in (0, stalled):  # both through the proxy (in this process), so they compare
                proxy.stall(endpoints["members"][0] if k else None, "iam" if k else None)
                scans, walls[k], cpu, moto_cpu = run(f"stalled-{k}", proxy.url)
                _scan_figures(
                    f"{k} stalled account(s), through the StallingProxy",
                    scans,
                    walls[k],
                    cpu,
                    moto_cpu,
                    "moto",
                )
            proxy.stop()
            print(
                f"stalled run minus 0-stalled run: {walls[stalled] - walls[0]:+.2f} s (target <= {timeout:g} s)"
            )
            status = 1 if len([s for s in scans if s.error]) != stalled else 0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nmax RSS of the scanner: {rss:.0f} MB")
    finally:
        child.stdin.close()
        child.wait(timeout=120)
    return status


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scan",
        description="Benchmark iamwarden's hygiene scan against a seeded moto server (run by hand).",
    )
    parser.add_argument(
        "users", nargs="?", type=int, help="IAM users per account (default 2000; 50 with --org)"
    )
    parser.add_argument(
        "roles", nargs="?", type=int, help="IAM roles per account (default 500; 20 with --org)"
    )
    parser.add_argument(
        "--org", type=int, metavar="ACCOUNTS", help="scan an organization of ACCOUNTS members"
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="iamwarden scan (process start to exit) vs the bare collection at 200/50, 2,000/500 and "
        "10,000/2,000, or at USERS ROLES when given (bench/cost.py)",
    )
    parser.add_argument(
        "--stalled",
        type=int,
        default=0,
        choices=(0, 1),
        help="with --org: also run with one account's IAM held by a stalling proxy",
    )
    parser.add_argument(
        "--account-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --org: [scan] account_timeout (default: the setting's default; 10 with --stalled)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="with --org: [scan] max_workers (default: the setting's)"
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="with --org: scan again against the recording of the first scan (the scanner without moto's CPU)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --replay: seconds each replayed request takes (a stand-in for the network)",
    )
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve(int(argv[1]), int(argv[2]))
        return 0
    if argv[:1] == ["--serve-org"]:
        serve_org(int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4]) if len(argv) > 4 else 0.0)
        return 0
    args = _arguments().parse_args(argv)
    if args.cost:
        from bench.cost import SIZES, main_cost

        return main_cost(((args.users, args.roles or 500),) if args.users else SIZES)
    if args.org is not None:
        timeout = (
            args.account_timeout if args.account_timeout is not None else (10.0 if args.stalled else None)
        )
        return main_org(
            args.org,
            args.users or 50,
            args.roles or 20,
            stalled=args.stalled,
            account_timeout=timeout,
            replay=args.replay,
            latency=args.latency,
            workers=args.workers,
        )
    argv = [str(a) for a in (args.users, args.roles) if a is not None]
    users = int(argv[0]) if argv else 2000
    roles = int(argv[1]) if len(argv) > 1 else 500
    print(f"seeding moto with {users} users and {roles} roles (child process)…", flush=True)
    child = serve_child(users, roles)
    try:
        endpoints = json.loads(child.stdout.readline())
        print(f"seeded in {endpoints['seed_s']:.1f} s")
        os.environ.update(DUMMY_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoints["moto"]
        os.environ["AWS_ENDPOINT_URL_ACCESSANALYZER"] = endpoints["analyzer"]

        from bot.clock import FrozenClock
        from bot.policy import ActionCatalog
        from bot.scan import AccountTarget, scan_accounts, summary_line
        from bot.services import Services
        from bot.settings import Config, load_settings

        ActionCatalog.default()  # loaded once per process at start-up; not part of a scan
        workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-"))
        settings = load_settings(db=workdir / "bench.db", config=Config())
        services = Services.from_settings(settings, clock=FrozenClock(NOW))
        phases: list[tuple[float, str]] = []
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        [scan] = scan_accounts(
            services,
            targets=[AccountTarget(ACCOUNT_ID, "bench")],
            progress=lambda account, phase: phases.append((time.perf_counter(), phase)),
        )
        wall = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # A second scan under tracemalloc for the Python heap's peak (tracemalloc slows it down).
        tracemalloc.start()
        scan_accounts(services, targets=[AccountTarget(ACCOUNT_ID, "bench")])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        child.stdin.close()
        child.wait(timeout=60)

    if scan.error:
        print("scan failed:", scan.error)
        return 1
    inv = scan.inventory
    print(
        f"\naccount: {len(inv['users'])} users, {len(inv['roles'])} roles, {len(inv['groups'])} groups, "
        f"{len(inv['policies'])} policies in the snapshot"
    )
    print(f"API calls: {scan.api_calls}")
    for operation, count in sorted(inv.get("api_calls_by_operation", {}).items()):
        print(f"  {count:3d}  {operation}")
    print(f"wall time: {wall:.2f} s (collect + checks + store; moto's own XML rendering included)")
    for (moment, phase), (end, _) in zip(phases, [*phases[1:], (started + wall, "")], strict=True):
        print(f"  {end - moment:6.2f} s  {phase}")
    print(
        f"peak memory: {peak / 1e6:.0f} MB Python heap during a scan (tracemalloc); max RSS of the scanner "
        f"process {rss:.0f} MB ({rss_before:.0f} MB before the scan, with the IAM action catalog loaded)"
    )
    print(f"findings: {len(scan.findings)}")
    print(summary_line(scan))
    counts = Counter(f.check_id for f in scan.findings)
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
