"""Offboarding in real time: Slack's user_change event (and a directory refresh for an event missed)
ends a leaver's just-in-time access once, posts one alert, and Disable access on it changes AWS."""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.request

import pytest

from bot import access
from handlers.identity import member_is_active
from handlers.ids import ActionId
from sandbox.federation import FederationStandIn
from sandbox.slack_api import load_fixture
from tests.access.support import (
    APPROVALS,
    create_role,
    make_config,
    request_and_approve,
    text_of,
)
from tests.access.support import click as access_click
from tests.conftest import ACCOUNT_ID
from tests.identity.support import iam, refresh_directory, scan

# --------------------------------------------------------------------------- offboarding in real time

SECURITY = "C0SECURITY"


@pytest.fixture
def stand_in():
    federation = FederationStandIn().start()
    yield federation
    federation.stop()


def offboarding_config(federation) -> dict:
    config = make_config(federation)
    config["roles"].append(
        {
            "name": "audit-read",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/audit-read",
            "max_duration": "1h",
            "approvers": ["U0LEAD1"],
        }
    )
    return config


def seed_alice_iam() -> None:
    client = iam()
    client.create_user(UserName="alice-iam", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    client.create_access_key(UserName="alice-iam")
    client.create_login_profile(UserName="alice-iam", Password="Old-Passw0rd!")  # noqa: S106 - moto only


@pytest.fixture
def leaver(make_bot, stand_in, aws, slack):
    """alice holds a live prod-admin grant, a pending audit-read request and an IAM user with a key
    and a console password; the directory is cached and a scan stored."""
    create_role()
    seed_alice_iam()
    bot = make_bot(offboarding_config(stand_in))
    refresh_directory(bot)
    scan(bot)
    granted, _ = request_and_approve(bot)
    assert bot.command("U0ALICE", "request audit-read 1h read the logs").status == 200
    pending = next(r for r in access.requests_for(bot.services, "U0ALICE") if r.role == "audit-read")
    assert granted.state == "granted" and pending.state == "pending"
    return bot, granted, pending


def user_change(bot, user: dict, *, event_id: str = "Ev0USERCHANGE1", retry: int | None = None):
    """A signed Events API delivery of ``user_change``, as Slack sends it (retries carry
    X-Slack-Retry-Num and the same event_id)."""
    envelope = load_fixture("app_home_opened")
    now = time.time()
    envelope.update(
        team_id="T0DEMO",
        event={
            "type": "user_change",
            "user": copy.deepcopy(user),
            "cache_ts": int(now),
            "event_ts": f"{now:.6f}",
        },
        event_id=event_id,
        event_time=int(now),
    )
    envelope["authorizations"][0]["team_id"] = "T0DEMO"
    envelope["authorizations"][0]["user_id"] = bot.slack.bot_user_id
    body = json.dumps(envelope).encode()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": bot.sender.sign(body, timestamp),
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    request = urllib.request.Request(bot.sender.app_url, data=body, method="POST", headers=headers)  # noqa: S310
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - the local bot
        return reply.status, time.monotonic() - started


def offboarding_alerts(bot) -> list[dict]:
    return [m for m in bot.slack.messages(SECURITY) if m.get("text", "").startswith("Offboarding:")]


def wait_for_alert(bot, count: int = 1) -> list[dict]:
    bot.slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == SECURITY and str(c.args.get("text", "")).startswith("Offboarding:")
        ),
        count=count,
        timeout=30,
    )
    return offboarding_alerts(bot)


def revocation_statements() -> list[dict]:
    document = iam().get_role_policy(RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
        "PolicyDocument"
    ]
    return document["Statement"]


def actions_of(bot, prefix: str = "offboarding.") -> list[str]:
    return [r["action"] for r in bot.store.audit_rows() if r["action"].startswith(prefix)]


