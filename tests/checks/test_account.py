"""Account checks on moto plus the local Access Analyzer stub (moto has no Access Analyzer)."""

from __future__ import annotations

import boto3
import pytest

from bot.aws import AwsFactory
from bot.inventory import collect
from bot.scan import run_checks
from bot.settings import Config
from tests.scan_helpers import ACCOUNT_ID, failed, of, scan, trust, unknown

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


@pytest.fixture
def iam(aws):
    return boto3.client("iam")


def test_missing_password_policy_is_weak(iam, clock):
    findings = of(scan(clock), "PASSWORD_POLICY_WEAK")
    assert [(f.principal_name, f.detail) for f in findings] == [
        (None, "The account has no password policy (AWS defaults allow 8 characters and reuse).")
    ]
    assert "--minimum-password-length 14 --password-reuse-prevention 24" in findings[0].remediation


def test_short_password_policy_is_weak_and_a_strong_one_passes(iam, clock):
    iam.update_account_password_policy(MinimumPasswordLength=8, PasswordReusePrevention=24)
    assert "minimum length 8 (want 14)" in of(scan(clock), "PASSWORD_POLICY_WEAK")[0].detail
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=5)
    assert "reuse prevention 5 (want 24)" in of(scan(clock), "PASSWORD_POLICY_WEAK")[0].detail
    iam.update_account_password_policy(MinimumPasswordLength=16, PasswordReusePrevention=24)
    assert of(scan(clock), "PASSWORD_POLICY_WEAK") == []


def test_no_analyzer_means_access_analyzer_disabled(iam, clock, access_analyzer):
    access_analyzer.add_analyzer("unused", type="ACCOUNT_UNUSED_ACCESS")
    assert len(of(scan(clock), "ACCESS_ANALYZER_DISABLED")) == 1
    access_analyzer.add_analyzer("external")
    assert of(scan(clock), "ACCESS_ANALYZER_DISABLED") == []


def test_access_denied_on_access_analyzer_is_unknown_never_a_pass(iam, clock, access_analyzer):
    access_analyzer.deny()
    findings = scan(clock)
    for check_id in ("ACCESS_ANALYZER_DISABLED", "EXTERNAL_ACCESS"):
        assert failed(findings, check_id) == set()
        [finding] = unknown(findings, check_id)
        assert "AccessDeniedException" in finding.detail
    # Everything else was still evaluated.
    assert of(findings, "PASSWORD_POLICY_WEAK")[0].status.value == "fail"


def test_throttled_access_analyzer_is_retried_and_then_evaluated(iam, clock, access_analyzer):
    arn = access_analyzer.add_analyzer("external")
    access_analyzer.add_finding(arn, f"arn:aws:iam::{ACCOUNT_ID}:role/shared")
    access_analyzer.throttle(times=2)  # AWS says "Rate exceeded" twice, then answers
    findings = scan(clock)
    assert failed(findings, "EXTERNAL_ACCESS") == {("EXTERNAL_ACCESS", "shared")}
    assert unknown(findings, "EXTERNAL_ACCESS") == []
    assert len(access_analyzer.requests) >= 4  # the two throttled attempts were retried


def test_access_analyzer_throttled_past_the_retries_is_unknown_never_a_pass(iam, clock, access_analyzer):
    access_analyzer.add_analyzer("external")
    access_analyzer.throttle()  # every request
    findings = scan(clock)
    for check_id in ("ACCESS_ANALYZER_DISABLED", "EXTERNAL_ACCESS"):
        assert failed(findings, check_id) == set()
        [finding] = unknown(findings, check_id)
        assert "throttling" in finding.detail.lower()
    assert of(findings, "PASSWORD_POLICY_WEAK")[0].status.value == "fail"


def test_external_access_reports_active_findings_across_pages(iam, clock, access_analyzer):
    arn = access_analyzer.add_analyzer("external")
    for name in ("shared-1", "shared-2", "shared-3"):  # the stub pages two at a time
        access_analyzer.add_finding(arn, f"arn:aws:iam::{ACCOUNT_ID}:role/{name}")
    access_analyzer.add_finding(
        arn, "arn:aws:s3:::archived-bucket", resource_type="AWS::S3::Bucket", status="ARCHIVED"
    )
    findings = of(scan(clock), "EXTERNAL_ACCESS")
    assert sorted(f.principal_name for f in findings) == ["shared-1", "shared-2", "shared-3"]
    assert findings[0].severity.value == "high"
    assert f"--analyzer-arn {arn}" in findings[0].remediation


def test_no_external_access_findings_passes(iam, clock, access_analyzer):
    access_analyzer.add_analyzer("external")
    assert failed(scan(clock), "EXTERNAL_ACCESS") == set()


def test_support_role_missing_and_present(iam, clock):
    assert failed(scan(clock), "SUPPORT_ROLE_MISSING") == {("SUPPORT_ROLE_MISSING", None)}
    iam.create_role(
        RoleName="support", AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"})
    )
    iam.attach_role_policy(RoleName="support", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    assert failed(scan(clock), "SUPPORT_ROLE_MISSING") == set()


def test_expired_server_certificate(iam, clock):
    iam.upload_server_certificate(
        ServerCertificateName="old-site", CertificateBody="-----BEGIN CERTIFICATE-----", PrivateKey="key"
    )
    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    findings = of(run_checks(inventory, Config(), now=clock.now()), "EXPIRED_SERVER_CERTIFICATE")
    assert [f.principal_name for f in findings] == ["old-site"]  # moto's certificates expired in 2012
    inventory["server_certificates"][0]["Expiration"] = "2030-01-01T00:00:00+00:00"
    assert of(run_checks(inventory, Config(), now=clock.now()), "EXPIRED_SERVER_CERTIFICATE") == []


def test_api_calls_count_every_request_sent_retries_included(iam, clock, access_analyzer):
    from bot.aws import AwsFactory
    from bot.inventory import collect

    access_analyzer.add_analyzer("external")
    access_analyzer.throttle(times=2)  # two attempts answered 429, then retried
    aws = AwsFactory()
    inventory = collect(aws, account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    sent_to_analyzer = len(access_analyzer.requests)
    counted = sum(n for op, n in aws.counter.by_operation.items() if op.startswith("accessanalyzer:"))
    assert counted == sent_to_analyzer >= 3
    assert inventory["api_calls"] == aws.counter.total
