"""`iamwarden run` as a user starts it: a real process in HTTP mode, verified over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.slack_sender import SlackSender
from tests.conftest import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_serves_healthz_and_signed_commands_in_http_mode(slack, aws, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "IAMWARDEN_SLACK_API_URL": slack.base_url,
        "IAMWARDEN_PORT": str(port),
        "IAMWARDEN_HOST": "127.0.0.1",
        "IAMWARDEN_DB": str(tmp_path / "run.db"),
        "IAMWARDEN_LOG_LEVEL": "DEBUG",
    }
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
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    health = json.loads(resp.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert health == {"db": "ok", "scheduler": "running", "status": "ok"}
        # The token was verified against Slack (auth.test) at start-up.
        assert slack.calls_to("auth.test")
        sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack=slack)
        body = sender.command("U0ALICE", "help").json()
        assert "/iam help" in json.dumps(body)
        assert sender.send_raw(b"command=%2Fiam&text=help", signature="v0=bad").status == 401
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    # Secrets never reach the log, even at DEBUG.
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output
