"""MFA checks on moto: console users without MFA, and administrators (direct, group, inline) without MFA."""

from __future__ import annotations

import boto3
import pytest

from tests.scan_helpers import allow, days_ago, doc, failed, of, scan

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def enable_mfa(iam, user: str) -> None:
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )


def test_console_user_without_mfa_fires_and_with_mfa_does_not(aws, clock):
    iam = boto3.client("iam")
    for name in ("nomfa", "withmfa", "keysonly"):
        iam.create_user(UserName=name)
    iam.create_login_profile(UserName="nomfa", Password="Passw0rd!Passw0rd")
    iam.create_login_profile(UserName="withmfa", Password="Passw0rd!Passw0rd")
    enable_mfa(iam, "withmfa")
    iam.create_access_key(UserName="keysonly")
    aws.set_password_last_used("nomfa", days_ago(clock, 1))
    aws.set_password_last_used("withmfa", days_ago(clock, 1))
    assert failed(scan(clock), "USER_CONSOLE_NO_MFA") == {("USER_CONSOLE_NO_MFA", "nomfa")}


@pytest.mark.parametrize("how", ["direct", "group", "inline", "custom-managed"])
def test_admin_without_mfa_is_found_however_admin_is_granted(aws, clock, how):
    iam = boto3.client("iam")
    iam.create_user(UserName="boss")
    iam.create_access_key(UserName="boss")
    if how == "direct":
        iam.attach_user_policy(UserName="boss", PolicyArn=ADMIN)
    elif how == "group":
        iam.create_group(GroupName="admins")
        iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)
        iam.add_user_to_group(GroupName="admins", UserName="boss")
    elif how == "inline":
        iam.put_user_policy(UserName="boss", PolicyName="everything", PolicyDocument=doc(allow("*")))
    else:
        arn = iam.create_policy(PolicyName="god-mode", PolicyDocument=doc(allow("*:*")))["Policy"]["Arn"]
        iam.attach_user_policy(UserName="boss", PolicyArn=arn)
    findings = of(scan(clock), "ADMIN_NO_MFA")
    assert [(f.principal_name, f.severity.value) for f in findings] == [("boss", "critical")]


def test_admin_with_mfa_and_non_admin_without_mfa_pass(aws, clock):
    iam = boto3.client("iam")
    iam.create_user(UserName="boss")
    iam.attach_user_policy(UserName="boss", PolicyArn=ADMIN)
    enable_mfa(iam, "boss")
    iam.create_user(UserName="reader")
    iam.attach_user_policy(UserName="reader", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert failed(scan(clock), "ADMIN_NO_MFA") == set()


def test_admin_with_a_deny_on_iam_is_not_full_admin(aws, clock):
    iam = boto3.client("iam")
    iam.create_user(UserName="almost")
    iam.attach_user_policy(UserName="almost", PolicyArn=ADMIN)
    iam.put_user_policy(
        UserName="almost",
        PolicyName="no-iam",
        PolicyDocument=doc({"Effect": "Deny", "Action": "iam:*", "Resource": "*"}),
    )
    assert failed(scan(clock), "ADMIN_NO_MFA") == set()
