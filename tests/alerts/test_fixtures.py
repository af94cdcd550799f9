"""Every CloudTrail fixture, end to end: delivered through moto's EventBridge (the README's pattern)
→ SQS → the bot's poll job → the channel. Each row states the rule(s) it must raise, or none.

The fixtures under tests/fixtures/cloudtrail/ are real-shaped records (console vs CLI vs SDK; root,
IAM user, assumed role, SSO, federated user; success and each failure shape; optional fields
missing), positives beside near-miss negatives. A fixture without a row fails the suite.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta

import pytest

from bot import alerts as alert_store
from handlers.alerts import poll_alerts
from tests.alerts.support import CHANNEL, FIXTURES, Pipeline, alerts_config, fixture
from tests.alerts.test_flows import rules_posted

# fixture name → (how many times it is delivered, the rules the channel must show, in order)
CASES: dict[str, tuple[int, list[str]]] = {
    # -- root ------------------------------------------------------------------------------------
    "console_login_root_success": (1, ["ROOT_ACTIVITY"]),
    "console_login_root_failure": (1, ["ROOT_LOGIN_FAILED"]),
    "root_console_login_failure_error_message_only": (1, ["ROOT_LOGIN_FAILED"]),
    "root_external_idp_login_failure": (1, ["ROOT_LOGIN_FAILED"]),
    "root_password_updated_failure": (1, ["ROOT_LOGIN_FAILED"]),
    "root_password_updated_success": (1, ["ROOT_ACTIVITY"]),
    "root_api_call": (1, ["ROOT_ACTIVITY"]),
    "root_console_create_access_key": (1, ["ROOT_ACTIVITY"]),
    "root_console_call_via_console_host": (1, ["ROOT_ACTIVITY"]),
    "root_service_event": (1, []),
    # -- console sign-in ---------------------------------------------------------------------------
    "console_login_failure": (1, []),
    "console_login_mfa": (1, []),
    "console_login_no_mfa": (1, ["CONSOLE_LOGIN_NO_MFA"]),
    "console_login_sso": (1, []),
    "console_login_iam_user_saml": (1, []),
    "console_login_federated_user": (1, []),
    # -- policies ---------------------------------------------------------------------------------
    "put_role_policy": (1, ["IAM_POLICY_CHANGE"]),
    "set_default_policy_version": (1, ["IAM_POLICY_CHANGE"]),
    "attach_user_policy_admin": (1, ["ADMIN_POLICY_ATTACHED"]),
    "attach_user_policy_readonly": (1, ["IAM_POLICY_CHANGE"]),
    "jit_session_put_role_policy": (1, ["ADMIN_POLICY_ATTACHED"]),
    # -- keys, passwords, principals ----------------------------------------------------------------
    "create_access_key_other_user": (1, ["ACCESS_KEY_CREATED_FOR_OTHER_USER"]),
    "create_access_key_self": (1, ["IAM_PRINCIPAL_CREATED"]),
    "create_user_console": (1, ["IAM_PRINCIPAL_CREATED"]),
    "create_user_by_terraform": (1, []),  # [alerts] automation_principals below
    "create_user_denied": (1, []),
    "create_login_profile_other_user": (1, ["LOGIN_PROFILE_FOR_OTHER_USER"]),
    "update_login_profile_reset_required_console": (1, ["LOGIN_PROFILE_FOR_OTHER_USER"]),
    "update_login_profile_self": (1, []),
    "attach_quarantine_policy": (1, ["KEY_QUARANTINED"]),
    "deactivate_mfa_device": (1, ["MFA_DEACTIVATED"]),
    # -- trust ------------------------------------------------------------------------------------
    "update_assume_role_policy": (1, ["ROLE_TRUST_OPENED"]),
    "update_assume_role_policy_external_id": (1, ["IAM_POLICY_CHANGE"]),
    "update_assume_role_policy_url_encoded_public": (1, ["ROLE_TRUST_OPENED"]),
    "create_role_trust_public": (1, ["ROLE_TRUST_OPENED"]),
    "create_role_trust_star_scoped_to_org": (1, []),
    "create_role_service_trust": (1, []),
    # -- sessions, probing --------------------------------------------------------------------------
    "get_signin_token_assumed_role": (1, ["CONSOLE_SIGNIN_TOKEN"]),
    "get_signin_token_federated_user": (1, ["CONSOLE_SIGNIN_TOKEN"]),
    "get_signin_token_named_like_iamwarden": (1, ["CONSOLE_SIGNIN_TOKEN"]),  # no such grant recorded
    "get_signin_token_failed": (1, []),
    "unauthorized_list_users_cli": (10, ["UNAUTHORIZED_API_CALLS"]),
    "unauthorized_ec2_describe_assumed_role": (10, ["UNAUTHORIZED_API_CALLS"]),
    # -- identity providers, organization, security services ----------------------------------------
    "create_saml_provider": (1, ["SAML_PROVIDER_CHANGE"]),
    "delete_oidc_provider_console": (1, ["SAML_PROVIDER_CHANGE"]),
    "list_saml_providers": (1, []),
    "leave_organization": (1, ["ROOT_ACTIVITY", "LEAVE_ORGANIZATION"]),
    "leave_organization_by_admin_role": (1, ["LEAVE_ORGANIZATION"]),
    "describe_organization": (1, []),
    "guardduty_delete_detector": (1, ["SECURITY_SERVICE_DISABLED"]),
    "guardduty_update_detector_disable": (1, ["SECURITY_SERVICE_DISABLED"]),
    "guardduty_update_detector_keeps_enabled": (1, []),
    "guardduty_delete_detector_denied": (1, []),
    "config_stop_recorder": (1, ["SECURITY_SERVICE_DISABLED"]),
    "config_delete_recorder": (1, ["SECURITY_SERVICE_DISABLED"]),
    "ec2_delete_flow_logs": (1, ["SECURITY_SERVICE_DISABLED"]),
    "securityhub_disable": (1, ["SECURITY_SERVICE_DISABLED"]),
    "access_analyzer_delete_analyzer": (1, ["SECURITY_SERVICE_DISABLED"]),
    # -- CloudTrail ---------------------------------------------------------------------------------
    "stop_logging": (1, ["CLOUDTRAIL_TAMPERING"]),
    "delete_trail": (1, ["CLOUDTRAIL_TAMPERING"]),
    "update_trail": (1, ["CLOUDTRAIL_TAMPERING"]),
    "start_logging": (1, []),
    "put_event_selectors": (1, ["CLOUDTRAIL_TAMPERING"]),
    "put_event_selectors_write_only": (1, ["CLOUDTRAIL_TAMPERING"]),
    "put_event_selectors_exclude_kms": (1, ["CLOUDTRAIL_TAMPERING"]),
    "put_advanced_event_selectors_data_only": (1, ["CLOUDTRAIL_TAMPERING"]),
    "put_advanced_event_selectors_read_only_management": (1, ["CLOUDTRAIL_TAMPERING"]),
    "put_event_selectors_keeps_management": (1, ["CLOUDTRAIL_SELECTORS_CHANGED"]),
    "put_advanced_event_selectors_management": (1, ["CLOUDTRAIL_SELECTORS_CHANGED"]),
    # -- records with missing ids or odd times are events, not poison ---------------------------------
    "stop_logging_without_event_id_or_time": (1, ["CLOUDTRAIL_TAMPERING"]),
    "delete_trail_time_with_space_and_nanoseconds": (1, ["CLOUDTRAIL_TAMPERING"]),
}
# Whole EventBridge envelopes, not CloudTrail records.
ENVELOPES = {"access_analyzer_finding"}


def test_every_fixture_has_a_row():
    names = {p.stem for p in FIXTURES.glob("*.json")} - ENVELOPES
    assert names == set(CASES)


def deliveries(name: str, times: int) -> list[dict]:
    """The fixture as recorded, or (for windowed rules) ``times`` copies a few seconds apart."""
    record = fixture(name)
    if times == 1:
        return [record]
    out = []
    for i in range(times):
        copy_ = copy.deepcopy(record)
        copy_["eventID"] = str(uuid.uuid4())
        at = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")) + timedelta(seconds=20 * i)
        copy_["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(copy_)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_through_eventbridge_and_sqs(make_bot, aws, name):
    pipeline = Pipeline.create()
    bot = make_bot(alerts_config(pipeline.queue_url, automation_principals=["arn:aws:iam::*:role/terraform"]))
    times, expected = CASES[name]
    pipeline.put(*deliveries(name, times))
    poll_alerts(bot.services, bot.app.client)
    assert rules_posted(bot.slack.messages(CHANNEL)) == expected
    assert pipeline.depth() == 0 and pipeline.depth("dlq") == 0  # processed, none left as poison
    assert bot.slack.formatting_violations() == []


def test_one_fewer_denied_call_than_the_threshold_is_quiet(make_bot, aws):
    pipeline = Pipeline.create()
    bot = make_bot(alerts_config(pipeline.queue_url))
    pipeline.put(*deliveries("unauthorized_list_users_cli", 9))
    poll_alerts(bot.services, bot.app.client)
    assert bot.slack.messages(CHANNEL) == []


def test_a_record_without_an_event_id_delivered_twice_is_one_event(make_bot, aws):
    pipeline = Pipeline.create()
    bot = make_bot(alerts_config(pipeline.queue_url))
    record = fixture("stop_logging_without_event_id_or_time")
    pipeline.put(record)
    poll_alerts(bot.services, bot.app.client)
    pipeline.put(record)
    poll_alerts(bot.services, bot.app.client)
    (alert,) = alert_store.alerts(bot.store)
    assert alert.count == 1 and alert.first_seen  # the delivery time stood in for eventTime
    assert alert_store.parse_eventbridge(
        {"detail-type": "AWS API Call via CloudTrail", "detail": record, "time": "2026-11-29T12:00:00Z"}
    ).event_id.startswith("derived-")
