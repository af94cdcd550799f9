"""Credential checks on moto, with credentials aged through the backend."""

from __future__ import annotations

import boto3
import pytest

from tests.scan_helpers import days_ago, failed, of, scan

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


@pytest.fixture
def iam(aws):
    return boto3.client("iam")


def user_with_key(
    iam, aws, name: str, *, created_days: float, used_days: float | None, index: int = 0, clock=None
):
    if index == 0:
        iam.create_user(UserName=name)
    iam.create_access_key(UserName=name)
    return aws.age_access_key(
        name,
        created=days_ago(clock, created_days),
        last_used=days_ago(clock, used_days) if used_days is not None else None,
        index=index,
    )


def test_key_not_rotated_after_90_days(iam, aws, clock):
    user_with_key(iam, aws, "old", created_days=120, used_days=1, clock=clock)
    user_with_key(iam, aws, "fresh", created_days=30, used_days=1, clock=clock)
    findings = of(scan(clock), "ACCESS_KEY_NOT_ROTATED")
    assert [(f.principal_name, f.detail_key) for f in findings] == [("old", "access_key_1")]
    assert "aws iam list-access-keys --user-name old" in findings[0].remediation


def test_rotation_threshold_is_configurable(iam, aws, clock):
    user_with_key(iam, aws, "mid", created_days=40, used_days=1, clock=clock)
    assert failed(scan(clock, {"scan": {"key_rotation_days": 30}}), "ACCESS_KEY_NOT_ROTATED") == {
        ("ACCESS_KEY_NOT_ROTATED", "mid")
    }


def test_key_unused_for_45_days(iam, aws, clock):
    user_with_key(iam, aws, "idle", created_days=60, used_days=50, clock=clock)
    user_with_key(iam, aws, "busy", created_days=60, used_days=2, clock=clock)
    assert failed(scan(clock), "ACCESS_KEY_UNUSED") == {("ACCESS_KEY_UNUSED", "idle")}


def test_inactive_key_is_not_reported(iam, aws, clock):
    key = user_with_key(iam, aws, "idle", created_days=200, used_days=100, clock=clock)
    iam.update_access_key(UserName="idle", AccessKeyId=key, Status="Inactive")
    findings = scan(clock)
    for check_id in ("ACCESS_KEY_UNUSED", "ACCESS_KEY_NOT_ROTATED", "KEY_NEVER_USED"):
        assert failed(findings, check_id) == set()


def test_key_never_used(iam, aws, clock):
    user_with_key(iam, aws, "never", created_days=20, used_days=None, clock=clock)
    user_with_key(iam, aws, "brand-new", created_days=1, used_days=None, clock=clock)
    user_with_key(iam, aws, "used", created_days=20, used_days=3, clock=clock)
    findings = scan(clock)
    assert failed(findings, "KEY_NEVER_USED") == {("KEY_NEVER_USED", "never")}
    # A never-used key is not also "unused for 45 days".
    assert failed(findings, "ACCESS_KEY_UNUSED") == set()


def test_multiple_active_keys(iam, aws, clock):
    user_with_key(iam, aws, "two", created_days=10, used_days=1, clock=clock)
    user_with_key(iam, aws, "two", created_days=10, used_days=1, index=1, clock=clock)
    user_with_key(iam, aws, "one", created_days=10, used_days=1, clock=clock)
    assert failed(scan(clock), "MULTIPLE_ACTIVE_KEYS") == {("MULTIPLE_ACTIVE_KEYS", "two")}


def test_password_unused_for_45_days_and_never_used(iam, aws, clock):
    for name in ("stale", "active", "never"):
        iam.create_user(UserName=name)
        iam.create_login_profile(UserName=name, Password="Passw0rd!Passw0rd")
    aws.set_password_last_used("stale", days_ago(clock, 60))
    aws.set_password_last_used("active", days_ago(clock, 2))
    backend = aws.iam_backend()
    backend.users["never"].password_last_used = None
    # the report's password_last_changed for moto is the user's creation time
    aws.age_user("never", created=days_ago(clock, 100))
    findings = of(scan(clock), "PASSWORD_UNUSED")
    assert {f.principal_name: f.detail for f in findings} == {
        "stale": "Password last used 60 days ago (limit 45).",
        "never": "Password set 100 days ago and never used.",
    }


def test_password_and_keys(iam, aws, clock):
    user_with_key(iam, aws, "both", created_days=10, used_days=1, clock=clock)
    iam.create_login_profile(UserName="both", Password="Passw0rd!Passw0rd")
    aws.set_password_last_used("both", days_ago(clock, 1))
    iam.create_user(UserName="console")
    iam.create_login_profile(UserName="console", Password="Passw0rd!Passw0rd")
    user_with_key(iam, aws, "machine", created_days=10, used_days=1, clock=clock)
    assert failed(scan(clock), "PASSWORD_AND_KEYS") == {("PASSWORD_AND_KEYS", "both")}


def test_not_supported_and_na_values_never_crash(iam, aws, clock):
    # moto writes not_supported in last-used region/service columns and N/A for unused slots.
    iam.create_user(UserName="plain")
    findings = scan(clock)
    assert not [f for f in findings if "the check failed" in f.detail]
