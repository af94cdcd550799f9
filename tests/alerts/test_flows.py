"""Alert rules end to end: CloudTrail records through moto's EventBridge → SQS, the bot's poll job,
and the messages the local Slack server received. Each rule: a positive and a negative case."""

from __future__ import annotations

import pytest

from bot import alerts as alert_store
from handlers.alerts import poll_alerts
from tests.alerts.support import CHANNEL, Pipeline, access_analyzer, alerts_config, event, fixture, later


@pytest.fixture
def pipeline(aws) -> Pipeline:
    return Pipeline.create()


@pytest.fixture
def warden(make_bot, pipeline):
    """The bot reading the pipeline's queue; ``feed(*records)`` delivers and runs one poll."""
    return make_bot(alerts_config(pipeline.queue_url))


def feed(bot, pipeline: Pipeline, *records) -> list[dict]:
    """Deliver records through EventBridge, run the poll job, return the channel's messages."""
    pipeline.put(*records)
    poll_alerts(bot.services, bot.app.client)
    return bot.slack.messages(CHANNEL)


def rules_posted(messages: list[dict]) -> list[str]:
    found = []
    for m in messages:
        for block in m["blocks"]:
            if block["type"] == "context":
                text = block["elements"][0]["text"]
                if text.startswith("Rule `"):
                    found.append(text.split("`")[1])
    return found


def message_text(message: dict) -> str:
    parts = [message.get("text", "")]
    for block in message.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        for f in block.get("fields", []) or []:
            parts.append(f["text"])
        for el in block.get("elements", []) or []:
            if isinstance(el.get("text"), str):
                parts.append(el["text"])
            elif isinstance(el.get("text"), dict):
                parts.append(el["text"]["text"])
    return "\n".join(parts)


# -- root ------------------------------------------------------------------------------------


