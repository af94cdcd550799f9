"""Benchmark ``/iam whoami-risks`` in HTTP mode over a 2,000-user snapshot.

Run by hand: ``.venv/bin/python -m bench.queries [REQUESTS] [USERS]`` (defaults 500, 2000).

A synthetic account of USERS IAM users (each tagged with a Slack member's email, in groups, with
console passwords, MFA on some and aged access keys in the credential report) is run through the
real check catalog (``bot.scan.run_checks``) and stored as the latest snapshot; the Slack directory
is cached once by the directory job (``users.list``, paginated). Then REQUESTS correctly signed
``/iam whoami-risks`` commands from random members go to the bot over HTTP, one after another, and
the script prints the time to response (p50/p99/max), the Web API calls and the AWS calls made while
answering (the target is zero of both: answers come from the snapshot, in the ack).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.aws import DUMMY_ENV

# Nothing here may reach AWS: dummy credentials, and an endpoint nobody listens on.
os.environ.update(DUMMY_ENV)
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"

from bot import identity, queries  # noqa: E402
from bot.clock import FrozenClock  # noqa: E402
from bot.findings import save_snapshot  # noqa: E402
from bot.scan import run_checks  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.settings import Config, load_settings  # noqa: E402
from iamwarden.app import Health, HttpServer, build_app, build_client, wsgi_app  # noqa: E402
from sandbox.slack_api import FakeSlack  # noqa: E402
from sandbox.slack_sender import SlackSender  # noqa: E402

ACCOUNT = "123456789012"
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
SIGNING_SECRET = "bench-signing-secret"  # noqa: S105 - the local stand-in's
TOKEN = "xoxb-bench"  # noqa: S105
_DATE = "%Y-%m-%dT%H:%M:%S+00:00"

POLICIES = {
    "admins": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    "developers": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": ["s3:Get*", "s3:List*", "ec2:Describe*"],
                "Resource": "*",
            }
        ],
    },
    "deployers": {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Deploy", "Effect": "Allow", "Action": ["lambda:*", "iam:PassRole"], "Resource": "*"}
        ],
    },
}


def synthetic_inventory(users: int, rng: random.Random) -> dict[str, Any]:
    """An inventory in the collector's shape (GAAD lists + credential report rows)."""
    groups = [
        {
            "GroupName": name,
            "GroupId": f"AGPA{i:016d}",
            "Arn": f"arn:aws:iam::{ACCOUNT}:group/{name}",
            "Path": "/",
            "GroupPolicyList": [{"PolicyName": f"{name}-inline", "PolicyDocument": doc}],
            "AttachedManagedPolicies": [],
        }
        for i, (name, doc) in enumerate(POLICIES.items())
    ]
    user_list, rows = [], []
    for i in range(users):
        name = f"user{i:05d}"
        group = "admins" if i % 50 == 0 else ("deployers" if i % 7 == 0 else "developers")
        created = NOW - timedelta(days=rng.randint(30, 900))
        user_list.append(
            {
                "UserName": name,
                "UserId": f"AIDA{i:016d}",
                "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
                "Path": "/",
                "CreateDate": created.strftime(_DATE),
                "GroupList": [group],
                "UserPolicyList": [],
                "AttachedManagedPolicies": [],
                "Tags": [{"Key": "email", "Value": f"{name}@example.com"}],
            }
        )
        console = i % 3 != 0
        key_age = rng.randint(1, 400)
        key_used = rng.choice([None, rng.randint(0, 200)])
        rows.append(
            {
                "user": name,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
                "user_creation_time": created.strftime(_DATE),
                "password_enabled": "true" if console else "false",
                "password_last_used": (NOW - timedelta(days=rng.randint(0, 120))).strftime(_DATE)
                if console
                else "N/A",
                "password_last_changed": created.strftime(_DATE) if console else "N/A",
                "password_next_rotation": "N/A",
                "mfa_active": "true" if i % 4 else "false",
                "access_key_1_active": "true",
                "access_key_1_last_rotated": (NOW - timedelta(days=key_age)).strftime(_DATE),
                "access_key_1_last_used_date": (NOW - timedelta(days=key_used)).strftime(_DATE)
                if key_used is not None
                else "N/A",
                "access_key_1_last_used_region": "us-east-1" if key_used is not None else "N/A",
                "access_key_1_last_used_service": "s3" if key_used is not None else "N/A",
                "access_key_2_active": "false",
                "access_key_2_last_rotated": "N/A",
                "access_key_2_last_used_date": "N/A",
                "access_key_2_last_used_region": "N/A",
                "access_key_2_last_used_service": "N/A",
                "cert_1_active": "false",
                "cert_1_last_rotated": "N/A",
                "cert_2_active": "false",
                "cert_2_last_rotated": "N/A",
            }
        )
    return {
        "account_id": ACCOUNT,
        "collected_at": NOW.strftime(_DATE),
        "credential_report": rows,
        "users": user_list,
        "groups": groups,
        "roles": [],
        "policies": [],
        "password_policy": {"MinimumPasswordLength": 14, "PasswordReusePrevention": 24},
        "account_summary": {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0},
        "virtual_mfa_devices": [],
        "server_certificates": [],
        "saml_providers": [],
        "oidc_providers": [],
        "access_analyzer": {"analyzers": [], "findings": []},
        "unknown_sources": [],
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main(requests: int = 500, users: int = 2000) -> None:
    rng = random.Random(7)
    workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-queries-"))
    clock = FrozenClock(NOW)
    slack = FakeSlack(bot_token=TOKEN).start()
    server = None
    try:
        for i in range(users):
            slack.add_user(f"U{i:07d}", name=f"user{i:05d}", email=f"user{i:05d}@example.com")
        settings = load_settings(
            slack_bot_token=TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.base_url,
            db=workdir / "iamwarden.db",
            config=Config.model_validate({"slack": {"security_team": ["U0SEC"]}}),
        )
        services = Services.from_settings(settings, clock=clock)

        started = time.perf_counter()
        inventory = synthetic_inventory(users, rng)
        findings = run_checks(inventory, services.config, now=NOW)
        save_snapshot(
            services.store,
            account_id=ACCOUNT,
            scanned_at=NOW,
            api_calls=0,
            inventory=inventory,
            findings=findings,
        )
        setup_s = time.perf_counter() - started
        size_mb = len(json.dumps(inventory)) / 1e6

        before = len(slack.calls)
        members = identity.refresh_directory(services, build_client(services)).stored
        directory_calls = len(slack.calls) - before

        app = build_app(services)
        server = HttpServer(wsgi_app(app, Health(services)), threads=8).start()
        sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET, fake_slack=slack)

        started = time.perf_counter()
        first = sender.command("U0000001", "whoami-risks")
        cold_ms = (time.perf_counter() - started) * 1000
        assert first.status == 200, first.body

        calls_before = len(slack.calls)
        aws_before = services.aws.counter.total
        latencies: list[float] = []
        answered_with_findings = 0
        for _ in range(requests):
            user = f"U{rng.randrange(users):07d}"
            t0 = time.perf_counter()
            response = sender.command(user, "whoami-risks")
            latencies.append((time.perf_counter() - t0) * 1000)
            body = response.json() or {}
            assert response.status == 200 and body.get("response_type") == "ephemeral", response.body
            answered_with_findings += "open IAM finding" in body.get("text", "")
        web_api_calls = len(slack.calls) - calls_before
        aws_calls = services.aws.counter.total - aws_before

        print(f"snapshot: {users} users, {len(findings)} findings, inventory {size_mb:.1f} MB JSON")
        print(
            f"setup (checks + store): {setup_s:.1f} s; directory: {members} members in {directory_calls} users.list calls"
        )
        print(f"first request (parses the snapshot once): {cold_ms:.0f} ms")
        print(
            f"{requests} signed /iam whoami-risks over HTTP: p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms"
        )
        print(f"members with open findings: {answered_with_findings}/{requests}")
        print(f"Web API calls while answering: {web_api_calls}")
        print(
            f"AWS API calls while answering: {aws_calls} (AwsFactory counter total {services.aws.counter.total})"
        )
        book = queries.current_book(services)
        for action in ("iam:PassRole", "s3:GetObject"):
            t0 = time.perf_counter()
            result = queries.who_can(book, action)
            took = (time.perf_counter() - t0) * 1000
            print(
                f"who-can {action} over {result.evaluated} principals: {took:.0f} ms ({len(result.allowed)} allowed)"
            )
        t0 = time.perf_counter()
        sender.command("U0000002", "who-can lambda:CreateFunction")
        slack.wait_for("response_url", timeout=60)
        print(
            f"/iam who-can over HTTP, ack to answer via response_url: {(time.perf_counter() - t0) * 1000:.0f} ms"
        )
        assert services.aws.counter.total == 0
        assert aws_calls == 0 and services.aws.counter.total == 0, "the answer path must never call AWS"
        assert web_api_calls == 0, "answers go back in the ack"
    finally:
        if server is not None:
            server.stop()
        slack.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
