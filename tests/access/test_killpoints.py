"""Kill points: ``iamwarden run`` SIGKILLed at each step between approval and delivery, then the
sweep on the same database (a restart, after the stuck threshold): nothing is left in between,
every grant is audited, the requester gets at most one session and the approvals message is final."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from bot.access import killpoints
from bot.access.transitions import STUCK_AFTER
from bot.clock import FrozenClock
from handlers.access.jobs import run_access_sweep
from handlers.ids import ActionId
from sandbox.slack_sender import SlackSender
from tests.access.support import APPROVALS, has_action, make_config, run_job
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.test_run import ROOT, _free_port

TIMEOUT = 60


@pytest.fixture
def clock() -> FrozenClock:
    # The killed process ran on the real clock; the restart continues from it.
    return FrozenClock()


def _toml(value: object) -> str:
    return json.dumps(value)  # strings, numbers, flat lists of strings: JSON spells them as TOML does


def _write_config(path: Path, config: dict) -> None:
    lines = ["[slack]"] + [f"{k} = {_toml(v)}" for k, v in config["slack"].items()]
    lines += ["", "[access]"] + [f"{k} = {_toml(v)}" for k, v in config["access"].items()]
    for role in config["roles"]:
        lines += ["", "[[roles]]"] + [f"{k} = {_toml(v)}" for k, v in role.items()]
    path.write_text("\n".join(lines) + "\n")


def _wait(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.mark.parametrize("step", killpoints.STEPS)
def test_sigkill_between_approval_and_delivery_leaves_nothing_stuck(
    step, slack, aws, federation, make_bot, clock, tmp_path
):
    from tests.access.support import create_role

    create_role()
    config = make_config(federation)
    db = tmp_path / "run.db"
    config_file = tmp_path / "iamwarden.toml"
    _write_config(config_file, config)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "IAMWARDEN_SLACK_API_URL": slack.base_url,
        "IAMWARDEN_PORT": str(port),
        "IAMWARDEN_HOST": "127.0.0.1",
        "IAMWARDEN_DB": str(db),
        "IAMWARDEN_CONFIG": str(config_file),
        "IAMWARDEN_TEST_PAUSE_AT": step,
    }
    env.pop("SLACK_APP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "iamwarden", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _healthy(port), "iamwarden run to serve")
        sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack=slack)
        assert sender.command("U0ALICE", "request prod-admin 2h deploy hotfix").status == 200
        message = _wait(
            lambda: next(
                (m for m in slack.messages(APPROVALS) if has_action(m, ActionId.ACCESS_APPROVE)), None
            ),
            "the approvals message",
        )
        with sqlite3.connect(db) as conn:
            (request_id,) = conn.execute("SELECT id FROM access_requests").fetchone()
        response = sender.block_action(
            "U0LEAD1", ActionId.ACCESS_APPROVE, request_id, message=message, channel_id=APPROVALS
        )
        assert response.status == 200
        marker = killpoints.marker_path(db, step)
        _wait(marker.exists, f"the pause at {step}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)

    # The restart: the same database, once the approval has been idle past the stuck threshold.
    clock.advance(STUCK_AFTER + timedelta(minutes=1))
    bot = make_bot(config, db=db)
    run_job(bot, run_access_sweep)
    clock.advance(minutes=2)  # past the delivery grace: the outbox delivers what the crash did not
    run_job(bot, run_access_sweep)

    with sqlite3.connect(db) as conn:
        states = [s for (s,) in conn.execute("SELECT state FROM access_requests")]
        grants = [k for (k,) in conn.execute("SELECT access_key_id FROM access_grants")]
        audited = [
            json.loads(d or "{}")
            for (d,) in conn.execute(
                "SELECT detail FROM audit WHERE action IN ('granted', 'grant_uncertain')"
            )
        ]
    assert states == ["granted"], states
    assert grants, "the sweep granted the approved request"
    assert audited, "every grant has a granted or grant_uncertain audit entry"
    delivered = [e for e in slack.ephemerals("U0ALICE") if e["text"].startswith("Credentials for")]
    assert len(delivered) <= 1
    for message in slack.messages(APPROVALS):
        assert not has_action(message, ActionId.ACCESS_APPROVE), "the approvals message ends final"
