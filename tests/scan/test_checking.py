"""The scan's AWS-free half (``run_checks``): suppressions listed, never hidden, and expiring; an
unreadable source makes its checks unknown, never a pass."""

from __future__ import annotations

import boto3
import pytest

from bot.scan import run_checks
from bot.settings import Config
from tests.scan.support import PASSWORD
from tests.scan_helpers import ACCOUNT_ID, allow, doc, failed, trust

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


def test_suppressions_are_listed_as_suppressed_not_hidden_and_expire(aws, clock, tmp_path):
    iam = boto3.client("iam")
    iam.create_user(UserName="legacy")
    iam.put_user_policy(UserName="legacy", PolicyName="p", PolicyDocument=doc(allow("s3:GetObject")))
    iam.create_role(RoleName="open", AssumeRolePolicyDocument=trust({"AWS": "*"}))
    from bot.aws import AwsFactory
    from bot.inventory import collect

    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    baseline = run_checks(inventory, Config(), now=clock.now())
    public = next(f for f in baseline if f.check_id == "ROLE_TRUST_PUBLIC")
    config = Config.model_validate(
        {
            "suppressions": [
                {"fingerprint": public.fingerprint, "reason": "demo bucket role", "expires": "2026-12-31"},
                {
                    "check_id": "USER_DIRECT_POLICIES",
                    "principal": "legacy",
                    "reason": "migrating",
                    "expires": "2026-11-01",
                },
            ]
        }
    )
    findings = run_checks(inventory, config, now=clock.now())
    suppressed = {f.check_id: f.suppression_reason for f in findings if f.suppressed}
    assert suppressed == {"ROLE_TRUST_PUBLIC": "demo bucket role (until 2026-12-31)"}  # the other expired
    assert ("USER_DIRECT_POLICIES", "legacy") in failed(findings)
    assert ("ROLE_TRUST_PUBLIC", "open") not in failed(findings)


def test_an_unreadable_credential_report_makes_its_checks_unknown_never_a_pass(aws, clock):
    from bot.aws import AwsFactory
    from bot.inventory import collect

    iam = boto3.client("iam")
    iam.create_user(UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    # What collect records when GenerateCredentialReport is denied:
    inventory["credential_report"] = None
    inventory["unknown_sources"] = [
        {"source": "credential_report", "reason": "AWS denied credential_report (AccessDenied)"}
    ]
    findings = run_checks(inventory, Config(), now=clock.now())
    for check_id in (
        "USER_CONSOLE_NO_MFA",
        "ADMIN_NO_MFA",
        "ACCESS_KEY_NOT_ROTATED",
        "PASSWORD_UNUSED",
        "ROOT_MFA_DISABLED",
    ):
        [finding] = [f for f in findings if f.check_id == check_id]
        assert finding.status.value == "unknown" and "AccessDenied" in finding.detail, check_id
    # Checks that do not need the report still ran.
    assert ("USER_DIRECT_POLICIES", "bob") not in failed(findings)
    assert [f.status.value for f in findings if f.check_id == "PASSWORD_POLICY_WEAK"] == ["fail"]
