"""Alerts: exactly-once processing, poison messages, restarts, LookupEvents, JIT correlation, and the
buttons (Acknowledge, Ask the actor, the actor's Yes/No and the escalation on timeout)."""

from __future__ import annotations

import logging
from datetime import timedelta

import boto3
import pytest

from bot import alerts as alert_store
from bot.alerts.sources import (
    LOOKUP_CHECKPOINT_KEY,
    RateLimiter,
    consume_queue,
    poll_lookup_events,
)
from bot.store import iso
from handlers.alerts import deliver_alerts, escalate_unanswered, poll_alerts
from handlers.ids import ActionId
from sandbox.cloudtrail import CloudTrailStub
from tests.alerts.support import CHANNEL, Pipeline, alerts_config, event, later
from tests.alerts.test_flows import message_text, rules_posted


@pytest.fixture
def pipeline(aws) -> Pipeline:
    return Pipeline.create()


@pytest.fixture
def warden(make_bot, pipeline):
    return make_bot(alerts_config(pipeline.queue_url))


def poll(bot) -> None:
    poll_alerts(bot.services, bot.app.client)


def buttons(message: dict) -> dict[str, dict]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


# -- exactly once, poison, restart ----------------------------------------------------------------


def test_a_redelivered_event_is_processed_once(warden, pipeline, clock):
    record = event("console_login_root_success", clock.now())
    pipeline.put(record, record)  # the same event id twice, as an at-least-once delivery can do
    report = consume_queue(warden.services)
    assert (report.received, report.processed, report.duplicates, report.deleted) == (2, 1, 1, 2)
    deliver_alerts(warden.services, warden.app.client)
    messages = warden.slack.messages(CHANNEL)
    assert len(messages) == 1 and "seen once" in message_text(messages[0])
    assert pipeline.depth() == 0


def test_a_message_seen_again_after_a_crash_is_deleted_without_a_second_alert(warden, pipeline, clock):
    record = event("stop_logging", clock.now())
    pipeline.put(record)
    poll(warden)
    # The same event arrives again (e.g. the bot died between recording and deleting).
    pipeline.put(record)
    poll(warden)
    assert len(warden.slack.messages(CHANNEL)) == 1
    assert warden.slack.calls_to("chat.update") == []
    assert pipeline.depth() == 0


def test_a_poison_message_is_logged_and_left_for_the_dead_letter_queue(make_bot, aws, clock, caplog):
    pipeline = Pipeline.create(visibility_timeout=0, max_receive_count=2)
    bot = make_bot(alerts_config(pipeline.queue_url))
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody="{this is not json")
    pipeline.put(event("console_login_root_success", clock.now()))
    with caplog.at_level(logging.WARNING, logger="bot.alerts.sources"):
        report = consume_queue(bot.services)
    # Visible again at once (visibility timeout 0), yet one poll reads it only once: no loop.
    assert (report.received, report.poison, report.processed) == (2, 1, 1)
    assert "poison message" in caplog.text and "dead-letter" in caplog.text
    assert pipeline.depth() == 1
    consume_queue(bot.services)
    consume_queue(bot.services)
    # After maxReceiveCount receives the queue's redrive policy moved it to the DLQ.
    assert pipeline.depth() == 0 and pipeline.depth("dlq") == 1
    deliver_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY"]


