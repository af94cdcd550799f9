"""Benchmark just-in-time access: request → approve → credentials over the real parts.

Run by hand: ``.venv/bin/python -m bench.access [REQUESTS] [CLICKERS]``. The bot runs in HTTP mode
on loopback with moto (STS, IAM) and the local Slack stand-in; each request is approved by CLICKERS
signed Approve clicks fired at the same moment (two approvers, double-clicking). Prints the
click-to-credentials latency (p50/p95/max), AssumeRole calls per grant (must be exactly 1), and the
AWS and Slack Web API calls one grant costs; then every grant revoked at once on the one role
(time, and how many denies moto's inline policy holds) and, with Slack answering 503 to every write
during an approval, the time from Slack recovering to the requester's "access is granted" DM.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3

from bot.access.model import REVOCATION_POLICY_NAME
from bot.access.revocation import denied_identities
from bot.access.sessions import source_identity
from bot.clock import FrozenClock
from bot.services import Services
from bot.settings import Config, load_settings
from bot.store import iso
from handlers.access.jobs import run_access_sweep
from handlers.ids import ActionId
from iamwarden.app import Health, HttpServer, build_app, build_client, wsgi_app
from sandbox.aws import MotoSandbox
from sandbox.federation import FederationStandIn
from sandbox.slack_api import FakeSlack
from sandbox.slack_sender import SlackSender

ACCOUNT = "123456789012"


def revoke_concurrently(services: Services, sender: SlackSender, slack: FakeSlack, rows, by_request) -> None:
    """Every granted request revoked at the same moment (one Revoke click each, all on one role):
    the time until every request is revoked, and whether the role's inline policy denies them all."""
    barrier = threading.Barrier(len(rows))

    def fire(rid: str) -> None:
        barrier.wait()
        sender.block_action("U0LEAD1", ActionId.ACCESS_REVOKE, rid, message=by_request[rid])

    threads = [threading.Thread(target=fire, args=(rid,)) for rid, _ in rows]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # Revoked in SQLite, and every role's policy written (the last writer may still be at AWS).
        left = services.store.execute(
            "SELECT (SELECT count(*) FROM access_requests WHERE state != 'revoked') + (SELECT count(*) FROM "
            "access_revocation_docs WHERE written_version < version AND (last_error IS NULL OR writer IS NOT NULL))"
        ).fetchone()[0]
        if not left:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    policy = boto3.client("iam", region_name="us-east-1").get_role_policy(
        RoleName="prod-admin", PolicyName=REVOCATION_POLICY_NAME
    )["PolicyDocument"]
    denied = denied_identities(policy)
    present = sum(source_identity(requester) in denied for _, requester in rows)
    print(
        f"concurrent revocations    {len(rows)} on one role in {elapsed * 1000:.0f} ms · "
        f"denies in the policy {present}/{len(rows)}"
    )


WRITES = ("chat.postEphemeral", "chat.postMessage", "chat.update")


def recover_delivery(services: Services, sender: SlackSender, slack: FakeSlack, clock: FrozenClock) -> None:
    """Slack answers 503 to every write while a request is approved; then it recovers and the sweep
    runs: the time from the recovery to the requester's "access is granted" DM."""
    user = "U0RECOVER"
    slack.add_user(user, name="recover")
    assert sender.command(user, "request prod-admin 1h outage").status == 200
    slack.wait_for("chat.postMessage", lambda c: "U0RECOVER" in json.dumps(c.args), timeout=30)
    (rid,) = services.store.execute("SELECT id FROM access_requests WHERE requester = ?", [user]).fetchone()
    message = next(m for m in slack.messages("C0APPROVALS") if rid in json.dumps(m["blocks"]))
    slack.fail_for(3600, error="service_unavailable", status=503, methods=WRITES)
    sender.block_action("U0LEAD1", ActionId.ACCESS_APPROVE, rid, message=message)
    deadline = time.monotonic() + 60
    while not services.store.execute(
        "SELECT 1 FROM access_outbox WHERE request_id = ? AND kind = 'deliver' AND done_at IS NULL "
        "AND due_at <= ?",
        [rid, iso(clock.now())],
    ).fetchone():
        assert time.monotonic() < deadline, "the delivery never failed"
        time.sleep(0.02)
    slack.fail_for(0)
    t0 = time.perf_counter()
    clock.advance(minutes=1)  # the outbox's backoff, as the next sweep would find it
    run_access_sweep(services, build_client(services))
    slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.status == 200
            and c.args.get("channel") in (user, "D" + user[1:])
            and "granted" in c.args.get("text", "")
        ),
        timeout=30,
    )
    print(
        f"Slack recovered → DM      {(time.perf_counter() - t0) * 1000:.0f} ms (one sweep after the recovery)"
    )


