"""The demo account: a small company whose IAM tells a story.

- Ada, an administrator who signs in to the console without MFA.
- Carlos, a contractor whose access key is 200 days old.
- Dana, who left (her Slack account is deactivated) but still has an active key.
- ``vendor-audit``, a role another account can assume with no ExternalId.
- ``prod-readonly``, a clean role; ``prod-admin``, the role people request just in time.
- Sam, on the security team, with MFA and nothing to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.aws import AwsFactory
from sandbox.aws import DEFAULT_ACCOUNT, MotoSandbox, RootAccount

ACCOUNT_ID = DEFAULT_ACCOUNT
VENDOR_ACCOUNT = "999988887777"


@dataclass(frozen=True)
class DemoPerson:
    slack_id: str
    name: str
    real_name: str
    email: str
    iam_user: str | None
    deleted: bool = False


PEOPLE = (
    DemoPerson("U0ADA", "ada", "Ada Admin", "ada@example.com", "ada"),
    DemoPerson("U0BOB", "bob", "Bob Builder", "bob@example.com", "bob"),
    DemoPerson("U0CARLOS", "carlos", "Carlos Contractor", "carlos@contractor.example", "carlos"),
    DemoPerson("U0DANA", "dana", "Dana Departed", "dana@example.com", "dana", deleted=True),
    DemoPerson("U0SAM", "sam", "Sam Security", "sam@example.com", "sam"),
)

TRUST_ACCOUNT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}
TRUST_VENDOR = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadS3", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
    ],
}


def seed_demo_account(aws: AwsFactory, sandbox: MotoSandbox, *, now: datetime) -> None:
    """Create the demo company's IAM in the sandbox, with credentials aged relative to ``now``."""
    iam = aws.client("iam")
    iam.create_account_alias(AccountAlias="demo-company")
    iam.update_account_password_policy(MinimumPasswordLength=8, PasswordReusePrevention=3)

    for person in PEOPLE:
        if person.iam_user:
            iam.create_user(UserName=person.iam_user, Tags=[{"Key": "email", "Value": person.email}])

    iam.create_group(GroupName="admins")
    iam.attach_group_policy(GroupName="admins", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.add_user_to_group(GroupName="admins", UserName="ada")
    iam.create_login_profile(UserName="ada", Password="Demo-Passw0rd!")  # noqa: S106 - sandbox only
    sandbox.set_password_last_used("ada", now - timedelta(days=1))

    iam.create_group(GroupName="developers")
    iam.attach_group_policy(GroupName="developers", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.add_user_to_group(GroupName="developers", UserName="bob")
    iam.add_user_to_group(GroupName="developers", UserName="carlos")

    # Carlos: a programmatic contractor whose key has never been rotated.
    iam.create_access_key(UserName="carlos")
    sandbox.age_user("carlos", created=now - timedelta(days=400))
    sandbox.age_access_key(
        "carlos", created=now - timedelta(days=200), last_used=now - timedelta(days=2), service="s3"
    )
    iam.put_user_policy(
        UserName="carlos",
        PolicyName="deploy-lambdas",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Deploy",
                        "Effect": "Allow",
                        "Action": ["lambda:CreateFunction", "lambda:InvokeFunction", "iam:PassRole"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )

    # Dana left two months ago; her key still works.
    iam.create_access_key(UserName="dana")
    sandbox.age_user("dana", created=now - timedelta(days=700))
    sandbox.age_access_key(
        "dana", created=now - timedelta(days=80), last_used=now - timedelta(days=60), service="s3"
    )

    # Sam: security, console with a virtual MFA device.
    iam.create_login_profile(UserName="sam", Password="Demo-Passw0rd!")  # noqa: S106 - sandbox only
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="sam")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName="sam", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    sandbox.set_password_last_used("sam", now - timedelta(hours=3))
    iam.attach_user_policy(UserName="sam", PolicyArn="arn:aws:iam::aws:policy/SecurityAudit")

    iam.create_role(RoleName="vendor-audit", AssumeRolePolicyDocument=json.dumps(TRUST_VENDOR))
    iam.attach_role_policy(RoleName="vendor-audit", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")

    iam.create_role(RoleName="prod-readonly", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))
    iam.put_role_policy(RoleName="prod-readonly", PolicyName="read-s3", PolicyDocument=json.dumps(READ_ONLY))
    sandbox.set_role_last_used("prod-readonly", now - timedelta(days=3))

    iam.create_role(
        RoleName="prod-admin", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT), MaxSessionDuration=7200
    )
    iam.attach_role_policy(RoleName="prod-admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")

    iam.create_role(RoleName="AWSSupportAccess-role", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))
    iam.attach_role_policy(
        RoleName="AWSSupportAccess-role", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess"
    )

    # The root user: MFA on, no keys, used a week ago (worth a look).
    sandbox.set_root(
        RootAccount(password_enabled=True, password_last_used=now - timedelta(days=7), mfa_active=True)
    )


DEMO_CONFIG = {
    "slack": {
        "approvals_channel": "C0APPROVALS",
        "security_channel": "C0SECURITY",
        "digest_channel": "C0SECURITY",
        "alerts_channel": "C0SECURITY",
        "security_team": ["U0SAM"],
    },
    "roles": [
        {
            "name": "prod-admin",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/prod-admin",
            "max_duration": "2h",
            "approvers": ["U0SAM", "U0BOB"],
            "approvals_required": 1,
            "break_glass": True,
            "break_glass_requesters": ["U0ADA", "U0BOB"],
        },
        {
            "name": "prod-readonly",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/prod-readonly",
            "max_duration": "4h",
            "approvers": ["U0SAM", "U0ADA"],
        },
    ],
    "accounts": [{"id": ACCOUNT_ID, "name": "demo-company"}],
    "identity": {"tag_key": "email"},
}
