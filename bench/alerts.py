"""Benchmark alerts: rule evaluation + exactly-once ingest, draining SQS, paging LookupEvents.

Run by hand: ``.venv/bin/python -m bench.alerts [EVENTS]``. Prints events per second for
``bot.alerts.ingest`` on a real SQLite file, for the SQS consumer against moto's EventBridge → SQS,
and the LookupEvents poller's request count and pacing at AWS's 2 requests/second.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts import alerts, ingest, parse_eventbridge
from bot.alerts.sources import RateLimiter, consume_queue, poll_lookup_events
from bot.clock import FrozenClock
from bot.services import Services
from bot.settings import Config, load_settings
from sandbox.aws import MotoSandbox
from sandbox.cloudtrail import CloudTrailStub
from tests.alerts.support import Pipeline, event

# Roughly what a busy account's queue carries, every rule represented: windowed rules (sign-in
# failures, denied calls) do the most work per event, so they dominate the mix.
MIX = [
    ("console_login_failure", 30),
    ("unauthorized_list_users_cli", 15),
    ("unauthorized_ec2_describe_assumed_role", 5),
    ("console_login_mfa", 15),
    ("put_role_policy", 6),
    ("attach_user_policy_readonly", 6),
    ("create_access_key_self", 4),
    ("update_assume_role_policy", 3),
    ("update_assume_role_policy_external_id", 3),
    ("create_role_service_trust", 2),
    ("get_signin_token_assumed_role", 2),
    ("create_login_profile_other_user", 1),
    ("create_user_console", 1),
    ("put_event_selectors_keeps_management", 1),
    ("guardduty_update_detector_keeps_enabled", 1),
    ("start_logging", 3),
    ("console_login_root_success", 1),
    ("stop_logging", 1),
]
PER_USER = ("login_failure", "unauthorized_list_users")


def records(n: int, start: datetime) -> list[dict]:
    names = [name for name, weight in MIX for _ in range(weight)]
    rng = random.Random(7)
    out = []
    for i in range(n):
        name = rng.choice(names)
        changes = (
            {"userIdentity.userName": f"user-{rng.randrange(300)}"}
            if any(p in name for p in PER_USER)
            else {}
        )
        if "unauthorized_list_users" in name:
            changes["userIdentity.arn"] = f"arn:aws:iam::123456789012:user/{changes['userIdentity.userName']}"
        out.append(event(name, start + timedelta(seconds=i), **changes))
    return out


def services(tmp: Path, clock: FrozenClock, **alerts_cfg: object) -> Services:
    settings = load_settings(
        db=tmp / f"bench-{time.monotonic_ns()}.db",
        config=Config.model_validate({"alerts": {"sqs_wait_seconds": 0, **alerts_cfg}}),
    )
    return Services.from_settings(settings, clock=clock)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    tmp = Path(tempfile.mkdtemp(prefix="iamwarden-bench-"))
    clock = FrozenClock(datetime(2026, 11, 29, 12, 0, tzinfo=UTC))
    batch = records(n, clock.now())

    svc = services(tmp, clock)
    envelopes = [
        {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": r} for r in batch
    ]
    t0 = time.perf_counter()
    for env in envelopes:
        ingest(svc.config, svc.store, parse_eventbridge(env), source="bench", now=clock.now())
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    for env in envelopes[:500]:
        ingest(svc.config, svc.store, parse_eventbridge(env), source="bench", now=clock.now())
    dup = time.perf_counter() - t1
    print(f"ingest: {n} events in {took:.2f}s = {n / took:,.0f} events/s; {len(alerts(svc.store))} alerts")
    print(f"ingest of redelivered events: {500 / dup:,.0f} events/s (skipped by id)")

    with MotoSandbox(load_managed_policies=False) as sandbox:
        os.environ.update(sandbox.env())
        pipeline = Pipeline.create()
        m = min(n, 1000)
        pipeline.put(*batch[:m])
        svc = services(tmp, clock, queue_url=pipeline.queue_url, sqs_max_batches=10_000)
        t0 = time.perf_counter()
        report = consume_queue(svc)
        took = time.perf_counter() - t0
        print(
            f"sqs (moto): {report.received} messages received, {report.deleted} deleted in {took:.2f}s "
            f"= {report.received / took:,.0f} messages/s; queue left: {pipeline.depth()}"
        )

    stub = CloudTrailStub().start()
    os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = stub.url
    try:
        k = min(n, 500)
        stub.add(*[event("start_logging", clock.now() - timedelta(seconds=i)) for i in range(k)])
        svc = services(tmp, clock, lookup_events=True)
        t0 = time.perf_counter()
        report = poll_lookup_events(svc, limiter=RateLimiter(2.0))
        took = time.perf_counter() - t0
        gaps = [b.at - a.at for a, b in zip(stub.requests, stub.requests[1:], strict=False)]
        print(
            f"lookup events: {report.processed} events, {report.requests} requests in {took:.2f}s; "
            f"smallest gap between requests {min(gaps):.3f}s (budget 0.5s); gaps {[round(g, 2) for g in gaps]}"
        )
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
