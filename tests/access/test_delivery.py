"""Delivery survives Slack failing and the requester is reminded before the window ends: the local
Slack server fails for a while and recovers, the clock moves instead of sleeping."""

from __future__ import annotations

import time

from bot import access
from handlers import access as access_handlers
from handlers.ids import ActionId
from tests.access.support import (
    APPROVALS,
    ask,
    caller_identity,
    click,
    credentials_from,
    has_action,
    request_and_approve,
    request_messages,
    text_of,
    the_request,
    wait_for_credentials,
)
from tests.conftest import ACCOUNT_ID

WRITES = ("chat.postEphemeral", "chat.postMessage", "chat.update")


def wait_until_delivery_failed(bot, request_id: str) -> None:
    """The click's thread made the delivery item due now: its attempt is over (polls SQLite state)."""
    deadline = time.monotonic() + 20
    now = access.iso(bot.services.clock.now())
    while not bot.store.execute(
        "SELECT 1 FROM access_outbox WHERE request_id = ? AND kind = 'deliver' AND done_at IS NULL AND due_at <= ?",
        [request_id, now],
    ).fetchone():
        assert time.monotonic() < deadline, "the click never gave up delivering"
        time.sleep(0.02)


def dms(bot, user: str = "D0ALICE") -> list[dict]:
    return bot.slack.messages(user)


def test_credentials_slack_refused_at_approval_reach_the_requester_once_slack_recovers(jit, clock):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix the outage")
    request = the_request(bot)
    bot.slack.fail_for(3600, error="service_unavailable", status=503, methods=WRITES)
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    # The grant went through; every attempt to show the credentials was refused.
    wait_until_delivery_failed(bot, request.id)
    granted = access.get_request(bot.services, request.id)
    assert granted.state == "granted" and len(sts.calls) == 1
    assert not [c for c in bot.slack.calls_to("chat.postEphemeral") if c.status == 200]
    # A sweep while Slack is still down tells nobody and keeps the work for later.
    run_sweep(bot)
    assert not dms(bot) and {k for _, k, _ in access.outbox.pending(bot.services, request.id)} >= {"deliver"}
    assert has_action(request_messages(bot)[0], ActionId.ACCESS_APPROVE)  # Slack never took the update
    # Slack recovers; the retry after the backoff delivers the note and re-renders the request.
    bot.slack.fail_for(0)
    clock.advance(minutes=1)
    run_sweep(bot)
    [note] = [m for m in dms(bot) if "granted" in m["text"]]
    assert has_action(note, ActionId.ACCESS_REISSUE) and "Get credentials" in text_of(note)
    assert "SecretAccessKey" not in str(note) and "credential_process" not in str(note)
    [message] = request_messages(bot)
    assert not has_action(message, ActionId.ACCESS_APPROVE) and not has_action(message, ActionId.ACCESS_DENY)
    assert access.outbox.pending(bot.services, request.id) == []
    assert "delivery_recovered" in [r["action"] for r in bot.store.audit_rows()]
    # Get credentials issues a fresh, working session (the first one was never shown to anyone).
    tries = len(
        [
            c
            for c in bot.slack.calls_to("chat.postEphemeral")
            if c.args.get("text", "").startswith("Credentials")
        ]
    )
    click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, request.id, channel="D0ALICE", message=note)
    [ephemeral] = wait_for_credentials(bot, count=tries + 1)  # the refused attempts count as calls
    assert caller_identity(credentials_from(ephemeral))["Account"] == ACCOUNT_ID
    assert len(sts.calls) == 2
    # Later sweeps send nothing more.
    clock.advance(minutes=30)
    run_sweep(bot)
    assert len([m for m in dms(bot) if "granted" in m["text"]]) == 1


def test_a_rate_limited_or_missing_channel_delivery_is_recovered_the_same_way(jit, clock):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    bot.slack.fail_for(3600, error="not_in_channel", methods=("chat.postEphemeral",))
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    wait_until_delivery_failed(bot, request.id)
    bot.slack.fail_for(0)
    clock.advance(minutes=1)
    run_sweep(bot)
    [note] = [m for m in dms(bot) if "granted" in m["text"] and has_action(m, ActionId.ACCESS_REISSUE)]
    assert "Get credentials" in text_of(note)
    assert not has_action(request_messages(bot)[0], ActionId.ACCESS_APPROVE)


def run_sweep(bot) -> None:
    from tests.access.support import run_job

    run_job(bot, access_handlers.run_access_sweep)


def test_the_requester_is_reminded_ten_minutes_before_the_end_once_with_extend_and_done(jit, clock):
    bot, _ = jit(access={"max_extensions": 1})
    request, _ = request_and_approve(bot, text="request prod-admin 1h migrate")
    clock.advance(minutes=49)
    run_sweep(bot)
    assert not [m for m in dms(bot) if " ends at " in m["text"]]  # 11 minutes left: too early
    clock.advance(minutes=2)
    run_sweep(bot)
    run_sweep(bot)  # a second sweep (or a second instance) does not remind again
    [reminder] = [m for m in dms(bot) if " ends at " in m["text"]]
    assert has_action(reminder, ActionId.ACCESS_EXTEND) and has_action(reminder, ActionId.ACCESS_DONE)
    # Extend from the reminder asks the approvers.
    click(bot, "U0ALICE", ActionId.ACCESS_EXTEND, request.id, channel="D0ALICE", message=reminder)
    bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == APPROVALS, count=2)
    extension = the_request(bot)
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, extension.id, message=request_messages(bot)[-1])
    wait_for_credentials(bot, count=2)
    # The new end earns its own reminder; I'm done from it ends the access.
    clock.advance(minutes=60)  # 13:51, the new end is 14:00
    run_sweep(bot)
    reminders = [m for m in dms(bot) if " ends at " in m["text"]]
    assert len(reminders) == 2
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, request.id, channel="D0ALICE", message=reminders[-1])
    bot.slack.wait_for("chat.postEphemeral", lambda c: "ended" in c.args.get("text", ""))
    assert access.get_request(bot.services, request.id).state == "revoked"