def test_a_restart_neither_loses_nor_repeats_alerts(make_bot, pipeline, clock, tmp_path):
    db = tmp_path / "shared.db"
    config = alerts_config(pipeline.queue_url)
    first = make_bot(config, db=db)
    t = clock.now()
    # Recorded and deleted from SQS, but the process stops before posting.
    pipeline.put(
        event("console_login_root_success", t),
        *[event("console_login_failure", later(t, minutes=i)) for i in range(3)],
    )
    assert consume_queue(first.services).deleted == 4
    assert first.slack.messages(CHANNEL) == []
    first.server.stop()

    second = make_bot(config, db=db)
    poll(second)
    assert rules_posted(second.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY"]
    # The failure window survived the restart: two more make five.
    pipeline.put(*[event("console_login_failure", later(t, minutes=5 + i)) for i in range(2)])
    poll(second)
    poll(second)
    assert rules_posted(second.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY", "CONSOLE_LOGIN_FAILURES"]
    assert len(second.slack.calls_to("chat.postMessage")) == 2


def test_an_alert_slack_refused_is_posted_on_the_next_poll(warden, pipeline, clock):
    warden.slack.fail_next("chat.postMessage", error="internal_error")
    pipeline.put(event("console_login_root_success", clock.now()))
    poll(warden)
    assert warden.slack.messages(CHANNEL) == []
    poll(warden)
    assert rules_posted(warden.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY"]


# -- LookupEvents -----------------------------------------------------------------------------------


@pytest.fixture
def cloudtrail(monkeypatch):
    stub = CloudTrailStub().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", stub.url)
    yield stub
    stub.stop()


class NoWait(RateLimiter):
    def __init__(self) -> None:
        self.waits = 0

    def wait(self) -> None:
        self.waits += 1


def test_lookup_events_polling_posts_alerts_once_and_keeps_a_checkpoint(make_bot, cloudtrail, clock):
    bot = make_bot(alerts_config(None, lookup_events=True))
    t = clock.now()
    cloudtrail.add(
        event("console_login_root_success", later(t, minutes=-30)),
        event("root_service_event", later(t, minutes=-20)),
        event("create_access_key_other_user", later(t, minutes=-10)),
        event("console_login_mfa", later(t, minutes=-5)),
        event("stop_logging", later(t, hours=-3)),  # before the first poll's look-back: not read
    )
    limiter = NoWait()
    report = poll_lookup_events(bot.services, limiter=limiter)
    # Root's sign-in matches both queries (writes, and root's): read twice, processed once.
    assert report.error is None and (report.processed, report.duplicates) == (4, 1)
    deliver_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY", "ACCESS_KEY_CREATED_FOR_OTHER_USER"]
    assert bot.store.get_kv(LOOKUP_CHECKPOINT_KEY) == iso(t)
    assert limiter.waits == report.requests == 2  # one request per query, each through the limiter
    first = cloudtrail.requests[0].params
    assert first["LookupAttributes"] == [{"AttributeKey": "ReadOnly", "AttributeValue": "false"}]
    assert first["StartTime"] == (t - timedelta(hours=1)).timestamp()

    # Later: the next poll re-reads the overlap (skipping what it saw) and finds the new event.
    clock.advance(minutes=5)
    cloudtrail.add(event("deactivate_mfa_device", later(t, minutes=2)))
    report = poll_lookup_events(bot.services, limiter=limiter)
    assert report.processed == 1 and report.duplicates >= 1
    assert cloudtrail.requests[-1].params["StartTime"] == (t - timedelta(minutes=15)).timestamp()
    deliver_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL))[-1] == "MFA_DEACTIVATED"
    assert len(bot.slack.messages(CHANNEL)) == 3


def test_lookup_events_pages_through_results(make_bot, cloudtrail, clock):
    bot = make_bot(alerts_config(None, lookup_events=True))
    t = clock.now()
    cloudtrail.add(*[event("start_logging", later(t, seconds=-i)) for i in range(120)])
    report = poll_lookup_events(bot.services, limiter=NoWait())
    assert report.processed == 120 and report.requests == 3 + 1  # 50+50+20, then the root query


def test_lookup_events_unavailable_keeps_the_checkpoint_and_does_not_crash(make_bot, cloudtrail, clock):
    bot = make_bot(alerts_config(None, lookup_events=True))
    cloudtrail.fail_next("AccessDeniedException", times=10)
    report = poll_lookup_events(bot.services, limiter=NoWait())
    assert report.error and "AWS denied cloudtrail:LookupEvents" in report.error
    assert bot.store.get_kv(LOOKUP_CHECKPOINT_KEY) is None


def test_lookup_events_through_the_poll_job(make_bot, cloudtrail, clock):
    bot = make_bot(alerts_config(None, lookup_events=True))
    cloudtrail.add(event("attach_user_policy_admin", later(clock.now(), minutes=-1)))
    poll(bot)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["ADMIN_POLICY_ATTACHED"]


def test_rate_limiter_spaces_calls_to_two_a_second():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert slept == [0.5, 0.5, 0.5, 0.5]
    assert now[0] - 100.0 == pytest.approx(2.0)


# -- JIT correlation --------------------------------------------------------------------------------


def test_a_jit_session_links_the_alert_to_its_access_request(warden, pipeline, clock):
    store = warden.store
    if not (store.db["access_requests"].exists() and store.db["access_grants"].exists()):
        pytest.skip("the access feature's access_requests/access_grants tables are not in this build")
    t = clock.now()
    store.db["access_requests"].insert(
        {
            "id": "r7k2m9q4",
            "kind": "request",
            "requester": "U0ALICE",
            "role": "prod-admin",
            "role_arn": "arn:aws:iam::123456789012:role/prod-admin",
            "account_id": "123456789012",
            "duration_seconds": 3600,
            "reason": "deploy",
            "state": "granted",
            "created_at": iso(t - timedelta(minutes=15)),
            "window_start": iso(t - timedelta(minutes=10)),
            "window_end": iso(t + timedelta(minutes=50)),
        }
    )
    store.db["access_grants"].insert(
        {
            "request_id": "r7k2m9q4",
            "access_key_id": "ASIAQ3EXAMPLESESSION",
            "session_name": "iamwarden-U0ALICE-r7k2m9q4",
            "issued_at": iso(t - timedelta(minutes=10)),
            "expires_at": iso(t + timedelta(minutes=50)),
        }
    )
    pipeline.put(event("jit_session_put_role_policy", t))
    poll(warden)
    messages = warden.slack.messages(CHANNEL)
    assert rules_posted(messages) == ["ADMIN_POLICY_ATTACHED"]
    text = message_text(messages[0])
    assert "*JIT request*\n`r7k2m9q4` by <@U0ALICE>" in text
    assert "*Slack member*\n<@U0ALICE>" in text


def test_a_role_session_without_a_jit_grant_is_not_linked(warden, pipeline, clock):
    pipeline.put(event("jit_session_put_role_policy", clock.now()))
    poll(warden)
    text = message_text(warden.slack.messages(CHANNEL)[0])
    assert "JIT request" not in text and "_not mapped_" in text


# -- buttons ----------------------------------------------------------------------------------------


def posted_alert(bot, pipeline, clock, name="console_login_no_mfa") -> dict:
    pipeline.put(event(name, clock.now()))
    poll(bot)
    return bot.slack.messages(CHANNEL)[-1]


def test_acknowledge_records_who_and_updates_the_message(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock)
    alert_id = buttons(message)[ActionId.ALERT_ACKNOWLEDGE]["value"]
    assert (
        warden.sender.block_action("U0SEC2", ActionId.ALERT_ACKNOWLEDGE, alert_id, message=message).status
        == 200
    )
    warden.slack.wait_for("chat.update")
    updated = warden.slack.messages(CHANNEL)[0]
    assert "Acknowledged by <@U0SEC2>" in message_text(updated)
    assert ActionId.ALERT_ACKNOWLEDGE not in buttons(updated)
    alert = alert_store.get_alert(warden.store, alert_id)
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", "U0SEC2")
    assert any(r["action"] == "alert.acknowledge" for r in warden.store.audit_rows())


def test_only_the_security_team_can_acknowledge(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock)
    alert_id = buttons(message)[ActionId.ALERT_ACKNOWLEDGE]["value"]
    warden.sender.block_action("U0BOB", ActionId.ALERT_ACKNOWLEDGE, alert_id, message=message)
    reply = warden.slack.wait_for("response_url")[0]
    assert "Only the security team" in reply.args["text"]
    assert alert_store.get_alert(warden.store, alert_id).state == "open"


def ask_actor(bot, message: dict) -> dict:
    alert_id = buttons(message)[ActionId.ALERT_ASK_ACTOR]["value"]
    bot.sender.block_action("U0SEC1", ActionId.ALERT_ASK_ACTOR, alert_id, message=message)
    bot.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel", "").startswith("D"))
    return bot.slack.messages("D0ALICE")[0]


def test_ask_the_actor_dms_the_mapped_member_and_yes_is_recorded(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock)
    dm = ask_actor(warden, message)
    assert "did you do this?" in message_text(dm)
    assert set(buttons(dm)) == {ActionId.ALERT_ACTOR_YES, ActionId.ALERT_ACTOR_NO}
    warden.slack.wait_for("chat.update", lambda c: c.args.get("channel") == CHANNEL)
    assert "Asked <@U0ALICE> whether they did this" in message_text(warden.slack.messages(CHANNEL)[0])

    alert_id = buttons(dm)[ActionId.ALERT_ACTOR_YES]["value"]
    warden.sender.block_action("U0ALICE", ActionId.ALERT_ACTOR_YES, alert_id, message=dm)
    warden.slack.wait_for("chat.update", lambda c: c.args.get("channel") == "D0ALICE")
    warden.slack.wait_for(
        "chat.update",
        lambda c: (
            "confirmed they did this" in c.args.get("text", "") or "confirmed" in str(c.args.get("blocks"))
        ),
    )
    assert "<@U0ALICE> confirmed they did this" in message_text(warden.slack.messages(CHANNEL)[0])
    # Confirmed in time: no escalation, even after the deadline passes.
    clock.advance(hours=2)
    assert escalate_unanswered(warden.services, warden.app.client) == 0
    assert len(warden.slack.messages(CHANNEL)) == 1


def test_the_actor_saying_no_escalates_to_the_security_team(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock)
    dm = ask_actor(warden, message)
    alert_id = buttons(dm)[ActionId.ALERT_ACTOR_NO]["value"]
    # Someone else cannot answer for the actor.
    warden.sender.block_action("U0BOB", ActionId.ALERT_ACTOR_NO, alert_id, message=dm)
    assert "not addressed to you" in warden.slack.wait_for("response_url")[0].args["text"]
    warden.sender.block_action("U0ALICE", ActionId.ALERT_ACTOR_NO, alert_id, message=dm)
    escalation = warden.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == CHANNEL and "needs attention" in c.args["text"]
    )[0]
    group_id = warden.slack.calls_to("usergroups.list")[0].response["usergroups"][0]["id"]
    assert "<@U0SEC1>" in escalation.args["text"] and f"<!subteam^{group_id}>" in escalation.args["text"]
    assert "<@U0ALICE> says they did not do this" in escalation.args["text"]
    assert escalation.args["thread_ts"] == message["ts"]
    alert = alert_store.get_alert(warden.store, alert_id)
    assert alert.actor_status == "denied" and alert.escalated_at