def test_user_change_deactivation_revokes_withdraws_and_alerts_once_even_when_delivered_twice(leaver):
    bot, granted, pending = leaver
    bot.slack.deactivate_user("U0ALICE")
    user = bot.slack.user("U0ALICE")
    status, seconds = user_change(bot, user)
    assert status == 200 and seconds < 3  # acknowledged at once, whatever AWS and Slack do next
    # Slack retries the same event (it did not see our ack in time): acknowledged, acted on once.
    assert user_change(bot, user, retry=1)[0] == 200
    [alert] = wait_for_alert(bot)

    # The live grant is revoked through the access lifecycle: the role denies her SourceIdentity.
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert list(access.denied_identities({"Statement": revocation_statements()})) == ["U0ALICE"]
    # The pending request is withdrawn, so nobody can approve it any more.
    assert access.get_request(bot.services, pending.id).state == "expired"

    text = text_of(alert) + json.dumps(alert["blocks"])
    assert "<@U0ALICE>" in text and "alice@example.com" in text
    assert granted.id in text and "live sessions denied" in text
    assert pending.id in text
    assert "alice-iam" in text and "access key 1" in text and "console password" in text
    assert ActionId.OFFBOARDING_DISABLE_ACCESS in text and "Disable access?" in text  # confirm dialog
    assert bot.slack.formatting_violations() == []

    time.sleep(1)  # give a (wrong) second processing of the retry every chance to show
    assert len(offboarding_alerts(bot)) == 1
    audited = actions_of(bot)
    assert audited.count("offboarding.detected") == 1
    assert audited.count("offboarding.revoked") == 1 and audited.count("offboarding.withdrawn") == 1
    assert audited.count("offboarding.alerted") == 1
    # The approvals message no longer offers Approve / Revoke on what was ended.
    messages = {m["ts"]: m for m in bot.slack.messages(APPROVALS)}
    for request in (granted, pending):
        stored = access.get_request(bot.services, request.id)
        shown = json.dumps(messages[stored.message_ts]["blocks"])
        assert ActionId.ACCESS_APPROVE not in shown and ActionId.ACCESS_REVOKE not in shown


def test_a_reactivated_member_gets_nothing_back_and_a_later_deactivation_acts_again(leaver):
    bot, granted, _ = leaver
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    wait_for_alert(bot)
    user = bot.slack.user("U0ALICE")
    user["deleted"] = False
    user_change(bot, user, event_id="Ev0USERCHANGE2")
    deadline = time.monotonic() + 10
    while "offboarding.reactivated" not in actions_of(bot) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "offboarding.reactivated" in actions_of(bot)
    assert access.get_request(bot.services, granted.id).state == "revoked"  # not re-granted
    user["deleted"] = True
    user_change(bot, user, event_id="Ev0USERCHANGE3")
    assert len(wait_for_alert(bot, count=2)) == 2


def test_a_directory_refresh_offboards_a_member_whose_event_was_missed(leaver):
    from handlers.client import build_client
    from handlers.identity import directory_refresh_job

    bot, granted, pending = leaver
    bot.slack.deactivate_user("U0ALICE")  # the bot was down: no user_change reached it
    bot.services.clock.advance(hours=7)  # the cached directory is stale
    client = build_client(bot.services)
    directory_refresh_job(bot.services, client)
    [alert] = wait_for_alert(bot)
    assert "directory refresh" in text_of(alert)
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert access.get_request(bot.services, pending.id).state == "expired"
    # The event arriving late, another refresh, the sweep: nothing more.
    user_change(bot, bot.slack.user("U0ALICE"))
    bot.services.clock.advance(hours=7)
    directory_refresh_job(bot.services, client)
    from handlers.identity import sweep_offboardings

    sweep_offboardings(bot.services, client)
    time.sleep(0.5)
    assert len(offboarding_alerts(bot)) == 1
    assert actions_of(bot).count("offboarding.detected") == 1


def test_the_alert_waits_out_a_slack_outage_but_access_ends_at_once(leaver):
    from handlers.client import build_client
    from handlers.identity import sweep_offboardings

    bot, granted, _ = leaver
    bot.slack.fail_next("chat.postMessage", error="not_in_channel", times=3)
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    deadline = time.monotonic() + 15
    while "offboarding.alert_failed" not in actions_of(bot) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert "offboarding.alert_failed" in actions_of(bot)
    client = build_client(bot.services)
    for _ in range(5):  # the sweep job retries each minute until Slack accepts
        sweep_offboardings(bot.services, client)
        if offboarding_alerts(bot):
            break
    assert len(offboarding_alerts(bot)) == 1
    sweep_offboardings(bot.services, client)
    assert len(offboarding_alerts(bot)) == 1


