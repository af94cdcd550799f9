"""The smaller defects of issue 10, each tried the way it broke: a slow Slack before the ack, an
approval after the pending timeout, an absurd duration, an approver's I'm done, formula cells in the
audit CSV."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import access
from bot.settings import Config
from handlers.ids import ActionId
from tests.access.support import (
    ask,
    click,
    has_action,
    request_and_approve,
    request_messages,
    text_of,
    the_request,
)

ROOT = Path(__file__).resolve().parents[2]


def test_request_is_acked_at_once_even_when_slack_is_slow_and_answered_after(jit):
    bot, _ = jit(role={"approvers": ["U0LEAD1"]})
    # users.info (the approver check) is rate-limited for 4 s: the old handler did it before the ack.
    bot.slack.fail_next("users.info", error="ratelimited", retry_after=4)
    started = time.monotonic()
    response = bot.command("U0ALICE", "request prod-admin 1h fix")
    assert time.monotonic() - started < 3
    assert response.status == 200 and response.json()["text"] == "Asking for approval…"
    [answer] = bot.slack.wait_for(
        "response_url", lambda c: "waiting for approval" in c.args.get("text", ""), timeout=20
    )
    assert answer.args["response_type"] == "ephemeral"
    assert the_request(bot).state == "pending"


def test_validation_mistakes_are_still_answered_in_the_ack_itself(jit):
    bot, _ = jit()
    body = bot.command("U0ALICE", "request prod-admin 3h because").json()
    assert "outside that" in body["text"]
    assert bot.slack.calls_to("response_url") == []


def test_an_approval_after_the_pending_timeout_is_refused_even_before_the_sweep(jit, clock):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    clock.advance(minutes=61)  # the sweep has not run
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    assert "already expired" in answer.args["text"]
    assert sts.calls == [] and access.get_request(bot.services, request.id).state == "expired"
    assert "Expired" in text_of(request_messages(bot)[0])
    assert "expired" in [r["action"] for r in bot.store.audit_rows()]


@pytest.mark.parametrize("duration", ["99999999999h", "99999999999d", "999999999999999999999s"])
def test_an_absurd_duration_gets_a_clear_answer_not_a_crash(jit, duration):
    bot, _ = jit()
    body = ask(bot, "U0ALICE", f"request prod-admin {duration} fix")
    assert "too long" in body["text"] or "outside that" in body["text"]
    assert "failed on our side" not in body["text"]
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 0


def test_an_absurd_max_duration_in_the_config_is_a_one_line_error():
    with pytest.raises(ValueError, match="far too long"):
        Config.model_validate(
            {
                "roles": [
                    {"name": "r", "arn": "arn:aws:iam::123456789012:role/r", "max_duration": "99999999999h"}
                ]
            }
        )


def test_an_approver_clicking_im_done_is_audited_as_who_really_ended_it(jit):
    bot, _ = jit()
    request, _ = request_and_approve(bot)
    click(bot, "U0LEAD1", ActionId.ACCESS_DONE, request.id)
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1" and "ended" in c.args["text"]
    )
    [revoked] = [r for r in bot.store.audit_rows() if r["action"] == "revoked"]
    assert revoked["actor"] == "U0LEAD1"
    assert "requester is done" not in revoked["reason"] and "U0LEAD1" in revoked["reason"]
    ended = access.get_request(bot.services, request.id)
    assert ended.ended_by == "U0LEAD1"
    assert "revoked by <@U0LEAD1>" in text_of(request_messages(bot)[0])


def test_audit_csv_defuses_cells_a_spreadsheet_would_run(jit):
    bot, _ = jit()
    reasons = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR"]
    for i, reason in enumerate(reasons):
        bot.store.audit("requested", actor=f"U{i}", at=bot.services.clock.now(), reason=reason)
    result = subprocess.run(
        [sys.executable, "-m", "iamwarden", "audit", "--format", "csv"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "IAMWARDEN_DB": str(bot.services.settings.db)},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # Bytes, decoded without newline translation: the CR case must stay a CR.
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode(), newline="")))
    assert [r["reason"] for r in rows] == ["'" + r for r in reasons]


def test_only_the_requester_can_withdraw_a_pending_request(jit):
    bot, _ = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h deploy hotfix")
    request = the_request(bot)
    click(bot, "U0BOB", ActionId.ACCESS_WITHDRAW, request.id)
    bot.slack.wait_for(
        "chat.postEphemeral",
        lambda c: (
            c.args.get("user") == "U0BOB" and "Only the requester can withdraw" in c.args.get("text", "")
        ),
    )
    assert access.get_request(bot.services, request.id).state == "pending"
    assert any(has_action(m, ActionId.ACCESS_APPROVE) for m in request_messages(bot))
    assert not [row for row in bot.store.execute("SELECT action FROM audit WHERE action = 'withdrawn'")]

    click(bot, "U0ALICE", ActionId.ACCESS_WITHDRAW, request.id)
    bot.slack.wait_for("chat.update", lambda c: "Withdrawn by the requester" in str(c.args.get("blocks")))
    assert access.get_request(bot.services, request.id).state == "withdrawn"
    assert not any(has_action(m, ActionId.ACCESS_APPROVE) for m in request_messages(bot))
