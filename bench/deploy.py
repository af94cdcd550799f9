"""``python -m bench.deploy``: how long ``iamwarden check`` takes against moto and the local Slack
server (the whole command as a user runs it: process start, imports, every probe), and the
policy documents' action counts per feature. Noisy on a shared machine: run it twice."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from bot.permissions import FEATURE_POLICIES
from sandbox.aws import MotoSandbox
from sandbox.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5


def main() -> int:
    for feature, policy in FEATURE_POLICIES.items():
        print(f"{policy.file}: {len(policy.actions)} actions ({feature})")
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # moto's request log
    with tempfile.TemporaryDirectory() as tmp, MotoSandbox(load_managed_policies=False) as aws:
        slack = FakeSlack(bot_token="xoxb-bench").start()
        try:
            env = {**os.environ, **aws.env()}
            os.environ.update(aws.env())
            trust = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
            }
            boto3.client("iam").create_role(RoleName="prod-admin", AssumeRolePolicyDocument=json.dumps(trust))
            config = Path(tmp) / "iamwarden.toml"
            config.write_text(
                '[slack]\napprovals_channel = "C0APPROVALS"\nsecurity_channel = "C0SECURITY"\n'
                'security_team = ["U0SEC1"]\n[[roles]]\nname = "prod-admin"\n'
                'arn = "arn:aws:iam::123456789012:role/prod-admin"\napprovers = ["U0LEAD1"]\n'
            )
            env.update(
                SLACK_BOT_TOKEN="xoxb-bench",
                IAMWARDEN_SLACK_API_URL=slack.base_url,
                IAMWARDEN_CONFIG=str(config),
                IAMWARDEN_DB=str(Path(tmp) / "iamwarden.db"),
            )
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "iamwarden", "check"],
                    env=env,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                times.append(time.perf_counter() - started)
                assert result.returncode == 0, result.stdout + result.stderr
            print(
                f"iamwarden check (whole process, {RUNS} runs): median {statistics.median(times):.2f} s, max {max(times):.2f} s"
            )
            print("its own figure: " + result.stdout.strip().splitlines()[-1])
        finally:
            slack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
