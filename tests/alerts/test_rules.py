"""The new rules' guarantees, tried the way an attacker (or an unlucky operator) would: a
quarantined key disabled in one click on moto, a session merely *named* like the bot's, a trust
condition silently dropped, root joining a spray, overrides from TOML (the parsers are fuzzed in
test_parsing.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from bot.store import iso
from handlers.alerts import poll_alerts
from handlers.ids import ActionId
from tests.alerts.support import CHANNEL, Pipeline, alerts_config, event, later
from tests.alerts.test_delivery import buttons
from tests.alerts.test_flows import message_text, rules_posted


@pytest.fixture
def pipeline(aws) -> Pipeline:
    return Pipeline.create()


@pytest.fixture
def warden(make_bot, pipeline):
    return make_bot(alerts_config(pipeline.queue_url))


def feed(bot, pipeline: Pipeline, *records) -> list[dict]:
    pipeline.put(*records)
    poll_alerts(bot.services, bot.app.client)
    return bot.slack.messages(CHANNEL)


# -- KEY_QUARANTINED: owner and one-click Disable access ------------------------------------------


def _bob_with_a_key_and_a_password() -> str:
    iam = boto3.client("iam")
    iam.create_user(UserName="bob")
    key = iam.create_access_key(UserName="bob")["AccessKey"]["AccessKeyId"]
    iam.create_login_profile(UserName="bob", Password="Correct-Horse-9-Battery")  # noqa: S106 - moto
    return key


def test_a_quarantined_key_names_its_owner_and_disable_access_works_on_aws(warden, pipeline, clock):
    key = _bob_with_a_key_and_a_password()
    messages = feed(warden, pipeline, event("attach_quarantine_policy", clock.now()))
    # The specific rule alone (not also IAM_POLICY_CHANGE), critical, owned by bob's member.
    assert rules_posted(messages) == ["KEY_QUARANTINED"]
    text = message_text(messages[0])
    assert "CRITICAL" in text and "AWS quarantined bob's access key" in text
    assert "*Slack member*\n<@U0BOB>" in text
    disable = buttons(messages[0])[ActionId.ALERT_DISABLE_ACCESS]
    assert disable["confirm"]["title"]["text"] == "Disable access?"  # the digest's confirm dialog

    # Someone outside the security team cannot use it.
    warden.sender.block_action("U0BOB", ActionId.ALERT_DISABLE_ACCESS, disable["value"], message=messages[0])
    assert "for the security team" in warden.slack.wait_for("response_url")[0].args["text"]
    iam = boto3.client("iam")
    assert iam.list_access_keys(UserName="bob")["AccessKeyMetadata"][0]["Status"] == "Active"

    response = warden.sender.block_action(
        "U0SEC1", ActionId.ALERT_DISABLE_ACCESS, disable["value"], message=messages[0]
    )
    assert response.status == 200
    thread = warden.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("thread_ts") == messages[0]["ts"]
    )[0]
    assert "<@U0SEC1> used Disable access" in thread.args["text"] and key in thread.args["text"]
    assert iam.list_access_keys(UserName="bob")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName="bob")
    assert any(
        r["action"].startswith("offboarding") or "disable" in r["action"] for r in warden.store.audit_rows()
    )


def test_other_alerts_have_no_disable_access_button(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("create_access_key_other_user", clock.now()))
    assert ActionId.ALERT_DISABLE_ACCESS not in buttons(messages[0])


# -- CONSOLE_SIGNIN_TOKEN: the bot's own sessions, and impostors ------------------------------------


def test_get_signin_token_from_a_session_this_bot_issued_is_quiet(warden, pipeline, clock):
    store = warden.store
    if not store.db["access_grants"].exists():
        pytest.skip("the access feature's access_grants table is not in this build")
    t = clock.now()
    store.db["access_grants"].insert(
        {
            "request_id": "r7k2m9q4",
            "access_key_id": "ASIAQ3EXAMPLESESSION",
            "session_name": "iamwarden-U0ALICE-r7k2m9q4",
            "issued_at": iso(t - timedelta(minutes=5)),
            "expires_at": iso(t + timedelta(minutes=55)),
        }
    )
    assert feed(warden, pipeline, event("get_signin_token_named_like_iamwarden", t)) == []
    # Same prefix, a session name the bot never issued: an impostor, and the alert says so.
    impostor = event(
        "get_signin_token_named_like_iamwarden",
        later(t, minutes=1),
        **{"userIdentity.arn": "arn:aws:sts::123456789012:assumed-role/prod-admin/iamwarden-U0EVE-x"},
    )
    messages = feed(warden, pipeline, impostor)
    assert rules_posted(messages) == ["CONSOLE_SIGNIN_TOKEN"]
    assert "no such grant is recorded" in message_text(messages[0])


# -- ROLE_TRUST_OPENED -----------------------------------------------------------------------------


def _trust(principal: str, condition: dict | None = None) -> str:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_dropping_the_mfa_condition_from_a_trust_policy_is_noticed(warden, pipeline, clock):
    t = clock.now()
    own = "arn:aws:iam::123456789012:root"
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    guarded = event("update_assume_role_policy", t, **{"requestParameters.policyDocument": _trust(own, mfa)})
    dropped = event(
        "update_assume_role_policy", later(t, minutes=20), **{"requestParameters.policyDocument": _trust(own)}
    )
    messages = feed(warden, pipeline, guarded, dropped)
    assert rules_posted(messages) == ["IAM_POLICY_CHANGE", "ROLE_TRUST_OPENED"]
    assert "without the ExternalId/MFA condition it had" in message_text(messages[1])


def test_trusting_one_of_our_accounts_is_not_opening_the_trust(make_bot, pipeline, clock):
    bot = make_bot(
        alerts_config(pipeline.queue_url) | {"accounts": [{"id": "999988887777", "name": "audit"}]}
    )
    messages = feed(bot, pipeline, event("update_assume_role_policy", clock.now()))
    assert rules_posted(messages) == ["IAM_POLICY_CHANGE"]


def test_an_unreadable_trust_policy_is_reported_not_passed(warden, pipeline, clock):
    record = event(
        "update_assume_role_policy", clock.now(), **{"requestParameters.policyDocument": "{not json"}
    )
    messages = feed(warden, pipeline, record)
    assert rules_posted(messages) == ["ROLE_TRUST_OPENED"]
    assert "could not be read" in message_text(messages[0])


def test_attacker_controlled_role_names_are_escaped(warden, pipeline, clock):
    record = event("create_role_trust_public", clock.now(), **{"requestParameters.roleName": "<!channel>&x"})
    message = feed(warden, pipeline, record)[0]
    # mrkdwn (the fallback text, sections, context) escapes it; the header is plain_text.
    assert "&lt;!channel&gt;&amp;x" in message["text"] and "<!channel>" not in message["text"]
    mrkdwn = [b for b in message["blocks"] if b["type"] != "header"]
    assert "<!channel>" not in json.dumps(mrkdwn)
    assert warden.slack.formatting_violations() == []


# -- PASSWORD_SPRAY counts root --------------------------------------------------------------------


def test_root_failures_count_toward_a_password_spray(warden, pipeline, clock):
    t = clock.now()
    users = [
        event("console_login_failure", later(t, minutes=i), **{"userIdentity.userName": f"u{i}"})
        for i in range(5)
    ]
    assert feed(warden, pipeline, *users) == []
    messages = feed(warden, pipeline, event("console_login_root_failure", later(t, minutes=6)))
    assert sorted(rules_posted(messages)) == ["PASSWORD_SPRAY", "ROOT_LOGIN_FAILED"]
    assert "6 different users" in "\n".join(message_text(m) for m in messages)


# -- UNAUTHORIZED_API_CALLS ------------------------------------------------------------------------


def test_denied_calls_are_counted_per_principal_with_the_top_actions(make_bot, pipeline, clock):
    bot = make_bot(alerts_config(pipeline.queue_url, rules={"UNAUTHORIZED_API_CALLS": {"threshold": 4}}))
    t = clock.now()
    bob = [event("unauthorized_list_users_cli", later(t, seconds=i)) for i in range(2)]
    bob += [
        event(
            "unauthorized_list_users_cli",
            later(t, seconds=5 + i),
            eventSource="s3.amazonaws.com",
            eventName="ListBuckets",
        )
        for i in range(1)
    ]
    other = [event("unauthorized_ec2_describe_assumed_role", later(t, seconds=i)) for i in range(3)]
    assert feed(bot, pipeline, *bob, *other) == []  # 3 each: below 4, never pooled across principals
    messages = feed(bot, pipeline, event("unauthorized_list_users_cli", later(t, minutes=2)))
    assert rules_posted(messages) == ["UNAUTHORIZED_API_CALLS"]
    text = message_text(messages[0])
    assert "bob was denied 4 API calls within 10m" in text
    assert "iam:ListUsers ×3, s3:ListBuckets ×1" in text


# -- overrides from TOML -------------------------------------------------------------------------


def test_new_rules_take_overrides_from_the_config(make_bot, pipeline, clock):
    bot = make_bot(
        alerts_config(
            pipeline.queue_url,
            rules={
                "IAM_PRINCIPAL_CREATED": {"severity": "high"},
                "LEAVE_ORGANIZATION": {"enabled": False},
                "SECURITY_SERVICE_DISABLED": {"dedupe_window": "5m"},
            },
        )
    )
    t = clock.now()
    messages = feed(
        bot, pipeline, event("create_user_console", t), event("leave_organization_by_admin_role", t)
    )
    assert rules_posted(messages) == ["IAM_PRINCIPAL_CREATED"]
    assert "HIGH" in message_text(messages[0])
    feed(
        bot,
        pipeline,
        event("guardduty_delete_detector", t),
        event("guardduty_delete_detector", later(t, minutes=6)),
    )
    assert rules_posted(bot.slack.messages(CHANNEL))[1:] == ["SECURITY_SERVICE_DISABLED"] * 2