def main(requests: int = 50, clickers: int = 6) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    sandbox = MotoSandbox(load_managed_policies=False).start()
    sandbox.apply_env()
    slack = FakeSlack().start()
    federation = FederationStandIn().start()
    workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-access-"))
    server = None
    try:
        for user in ("U0LEAD1", "U0LEAD2"):
            slack.add_user(user, name=user.lower())
        requesters = [f"U{i:07d}" for i in range(requests)]
        for user in requesters:
            slack.add_user(user, name=user.lower())
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        boto3.client("iam", region_name="us-east-1").create_role(
            RoleName="prod-admin", AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=7200
        )
        config = Config.model_validate(
            {
                "slack": {"approvals_channel": "C0APPROVALS", "security_channel": "C0SECURITY"},
                "access": {"federation_url": federation.url},
                "roles": [
                    {
                        "name": "prod-admin",
                        "arn": f"arn:aws:iam::{ACCOUNT}:role/prod-admin",
                        "max_duration": "2h",
                        "approvers": ["U0LEAD1", "U0LEAD2"],
                    }
                ],
            }
        )
        settings = load_settings(
            slack_bot_token="xoxb-testing",
            slack_signing_secret="bench",
            slack_api_url=slack.base_url,
            db=workdir / "bench.db",
            config=config,
        )
        clock = FrozenClock()
        services = Services.from_settings(settings, clock=clock)
        assume_calls: list[str] = []
        services.aws.session.events.register(
            "before-parameter-build.sts.AssumeRole",
            lambda params, **_: assume_calls.append(params["RoleArn"]),
        )
        server = HttpServer(wsgi_app(build_app(services), Health(services)), threads=16).start()
        sender = SlackSender(server.url + "/slack/events", "bench", fake_slack=slack)

        acks: list[float] = []
        for user in requesters:
            t0 = time.perf_counter()
            assert sender.command(user, "request prod-admin 1h benchmark").status == 200
            acks.append(time.perf_counter() - t0)
        acks.sort()
        # Requests are posted after the ack (the command answers at once): wait for every message.
        slack.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == "C0APPROVALS",
            count=len(requesters),
            timeout=60,
        )
        rows = services.store.execute("SELECT id, requester FROM access_requests ORDER BY rowid").fetchall()
        messages = {m["ts"]: m for m in slack.messages("C0APPROVALS")}
        by_request = {
            rid: next(m for m in messages.values() if rid in json.dumps(m["blocks"])) for rid, _ in rows
        }

        latencies: list[float] = []
        aws_before, slack_before = services.aws.counter.total, len(slack.calls)
        started = time.perf_counter()
        for request_id, requester in rows:
            barrier = threading.Barrier(clickers)
            message = by_request[request_id]

            def fire(user: str, rid: str = request_id, msg: dict = message, gate=barrier) -> None:
                gate.wait()
                sender.block_action(user, ActionId.ACCESS_APPROVE, rid, message=msg)

            t0 = time.perf_counter()
            threads = [
                threading.Thread(target=fire, args=("U0LEAD1" if i % 2 else "U0LEAD2",))
                for i in range(clickers)
            ]
            for t in threads:
                t.start()
            slack.wait_for(
                "chat.postEphemeral",
                lambda c, who=requester: (
                    c.args.get("user") == who and c.args.get("text", "").startswith("Credentials")
                ),
                timeout=30,
            )
            latencies.append(time.perf_counter() - t0)
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # let the losing clicks' answers land before counting calls
        granted = services.store.execute(
            "SELECT count(*) FROM access_requests WHERE state = 'granted'"
        ).fetchone()[0]
        aws_calls = services.aws.counter.total - aws_before
        slack_calls = len(slack.calls) - slack_before
        latencies.sort()
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(
            f"/iam request answered     p50 {statistics.median(acks) * 1000:.0f} ms · max {acks[-1] * 1000:.0f} ms "
            "(in the ack; Slack allows 3 s)"
        )
        print(f"requests approved         {requests} ({clickers} simultaneous clicks each)")
        print(f"granted                   {granted}")
        print(
            f"AssumeRole calls          {len(assume_calls)} ({len(assume_calls) / max(granted, 1):.2f} per grant)"
        )
        print(
            f"click → credentials       p50 {statistics.median(latencies) * 1000:.0f} ms · "
            f"p95 {p95 * 1000:.0f} ms · max {latencies[-1] * 1000:.0f} ms"
        )
        print(
            f"throughput                {requests / elapsed:.1f} grants/s (serial requests, concurrent clicks)"
        )
        print(f"AWS calls per grant       {aws_calls / max(granted, 1):.1f}")
        print(
            f"Slack calls per grant     {slack_calls / max(granted, 1):.1f} (incl. answers to losing clicks)"
        )
        revoke_concurrently(services, sender, slack, rows, by_request)
        recover_delivery(services, sender, slack, clock)
    finally:
        if server is not None:
            server.stop()
        federation.stop()
        slack.stop()
        sandbox.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
