"""The Slack directory end to end: cached before `iamwarden run` serves, refreshed by the job, one
member at a time from user_change, and read (or said to be missing) by `iamwarden scan`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from bot.findings import latest_snapshots
from sandbox.slack_sender import SlackSender
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.queries.test_queries import block_text

# --------------------------------------------------------------------------- real parts: run, scan, answers

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_alice() -> None:
    """alice: an IAM user tagged with her Slack email, console password and no MFA (a finding)."""
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="alice", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    iam.create_login_profile(UserName="alice", Password="Test-Passw0rd!")  # noqa: S106 - moto only


def _wait_healthy(port: int, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "iamwarden run exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("iamwarden run never reported healthy")


def test_fresh_run_caches_the_directory_before_healthy_and_the_first_answer_after_a_scan_links(
    slack, aws, tmp_path
):
    _seed_alice()
    port = _free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "IAMWARDEN_SLACK_API_URL": slack.base_url,
        "IAMWARDEN_PORT": str(port),
        "IAMWARDEN_HOST": "127.0.0.1",
        "IAMWARDEN_DB": str(tmp_path / "fresh.db"),
        "IAMWARDEN_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text('[slack]\nsecurity_team = ["U0SEC1"]\n')
    env.pop("SLACK_APP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "iamwarden", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_healthy(port, proc)["status"] == "ok"
        # Cached before it served: the first answer does not wait for a 5-minute job.
        assert slack.calls_to("users.list")
        sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack=slack)
        assert sender.command("U0SEC1", "scan").status == 200
        slack.wait_for("response_url", timeout=120)
        text = block_text(sender.command("U0ALICE", "whoami-risks").json())
        assert "not linked" not in text
        assert "alice" in text and "MFA" in text
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_tagged_user_links_after_a_directory_refresh_without_a_new_scan(bot, slack, aws):
    from bot.scan import scan_accounts
    from handlers.identity import refresh_directory

    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="carol", Tags=[{"Key": "email", "Value": "Carol@Example.com"}])
    iam.create_login_profile(UserName="carol", Password="Test-Passw0rd!")  # noqa: S106 - moto only
    from handlers.client import build_client

    client = build_client(bot.services)
    refresh_directory(bot.services, client)
    [scan] = scan_accounts(bot.services, sleep=lambda s: None, directory=client)
    assert scan.ok
    snapshots = [s["id"] for s in latest_snapshots(bot.store)]

    # Carol joins Slack after the scan: not linked yet, and the answer says what was looked for.
    before = block_text(bot.command("U0CAROL", "whoami-risks").json())
    assert "not linked" in before and "no email address" in before
    text = block_text(bot.command("U0ALICE", "whoami-risks").json())
    assert "not linked" in text and "alice@example.com" in text and "`email`" in text

    slack.add_user("U0CAROL", name="carol", real_name="Carol", email="carol@example.com")
    bot.services.clock.advance(hours=7)  # the directory is stale: the job refreshes it
    refresh_directory(bot.services, client)
    after = block_text(bot.command("U0CAROL", "whoami-risks").json())
    assert "not linked" not in after and "carol" in after
    assert [s["id"] for s in latest_snapshots(bot.store)] == snapshots  # no new scan
    # The answer path itself never calls Slack's directory.
    calls = len(slack.calls_to("users.list"))
    bot.command("U0CAROL", "whoami-risks")
    assert len(slack.calls_to("users.list")) == calls


def test_a_user_change_event_updates_links_on_the_next_answer(bot, slack, aws):
    """One member's change (an email fixed in Slack) shows on the next answer: no refresh, no scan."""
    from bot.scan import scan_accounts
    from handlers.client import build_client
    from handlers.identity import refresh_directory

    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="bob-iam", Tags=[{"Key": "email", "Value": "robert@example.com"}])
    client = build_client(bot.services)
    refresh_directory(bot.services, client)
    scan_accounts(bot.services, sleep=lambda s: None, directory=client)
    assert "not linked" in block_text(bot.command("U0BOB", "whoami-risks").json())
    user = slack.user("U0BOB")
    user["profile"]["email"] = "robert@example.com"
    assert bot.sender.event({"type": "user_change", "user": user}).status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = block_text(bot.command("U0BOB", "whoami-risks").json())
        if "not linked" not in text:
            break
        time.sleep(0.2)
    assert "not linked" not in text


def _cli(tmp_path: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IAMWARDEN_"))}
    env["IAMWARDEN_DB"] = str(tmp_path / "cli.db")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
    )


def _seed_dana(slack) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="dana", Tags=[{"Key": "email", "Value": "dana@example.com"}])
    iam.create_access_key(UserName="dana")
    slack.add_user("U0DANA", name="dana", real_name="Dana", email="dana@example.com", deleted=True)


def test_cli_scan_with_a_token_reads_the_directory_and_flags_the_deactivated_member(slack, aws, tmp_path):
    _seed_dana(slack)
    result = _cli(
        tmp_path,
        "scan",
        "--format",
        "json",
        env_extra={"SLACK_BOT_TOKEN": BOT_TOKEN, "IAMWARDEN_SLACK_API_URL": slack.base_url},
    )
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    offboarded = [f for f in document["findings"] if f["check_id"] == "OFFBOARDED_USER_ACTIVE"]
    assert [(f["principal_name"], f["owner"]) for f in offboarded] == [("dana", "U0DANA")]
    assert slack.calls_to("users.list")
    assert "could not be evaluated" not in result.stderr
    assert BOT_TOKEN not in result.stdout + result.stderr


def test_cli_scan_without_a_token_says_once_why_ownership_could_not_be_evaluated(slack, aws, tmp_path):
    _seed_dana(slack)
    result = _cli(tmp_path, "scan", "--format", "json")
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "could not be evaluated" in line]
    assert len(lines) == 1
    assert "SLACK_BOT_TOKEN is not set" in lines[0] and "OFFBOARDED_USER_ACTIVE" in lines[0]
    document = json.loads(result.stdout)
    ownership = [f for f in document["findings"] if f["check_id"] == "OFFBOARDED_USER_ACTIVE"]
    assert ownership and all(f["status"] == "unknown" for f in ownership)
    assert "SLACK_BOT_TOKEN is not set" in ownership[0]["detail"]
    assert not slack.calls_to("users.list")