def test_disable_access_from_the_alert_is_for_the_security_team_and_changes_aws(leaver):
    bot, _, _ = leaver
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    [alert] = wait_for_alert(bot)
    [value] = {
        b["accessory"]["value"]
        for b in alert["blocks"]
        if (b.get("accessory") or {}).get("action_id") == ActionId.OFFBOARDING_DISABLE_ACCESS
    }
    bot.sender.block_action(
        "U0BOB", ActionId.OFFBOARDING_DISABLE_ACCESS, value, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0BOB")
    keys = iam().list_access_keys(UserName="alice-iam")["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Active"}
    # A forged value naming someone else's IAM user is refused from stored state.
    forged = value.rsplit("|", 1)[0] + "|ghost"
    bot.sender.block_action(
        "U0SEC1", ActionId.OFFBOARDING_DISABLE_ACCESS, forged, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0SEC1")
    bot.sender.block_action(
        "U0SEC1", ActionId.OFFBOARDING_DISABLE_ACCESS, value, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == alert["ts"] and "Disable access" in c.args["text"],
    )
    keys = iam().list_access_keys(UserName="alice-iam")["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Inactive"}
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_login_profile(UserName="alice-iam")
    assert "offboarding.disable_access" in actions_of(bot)


def test_a_member_slack_reports_deactivated_cannot_reissue_approve_or_break_glass(
    make_bot, stand_in, aws, slack
):
    from handlers.client import build_client

    create_role()
    config = make_config(stand_in)
    config["roles"][0]["break_glass"] = True
    config["roles"][0]["break_glass_requesters"] = ["U0ALICE"]
    bot = make_bot(config)
    granted, _ = request_and_approve(bot)
    assert bot.command("U0BOB", "request prod-admin 1h bob needs it").status == 200
    bob_request = next(r for r in access.requests_for(bot.services, "U0BOB"))
    # Deactivated in Slack, and the event never arrived: users.info still stops them.
    slack.deactivate_user("U0ALICE")
    slack.deactivate_user("U0LEAD1")
    client = build_client(bot.services)
    # users.info answers are trusted a minute at most: alice was confirmed active at her approval.
    assert member_is_active(client, bot.services, "U0ALICE")
    bot.services.clock.advance(seconds=61)
    assert not member_is_active(client, bot.services, "U0ALICE")
    assert member_is_active(client, bot.services, "U0BOB")
    issued = len(access.grants_of(bot.services, granted.id))
    dm = bot.slack.messages("D0ALICE")[0]
    access_click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, granted.id, message=dm, channel="D0ALICE")
    bot.slack.wait_for("chat.postEphemeral", lambda c: "active member" in c.args.get("text", ""))
    assert len(access.grants_of(bot.services, granted.id)) == issued
    access_click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, bob_request.id)
    bot.slack.wait_for(
        "chat.postEphemeral",
        lambda c: c.args.get("user") == "U0LEAD1" and "active member" in c.args.get("text", ""),
    )
    assert access.get_request(bot.services, bob_request.id).state == "pending"
    assert "active member" in json.dumps(
        bot.command("U0ALICE", "breakglass prod-admin prod is down").json() or {}
    ) or (bot.slack.wait_for("response_url", lambda c: "active member" in json.dumps(c.args)))
    assert not [r for r in access.requests_for(bot.services, "U0ALICE") if r.kind == "break_glass"]


@pytest.mark.parametrize(
    "user",
    [
        None,
        "U0ALICE",
        {"deleted": True},
        {"id": "<!channel>", "deleted": True},
        {"id": ["U0ALICE"], "deleted": True},
        {"id": "U0ALICE' OR 1=1 --", "deleted": True},
        {"id": "U0ALICE\n", "deleted": True},
    ],
)
def test_malformed_user_change_is_acknowledged_and_changes_nothing(leaver, user):
    bot, granted, _ = leaver
    assert bot.sender.event({"type": "user_change", "user": user}).status == 200
    time.sleep(0.3)
    assert access.get_request(bot.services, granted.id).state == "granted"
    assert actions_of(bot) == [] and offboarding_alerts(bot) == []


def test_a_profile_change_of_an_active_member_offboards_nobody(leaver):
    bot, granted, _ = leaver
    user = bot.slack.user("U0ALICE")
    user["real_name"] = "Alice Renamed"
    assert bot.sender.event({"type": "user_change", "user": user}).status == 200
    time.sleep(0.3)
    assert access.get_request(bot.services, granted.id).state == "granted"
    assert actions_of(bot) == []


def test_the_same_deactivation_racing_on_threads_and_two_instances_acts_once(leaver, make_bot, stand_in):
    bot, granted, pending = leaver
    other = make_bot(offboarding_config(stand_in), db=bot.store.path)  # a second instance, same database
    bot.slack.deactivate_user("U0ALICE")
    user = bot.slack.user("U0ALICE")
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver(n: int) -> None:
        target = bot if n % 2 else other
        barrier.wait()
        statuses.append(user_change(target, user, event_id=f"Ev0RACE{n}", retry=n or None)[0])

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 8
    wait_for_alert(bot)
    time.sleep(1.5)
    assert len(offboarding_alerts(bot)) == 1
    audited = actions_of(bot)
    assert audited.count("offboarding.detected") == 1 and audited.count("offboarding.revoked") == 1
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert access.get_request(bot.services, pending.id).state == "expired"
    assert list(access.denied_identities({"Statement": revocation_statements()})) == ["U0ALICE"]