def test_no_answer_in_time_escalates_once(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock)
    ask_actor(warden, message)
    clock.advance(minutes=29)
    assert escalate_unanswered(warden.services, warden.app.client) == 0
    clock.advance(minutes=2)  # past [alerts] actor_confirm_timeout (30 min)
    assert escalate_unanswered(warden.services, warden.app.client) == 1
    assert escalate_unanswered(warden.services, warden.app.client) == 0
    escalations = [m for m in warden.slack.messages(CHANNEL) if "needs attention" in m["text"]]
    assert len(escalations) == 1
    assert "did not answer" in escalations[0]["text"]
    assert "did not answer by" in message_text(warden.slack.messages(CHANNEL)[0])


def test_ask_the_actor_without_a_mapped_member_says_so(warden, pipeline, clock):
    message = posted_alert(warden, pipeline, clock, name="console_login_root_success")
    alert_id = buttons(message)[ActionId.ALERT_ASK_ACTOR]["value"]
    warden.sender.block_action("U0SEC1", ActionId.ALERT_ASK_ACTOR, alert_id, message=message)
    assert "No Slack member is mapped" in warden.slack.wait_for("response_url")[0].args["text"]
    assert alert_store.get_alert(warden.store, alert_id).actor_status == ""


def test_a_burst_read_newest_first_from_lookup_events_still_alerts(make_bot, cloudtrail, clock):
    bot = make_bot(alerts_config(None, lookup_events=True))
    t = clock.now()
    cloudtrail.add(*[event("console_login_failure", later(t, minutes=-10 + i)) for i in range(5)])
    poll(bot)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["CONSOLE_LOGIN_FAILURES"]


def test_a_late_event_completes_a_burst_that_arrived_out_of_order(warden, pipeline, clock):
    t = clock.now()
    burst = [event("console_login_failure", later(t, minutes=i)) for i in range(5)]
    for record in burst[1:]:  # the newest four first, one poll each
        pipeline.put(record)
        poll(warden)
    assert warden.slack.messages(CHANNEL) == []
    pipeline.put(burst[0])  # the oldest arrives last
    poll(warden)
    assert rules_posted(warden.slack.messages(CHANNEL)) == ["CONSOLE_LOGIN_FAILURES"]
