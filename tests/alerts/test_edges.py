"""Alerts at the edges: concurrent consumers, deleted messages, missing channels, config errors,
secrets in CloudTrail records, Block Kit limits, JIT correlation by SourceIdentity."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from bot import alerts as alert_store
from bot.settings import SettingsError, load_config
from bot.store import iso
from handlers.alerts import alert_message, deliver_alerts
from handlers.blocks import validate_blocks
from tests.alerts.support import CHANNEL, alerts_config, event
from tests.alerts.test_flows import message_text, rules_posted


def ingest(bot, record: dict, source: str = "test"):
    parsed = alert_store.parse_eventbridge(
        {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": record}
    )
    return alert_store.ingest(
        bot.services.config, bot.store, parsed, source=source, now=bot.services.clock.now()
    )


def test_two_consumers_racing_on_one_event_record_it_once(make_bot, clock):
    bot = make_bot(alerts_config())
    record = event("stop_logging", clock.now())
    results = []
    barrier = threading.Barrier(4)

    def consume() -> None:
        barrier.wait()
        results.append(ingest(bot, record))

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert [a.count for a in alert_store.alerts(bot.store)] == [1]


def test_a_deleted_alert_message_is_posted_again_on_the_next_change(make_bot, clock):
    bot = make_bot(alerts_config())
    ingest(bot, event("console_login_root_success", clock.now()))
    deliver_alerts(bot.services, bot.app.client)
    first = bot.slack.messages(CHANNEL)[0]
    bot.app.client.chat_delete(channel=CHANNEL, ts=first["ts"])
    ingest(bot, event("console_login_root_success", clock.now() + timedelta(minutes=1)))
    deliver_alerts(bot.services, bot.app.client)
    messages = bot.slack.messages(CHANNEL)
    assert len(messages) == 1 and messages[0]["ts"] != first["ts"]
    assert "seen 2 times" in message_text(messages[0])


def test_without_a_channel_alerts_wait_and_are_posted_once_one_is_set(make_bot, clock):
    config = alerts_config()
    config["slack"] = {"security_team": ["U0SEC1"]}
    bot = make_bot(config)
    ingest(bot, event("delete_trail", clock.now()))
    assert deliver_alerts(bot.services, bot.app.client) == 0
    assert bot.slack.calls_to("chat.postMessage") == []
    bot.services.config.slack.security_channel = CHANNEL  # alerts_channel falls back to it
    assert deliver_alerts(bot.services, bot.app.client) == 1
    assert deliver_alerts(bot.services, bot.app.client) == 0
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["CLOUDTRAIL_TAMPERING"]


def test_an_unknown_rule_in_the_config_file_is_one_clear_line(tmp_path):
    path = tmp_path / "iamwarden.toml"
    path.write_text("[alerts.rules.ROOT_ACTIVTY]\nenabled = false\n")
    with pytest.raises(SettingsError) as err:
        load_config(path)
    message = str(err.value)
    assert "alerts.rules" in message and "ROOT_ACTIVTY" in message and "\n" not in message


def test_session_tokens_in_cloudtrail_records_never_reach_sqlite_or_slack(make_bot, clock):
    bot = make_bot(alerts_config())
    token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENxyz"
    record = event(
        "root_api_call",
        clock.now(),
        eventSource="sts.amazonaws.com",
        eventName="GetSessionToken",
        requestParameters={"durationSeconds": 3600},
        responseElements={
            "credentials": {
                "accessKeyId": "ASIAQ3EXAMPLEROOTKEY",
                "sessionToken": token,
                "expiration": "Nov 29, 2026, 1:00:00 PM",
            }
        },
    )
    ingest(bot, record)
    deliver_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["ROOT_ACTIVITY"]
    bot.store.db.conn.execute("PRAGMA wal_checkpoint(FULL)")
    stored = b"".join(p.read_bytes() for p in bot.services.settings.db.parent.glob("iamwarden.db*"))
    assert b"GetSessionToken" in stored  # the alert is in the file we read
    assert token.encode() not in stored
    assert all(token not in str(c.args) for c in bot.slack.calls)


def test_huge_attacker_controlled_fields_stay_within_block_kit_limits(make_bot, clock):
    bot = make_bot(alerts_config())
    ingest(
        bot, event("console_login_root_failure", clock.now(), userAgent="A" * 20_000, errorMessage="x" * 9000)
    )
    alert = alert_store.alerts(bot.store)[0]
    assert validate_blocks(alert_message(alert).checked().blocks) == []
    deliver_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL)) == ["ROOT_LOGIN_FAILED"]


def test_jit_correlation_by_source_identity_inside_the_approved_window(make_bot, clock):
    bot = make_bot(alerts_config())
    store = bot.store
    if not store.db["access_requests"].exists():
        pytest.skip("the access feature's access_requests table is not in this build")
    t = clock.now()
    store.db["access_requests"].insert(
        {
            "id": "req-by-identity",
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
    # A chained session with a different name: SourceIdentity still carries the requester.
    inside = event(
        "jit_session_put_role_policy",
        t,
        **{"userIdentity.arn": "arn:aws:sts::123456789012:assumed-role/prod-admin/chained-session"},
    )
    outside = event(
        "jit_session_put_role_policy",
        t + timedelta(hours=2),
        **{
            "userIdentity.arn": "arn:aws:sts::123456789012:assumed-role/prod-admin/chained-session",
            "requestParameters.roleName": "other-role",
        },
    )
    ingest(bot, inside)
    ingest(bot, outside)
    linked = [a.jit_request_id for a in alert_store.alerts(bot.store)]
    assert linked == ["req-by-identity", None]


def test_iam_alerts_lists_open_alerts_for_the_security_team_only(make_bot, clock):
    bot = make_bot(alerts_config(rules={"CONSOLE_LOGIN_FAILURES": {"threshold": 3}}))
    ingest(bot, event("console_login_root_success", clock.now()))
    ingest(bot, event("stop_logging", clock.now()))
    alert_store.acknowledge(bot.store, 2, "U0SEC1", clock.now())
    body = bot.command("U0SEC1", "alerts").json()
    text = message_text(body)
    assert "Open alerts (1)" in text and "Root user signed in" in text and "StopLogging" not in text
    assert body["response_type"] == "ephemeral"
    rules = message_text(bot.command("U0SEC1", "alerts rules").json())
    assert "`CONSOLE_LOGIN_FAILURES` · medium" in rules and "threshold 3, window 15m, dedupe 1h" in rules
    refused = bot.command("U0BOB", "alerts").json()
    assert "for the security team" in refused["text"]
    assert "Usage" in message_text(bot.command("U0SEC1", "alerts nonsense").json())


def test_the_sqs_client_follows_the_queue_urls_region(make_bot):
    from bot.alerts.sources import _regional, queue_region

    assert queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/iamwarden-alerts") == "eu-west-1"
    assert queue_region("http://127.0.0.1:5000/123456789012/iamwarden-alerts") is None
    bot = make_bot(alerts_config())
    assert _regional(bot.services, "eu-west-1").client("sqs").meta.region_name == "eu-west-1"
    assert _regional(bot.services, None) is bot.services.aws


def test_two_instances_delivering_at_once_post_a_new_alert_once(make_bot, clock, tmp_path):
    db = tmp_path / "shared.db"
    one, two = make_bot(alerts_config(), db=db), make_bot(alerts_config(), db=db)
    for i in range(5):
        ingest(one, event("console_login_root_success", clock.now() + timedelta(hours=2 * i)))
    barrier = threading.Barrier(2)

    def deliver(bot) -> None:
        barrier.wait()
        deliver_alerts(bot.services, bot.app.client)

    threads = [threading.Thread(target=deliver, args=(b,)) for b in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(one.slack.calls_to("chat.postMessage")) == 5
    assert len(one.slack.messages(CHANNEL)) == 5


def test_the_security_teams_app_home_shows_open_alerts(make_bot, clock):
    bot = make_bot(alerts_config())
    ingest(bot, event("delete_trail", clock.now()))
    bot.sender.event({"type": "app_home_opened", "user": "U0SEC1", "tab": "home"})
    view = bot.slack.wait_for("views.publish", lambda c: c.args["user_id"] == "U0SEC1")[0].args["view"]
    assert "Open alerts (1)" in json.dumps(view) and "DeleteTrail on trail management-events" in json.dumps(
        view
    )
    bot.sender.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home"})
    view = bot.slack.wait_for("views.publish", lambda c: c.args["user_id"] == "U0BOB")[0].args["view"]
    assert "Open alerts" not in json.dumps(view)