def test_root_console_login_posts_a_critical_alert_with_context(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("console_login_root_success", clock.now()))
    assert rules_posted(messages) == ["ROOT_ACTIVITY"]
    text = message_text(messages[0])
    assert "CRITICAL" in text and "Root user signed in to the console without MFA" in text
    assert "`198.51.100.7`" in text  # source IP
    assert "Chrome/131" in text  # user agent
    assert "`123456789012`" in text  # account, although the delivered envelope has no `account`
    assert "us-east-1" in text
    assert "2026-11-29 12:00:00 UTC" in text
    labels = [
        e["text"]["text"] for b in messages[0]["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Acknowledge", "Ask the actor"]
    # Recorded, and the SQS message deleted only after that.
    assert pipeline.depth() == 0
    assert [a.rule_id for a in alert_store.alerts(warden.store)] == ["ROOT_ACTIVITY"]


def test_root_api_call_is_root_activity(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("root_api_call", clock.now()))
    assert rules_posted(messages) == ["ROOT_ACTIVITY"]
    assert "Root user called iam:CreateUser" in message_text(messages[0])


def test_root_call_made_by_an_aws_service_is_not_an_alert(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("root_service_event", clock.now()))
    assert messages == []
    assert pipeline.depth() == 0  # processed (nothing to say), not left on the queue


def test_failed_root_sign_in(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("console_login_root_failure", clock.now()))
    assert rules_posted(messages) == ["ROOT_LOGIN_FAILED"]


def test_one_failed_iam_user_sign_in_is_not_an_alert(warden, pipeline, clock):
    assert feed(warden, pipeline, event("console_login_failure", clock.now())) == []


# -- console sign-in failures and password spray ----------------------------------------------


def test_console_login_failures_alert_at_the_threshold_within_the_window(warden, pipeline, clock):
    t = clock.now()
    four = [event("console_login_failure", later(t, minutes=i)) for i in range(4)]
    assert feed(warden, pipeline, *four) == []
    messages = feed(warden, pipeline, event("console_login_failure", later(t, minutes=5)))
    assert rules_posted(messages) == ["CONSOLE_LOGIN_FAILURES"]
    assert "5 failed console sign-ins for bob within 15m" in message_text(messages[0])


def test_console_login_failures_spread_beyond_the_window_do_not_alert(warden, pipeline, clock):
    t = clock.now()
    spread = [event("console_login_failure", later(t, minutes=10 * i)) for i in range(6)]
    assert feed(warden, pipeline, *spread) == []


def test_password_spray_needs_more_than_n_distinct_users_within_an_hour(warden, pipeline, clock):
    t = clock.now()
    users = ["u1", "u2", "u3", "u4", "u5"]
    records = [
        event("console_login_failure", later(t, minutes=i * 5), **{"userIdentity.userName": u})
        for i, u in enumerate(users)
    ]
    assert feed(warden, pipeline, *records) == []  # 5 users: not more than 5
    messages = feed(
        warden,
        pipeline,
        event("console_login_failure", later(t, minutes=40), **{"userIdentity.userName": "u6"}),
    )
    assert rules_posted(messages) == ["PASSWORD_SPRAY"]
    assert "6 different users within 1h" in message_text(messages[0])


def test_thresholds_and_windows_come_from_the_config(make_bot, pipeline, clock):
    bot = make_bot(
        alerts_config(
            pipeline.queue_url,
            rules={
                "CONSOLE_LOGIN_FAILURES": {"threshold": 2, "window": "5m"},
                "ROOT_ACTIVITY": {"enabled": False},
            },
        )
    )
    t = clock.now()
    assert feed(bot, pipeline, event("console_login_root_success", t)) == []
    assert (
        feed(
            bot,
            pipeline,
            event("console_login_failure", t),
            event("console_login_failure", later(t, minutes=6)),
        )
        == []
    )
    messages = feed(bot, pipeline, event("console_login_failure", later(t, minutes=8)))
    assert rules_posted(messages) == ["CONSOLE_LOGIN_FAILURES"]
    assert "2 failed console sign-ins for bob within 5m" in message_text(messages[0])


# -- sign-in without MFA -----------------------------------------------------------------------


def test_iam_user_console_login_without_mfa(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("console_login_no_mfa", clock.now()))
    assert rules_posted(messages) == ["CONSOLE_LOGIN_NO_MFA"]
    assert "<@U0ALICE>" in message_text(messages[0])  # mapped through [identity] map


def test_console_login_with_mfa_or_through_sso_is_not_an_alert(warden, pipeline, clock):
    t = clock.now()
    assert feed(warden, pipeline, event("console_login_mfa", t), event("console_login_sso", t)) == []


# -- IAM policy changes ------------------------------------------------------------------------


def test_policy_change_on_a_jit_role_is_critical(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("put_role_policy", clock.now()))
    assert rules_posted(messages) == ["IAM_POLICY_CHANGE"]
    text = message_text(messages[0])
    assert "CRITICAL" in text and "PutRolePolicy on role prod-admin" in text


def test_set_default_policy_version_and_trust_policy_changes_alert(warden, pipeline, clock):
    t = clock.now()
    guarded = event(
        "update_assume_role_policy",
        t,
        **{
            "requestParameters.policyDocument": fixture("update_assume_role_policy_external_id")[
                "requestParameters"
            ]["policyDocument"]
        },
    )
    messages = feed(warden, pipeline, event("set_default_policy_version", t), guarded)
    assert rules_posted(messages) == ["IAM_POLICY_CHANGE", "IAM_POLICY_CHANGE"]
    text = "\n".join(message_text(m) for m in messages)
    assert "MEDIUM" in text and "SetDefaultPolicyVersion on policy deploy-boundary" in text
    assert "UpdateAssumeRolePolicy on role vendor-audit" in text


def test_trust_opened_to_an_outside_account_is_the_specific_alert(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("update_assume_role_policy", clock.now()))
    assert rules_posted(messages) == ["ROLE_TRUST_OPENED"]
    text = message_text(messages[0])
    assert "HIGH" in text and "account 999988887777 (no ExternalId or MFA condition)" in text


def test_configured_critical_policy_makes_the_change_critical(make_bot, pipeline, clock):
    bot = make_bot(alerts_config(pipeline.queue_url, critical_policies=["deploy-boundary"]))
    messages = feed(bot, pipeline, event("set_default_policy_version", clock.now()))
    assert "CRITICAL" in message_text(messages[0])


def test_denied_or_read_only_iam_calls_are_not_policy_changes(warden, pipeline, clock):
    t = clock.now()
    denied = event("put_role_policy", t, errorCode="AccessDenied", errorMessage="not authorized")
    read = event("put_role_policy", t, eventName="GetRolePolicy", readOnly=True)
    assert feed(warden, pipeline, denied, read) == []


def test_admin_policy_attached(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("attach_user_policy_admin", clock.now()))
    # The specific rule wins: one alert, not a second generic policy-change one.
    assert rules_posted(messages) == ["ADMIN_POLICY_ATTACHED"]
    assert "alice attached AdministratorAccess to user mallory" in message_text(messages[0])


def test_attaching_a_non_admin_policy_is_only_a_policy_change(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("attach_user_policy_readonly", clock.now()))
    assert rules_posted(messages) == ["IAM_POLICY_CHANGE"]


# -- keys, MFA, CloudTrail, Access Analyzer ---------------------------------------------------


def test_access_key_created_for_another_user(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("create_access_key_other_user", clock.now()))
    assert rules_posted(messages) == ["ACCESS_KEY_CREATED_FOR_OTHER_USER"]
    text = message_text(messages[0])
    assert "alice created an access key for bob" in text and "AKIAQ3EXAMPLENEWKEY1" in text


def test_access_key_created_for_oneself_is_a_low_notice(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("create_access_key_self", clock.now()))
    assert rules_posted(messages) == ["IAM_PRINCIPAL_CREATED"]
    assert "LOW" in message_text(messages[0]) and "alice created an access key for itself" in message_text(
        messages[0]
    )


def test_automation_principals_create_keys_and_users_quietly(make_bot, pipeline, clock):
    bot = make_bot(
        alerts_config(
            pipeline.queue_url,
            automation_principals=[
                "arn:aws:iam::*:user/alice",
                "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/AWSReserved*",
            ],
        )
    )
    t = clock.now()
    assert feed(bot, pipeline, event("create_access_key_self", t), event("create_user_console", t)) == []


def test_mfa_deactivated(warden, pipeline, clock):
    messages = feed(warden, pipeline, event("deactivate_mfa_device", clock.now()))
    assert rules_posted(messages) == ["MFA_DEACTIVATED"]
    assert "alice deactivated MFA for bob" in message_text(messages[0])


def test_failed_mfa_deactivation_is_not_an_alert(warden, pipeline, clock):
    record = event("deactivate_mfa_device", clock.now(), errorCode="AccessDenied")
    assert feed(warden, pipeline, record) == []


@pytest.mark.parametrize("name", ["stop_logging", "delete_trail", "update_trail", "put_event_selectors"])
def test_cloudtrail_tampering(warden, pipeline, clock, name):
    messages = feed(warden, pipeline, event(name, clock.now()))
    assert rules_posted(messages) == ["CLOUDTRAIL_TAMPERING"]
    assert "CRITICAL" in message_text(messages[0]) and "management-events" in message_text(messages[0])


def test_starting_logging_is_not_tampering(warden, pipeline, clock):
    assert feed(warden, pipeline, event("start_logging", clock.now())) == []


def test_access_analyzer_active_finding(warden, pipeline, clock):
    messages = feed(warden, pipeline, access_analyzer(clock.now()))
    assert rules_posted(messages) == ["ACCESS_ANALYZER_FINDING"]
    assert "vendor-audit is accessible by 999988887777" in message_text(messages[0])


def test_archived_access_analyzer_finding_is_not_an_alert(warden, pipeline, clock):
    assert feed(warden, pipeline, access_analyzer(clock.now(), status="ARCHIVED")) == []


# -- dedupe, escaping ---------------------------------------------------------------------------


def test_repeats_inside_the_dedupe_window_update_a_counter(warden, pipeline, clock):
    t = clock.now()
    feed(warden, pipeline, event("console_login_root_success", t))
    messages = feed(
        warden,
        pipeline,
        event("console_login_root_success", later(t, minutes=10)),
        event("root_api_call", later(t, minutes=20)),
    )
    assert len(messages) == 1
    assert "seen 3 times" in message_text(messages[0])
    assert len(warden.slack.calls_to("chat.postMessage")) == 1
    assert warden.slack.calls_to("chat.update")
    # Past the dedupe window (1 h): a new message.
    messages = feed(warden, pipeline, event("console_login_root_success", later(t, minutes=75)))
    assert len(messages) == 2 and "seen once" in message_text(messages[1])


def test_what_attackers_control_is_escaped(warden, pipeline, clock):
    record = event("console_login_root_success", clock.now(), userAgent="<!channel> <@U0SEC1> & co")
    messages = feed(warden, pipeline, record)
    text = message_text(messages[0])
    assert "<!channel>" not in text and "<@U0SEC1>" not in text
    assert "&lt;!channel&gt; &lt;@U0SEC1&gt; &amp; co" in text
    assert warden.slack.formatting_violations() == []
