"""Root checks on moto, with the credential report's <root_account> row injected."""

from __future__ import annotations

import pytest

from sandbox.aws import RootAccount
from tests.scan_helpers import days_ago, failed, of, scan, unknown

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")

ROOT = "<root_account>"


def test_root_without_mfa_is_critical_and_the_root_row_never_appears_in_user_checks(aws, clock):
    aws.set_root(
        RootAccount(password_enabled=True, password_last_used=days_ago(clock, 200), mfa_active=False)
    )
    findings = scan(clock)
    assert ("ROOT_MFA_DISABLED", ROOT) in failed(findings)
    assert [f.severity.value for f in of(findings, "ROOT_MFA_DISABLED")] == ["critical"]
    user_checks = {
        "USER_CONSOLE_NO_MFA",
        "PASSWORD_UNUSED",
        "ACCESS_KEY_UNUSED",
        "PASSWORD_AND_KEYS",
        "ADMIN_NO_MFA",
    }
    assert not [f for f in findings if f.check_id in user_checks and f.principal_name == ROOT]


def test_root_with_mfa_passes(aws, clock):
    aws.set_root(RootAccount(password_enabled=True, password_last_used=days_ago(clock, 200), mfa_active=True))
    findings = scan(clock)
    assert failed(findings, "ROOT_MFA_DISABLED") == set()
    assert unknown(findings, "ROOT_MFA_DISABLED") == []


def test_root_access_keys_fire_per_active_key(aws, clock):
    aws.set_root(RootAccount(access_key_1_active=True, access_key_2_active=True))
    findings = of(scan(clock), "ROOT_ACCESS_KEYS")
    assert sorted(f.detail_key for f in findings) == ["access_key_1", "access_key_2"]
    assert all(f.principal_arn == "arn:aws:iam::123456789012:root" for f in findings)


def test_no_root_keys_no_finding(aws, clock):
    aws.set_root(RootAccount())
    assert failed(scan(clock), "ROOT_ACCESS_KEYS") == set()


def test_root_used_recently_fires_and_old_use_does_not(aws, clock):
    aws.set_root(RootAccount(password_last_used=days_ago(clock, 3)))
    assert ("ROOT_RECENT_USE", ROOT) in failed(scan(clock))
    aws.set_root(RootAccount(password_last_used=days_ago(clock, 300)))
    assert failed(scan(clock), "ROOT_RECENT_USE") == set()


def test_root_recent_key_use_counts(aws, clock):
    aws.set_root(RootAccount(access_key_1_active=True, access_key_1_last_used=days_ago(clock, 1)))
    assert ("ROOT_RECENT_USE", ROOT) in failed(scan(clock))


def test_root_virtual_mfa_fires_for_a_virtual_device_on_root(aws, clock):
    aws.set_root(RootAccount(mfa_active=True))
    serial = "arn:aws:iam::123456789012:mfa/root-account-mfa-device"
    aws.iam_backend().create_virtual_mfa_device("root-account-mfa-device", "/")
    findings = of(scan(clock), "ROOT_VIRTUAL_MFA")
    assert [(f.principal_name, f.detail_key) for f in findings] == [(ROOT, serial)]


def test_root_with_hardware_mfa_passes_virtual_check(aws, clock):
    aws.set_root(RootAccount(mfa_active=True))
    aws.iam_backend().create_virtual_mfa_device("someone-else", "/")
    assert failed(scan(clock), "ROOT_VIRTUAL_MFA") == set()


def test_root_signing_certificates(aws, clock):
    aws.set_root(RootAccount(cert_1_active=True))
    assert [f.detail_key for f in of(scan(clock), "ROOT_SIGNING_CERTS")] == ["cert_1"]
    aws.set_root(RootAccount())
    assert failed(scan(clock), "ROOT_SIGNING_CERTS") == set()


def test_centrally_managed_root_fires_no_root_credential_check(aws, clock, monkeypatch):
    from moto.iam.models import AccountSummary

    # Real GetAccountSummary says whether root has a password; moto omits the key, so add it.
    original = AccountSummary.summary_map
    monkeypatch.setattr(
        AccountSummary,
        "summary_map",
        property(lambda self: {**original.fget(self), "AccountPasswordPresent": 0}),
    )
    aws.set_root(RootAccount(password_enabled=False, mfa_active=False))
    findings = scan(clock)
    root_checks = {
        "ROOT_MFA_DISABLED",
        "ROOT_ACCESS_KEYS",
        "ROOT_RECENT_USE",
        "ROOT_VIRTUAL_MFA",
        "ROOT_SIGNING_CERTS",
    }
    assert [f for f in findings if f.check_id in root_checks] == []


def test_root_without_mfa_and_unknowable_password_says_could_not_evaluate(aws, clock):
    aws.set_root(RootAccount(password_enabled=False, mfa_active=False))
    findings = scan(clock)
    assert failed(findings, "ROOT_MFA_DISABLED") == set()
    assert [f.principal_name for f in unknown(findings, "ROOT_MFA_DISABLED")] == [ROOT]


def test_missing_root_row_is_unknown_not_a_pass(aws, clock):
    findings = scan(clock)  # moto's report has no root row unless one is injected
    for check_id in ("ROOT_MFA_DISABLED", "ROOT_ACCESS_KEYS", "ROOT_RECENT_USE", "ROOT_SIGNING_CERTS"):
        assert len(unknown(findings, check_id)) == 1, check_id
