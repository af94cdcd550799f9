"""Benchmark the directory refresh and offboarding latency.

Run by hand: ``.venv/bin/python -m bench.identity [MEMBERS] [LEAVERS]`` (defaults 20000, 10).

1. **Directory refresh**: the local Slack server holds MEMBERS members; the bot's own refresh
   (``handlers.identity.refresh_directory``: ``users.list`` paged by 200 through the production
   WebClient, stored in one SQLite transaction, offboarding sweep after) runs three times. Printed:
   seconds per refresh, pages, and how long the next answer-time identity look-up takes after the
   directory changed (the identity map is rebuilt once per directory version).
2. **user_change → revocation written**: LEAVERS members each hold a live just-in-time grant of one
   role (issued through ``bot.access`` against an in-process moto server). For each, a signed
   ``user_change`` (``deleted: true``) is posted to the bot over HTTP; printed are the time to the
   ack, the time until the role's inline revocation policy in moto denies the member's
   SourceIdentity, and the time until the one security-channel alert is posted (p50 / max).

Figures are noisy on a shared machine: re-run when one looks off.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sandbox.aws import MotoSandbox

ACCOUNT = "123456789012"
SIGNING_SECRET = "bench-signing-secret"  # noqa: S105 - the local stand-in's
TOKEN = "xoxb-bench"  # noqa: S105
ROLE = "prod-admin"


def _config() -> dict:
    return {
        "slack": {
            "approvals_channel": "C0APPROVALS",
            "security_channel": "C0SECURITY",
            "security_team": ["U0SEC"],
        },
        "roles": [
            {
                "name": ROLE,
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
                "max_duration": "2h",
                "approvers": ["U0LEAD"],
            }
        ],
    }


def main(argv: list[str]) -> int:
    member_count = int(argv[0]) if argv else 20_000
    leavers = int(argv[1]) if len(argv) > 1 else 10
    sandbox = MotoSandbox().start()
    sandbox.apply_env()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import boto3

    from bot import access
    from bot.clock import SystemClock
    from bot.identity import identity_from_store
    from bot.services import Services
    from bot.settings import Config, load_settings
    from handlers.identity import refresh_directory
    from iamwarden.app import Health, HttpServer, build_app, build_client, wsgi_app
    from sandbox.slack_api import FakeSlack
    from sandbox.slack_sender import SlackSender

    slack = FakeSlack(bot_token=TOKEN).start()
    leaver_ids = [f"U1LEAVER{i:04d}" for i in range(leavers)]
    for user_id in ("U0SEC", "U0LEAD", *leaver_ids):
        slack.add_user(user_id, name=user_id.lower(), email=f"{user_id.lower()}@example.com")
    for i in range(member_count - len(leaver_ids) - 2):
        slack.add_user(f"U2M{i:07d}", name=f"member{i}", email=f"member{i}@example.com")
    workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-identity-"))
    settings = load_settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.base_url,
        db=workdir / "bench.db",
        config=Config.model_validate(_config()),
    )
    services = Services.from_settings(settings, clock=SystemClock())
    client = build_client(services)
    try:
        # -- 1. directory refresh ------------------------------------------------------------------
        refresh_seconds, lookup_seconds = [], []
        for _ in range(3):
            before = len(slack.calls_to("users.list"))
            started = time.perf_counter()
            stored = refresh_directory(services, client)
            refresh_seconds.append(time.perf_counter() - started)
            pages = len(slack.calls_to("users.list")) - before
            started = time.perf_counter()
            identity_from_store(services.config, services.store)
            lookup_seconds.append(time.perf_counter() - started)
        print(
            f"directory refresh: {stored} members in {pages} users.list pages (limit 200): "
            f"{', '.join(f'{s:.2f}' for s in refresh_seconds)} s (3 runs; median {statistics.median(refresh_seconds):.2f} s)"
        )
        print(
            f"first identity look-up after a refresh (no snapshot): "
            f"{statistics.median(lookup_seconds) * 1000:.1f} ms median"
        )

        # -- 2. user_change → revocation ---------------------------------------------------------
        iam = boto3.client("iam", region_name="us-east-1")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                }
            ],
        }
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=7200)
        for user_id in leaver_ids:
            request = access.create_request(
                services, requester=user_id, role_name=ROLE, duration="1h", reason="bench"
            )
            access.approve(services, request.id, "U0LEAD")
            _, creds = access.grant(services, request.id)
            assert creds is not None
        app = build_app(services, client=client)
        server = HttpServer(wsgi_app(app, Health(services))).start()
        sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET, fake_slack=slack)
        acks, revoked, alerted = [], [], []
        for user_id in leaver_ids:
            slack.deactivate_user(user_id)
            alerts_before = len(slack.messages("C0SECURITY"))
            started = time.perf_counter()
            response = sender.event({"type": "user_change", "user": slack.user(user_id)})
            acks.append(time.perf_counter() - started)
            assert response.status == 200
            deadline = time.monotonic() + 30
            denied_at = None
            while time.monotonic() < deadline:
                if denied_at is None:
                    try:
                        document = iam.get_role_policy(
                            RoleName=ROLE, PolicyName=access.REVOCATION_POLICY_NAME
                        )["PolicyDocument"]
                        if user_id in access.denied_identities(document):
                            denied_at = time.perf_counter()
                    except iam.exceptions.NoSuchEntityException:
                        pass
                if denied_at is not None and len(slack.messages("C0SECURITY")) > alerts_before:
                    alerted.append(time.perf_counter() - started)
                    break
                time.sleep(0.005)
            else:
                print(f"{user_id}: not offboarded within 30 s", file=sys.stderr)
                return 1
            revoked.append(denied_at - started)
        server.stop()

        def ms(values: list[float]) -> str:
            ordered = sorted(values)
            return f"p50 {statistics.median(ordered) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"

        print(f"user_change ack ({leavers} events): {ms(acks)}")
        print(f"user_change → revocation in the role's inline policy (moto): {ms(revoked)}")
        print(f"user_change → offboarding alert posted: {ms(alerted)}")
        print(f"(at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on a shared machine: figures are noisy)")
    finally:
        slack.stop()
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
