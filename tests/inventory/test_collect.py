"""The bulk snapshot: its shape, a constant number of calls, the backoff seam, merged pages."""

from __future__ import annotations

import json

import pytest

from bot.aws import AwsFactory
from bot.inventory import MAX_SINGLE_AWS_POLICIES, collect
from sandbox.aws import RootAccount
from tests.scan_helpers import ACCOUNT_ID, allow, doc

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def seed_users(iam, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        name = f"user-{i:03d}"
        iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": f"{name}@example.com"}])
        iam.add_user_to_group(GroupName="staff", UserName=name)
        iam.create_access_key(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="own", PolicyDocument=doc(allow("s3:GetObject")))


def test_inventory_has_every_source_in_json_safe_shapes(iam, aws, clock, access_analyzer):
    aws.set_root(RootAccount())
    access_analyzer.add_analyzer("external")
    iam.create_group(GroupName="staff")
    iam.attach_group_policy(GroupName="staff", PolicyArn=READ_ONLY)
    seed_users(iam, 2)
    iam.attach_user_policy(UserName="user-000", PolicyArn=ADMIN)
    iam.create_role(
        RoleName="app",
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ),
    )
    custom = iam.create_policy(PolicyName="custom", PolicyDocument=doc(allow("s3:ListBucket")))["Policy"][
        "Arn"
    ]

    inv = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)

    json.dumps(inv)  # stored as the snapshot's JSON as is
    assert inv["account_id"] == ACCOUNT_ID
    assert inv["collected_at"] == "2026-11-29T12:00:00+00:00"
    assert [r["user"] for r in inv["credential_report"]] == ["<root_account>", "user-000", "user-001"]
    assert "access_key_1_last_used_date" in inv["credential_report"][1]
    user = next(u for u in inv["users"] if u["UserName"] == "user-000")
    assert user["Tags"] == [{"Key": "email", "Value": "user-000@example.com"}]
    assert user["GroupList"] == ["staff"]
    assert user["UserPolicyList"][0]["PolicyName"] == "own"
    assert user["AttachedManagedPolicies"] == [{"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN}]
    role = inv["roles"][0]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert "RoleLastUsed" in role and "MaxSessionDuration" in role
    # customer-managed policies, and only the AWS-managed ones that are attached
    assert sorted(p["Arn"] for p in inv["policies"]) == sorted([custom, ADMIN, READ_ONLY])
    for policy in inv["policies"]:
        assert [v["IsDefaultVersion"] for v in policy["PolicyVersionList"]] == [True]
    assert inv["password_policy"] is None
    assert inv["account_summary"]["Users"] == 2
    assert inv["access_analyzer"]["status"] == "ok"
    assert [a["name"] for a in inv["access_analyzer"]["analyzers"]] == ["external"]
    for key in ("virtual_mfa_devices", "server_certificates", "saml_providers", "oidc_providers"):
        assert inv[key] == []
    assert inv["unknown_sources"] == []
    assert inv["api_calls"] > 0


def test_calls_do_not_grow_with_the_number_of_users(iam, clock):
    iam.create_group(GroupName="staff")
    iam.attach_group_policy(GroupName="staff", PolicyArn=READ_ONLY)
    seed_users(iam, 2)
    collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)  # report now generated
    small = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)["api_calls"]
    seed_users(iam, 40, start=2)
    large = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    assert len(large["users"]) == 42
    assert large["api_calls"] == small
    assert small <= 20


def test_credential_report_is_polled_through_the_sleep_seam(iam, clock):
    iam.create_user(UserName="someone")
    sleeps: list[float] = []
    inv = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=sleeps.append)
    assert sleeps == [0.5]  # moto answers STARTED once, then COMPLETE
    assert [r["user"] for r in inv["credential_report"]] == ["someone"]


def test_many_attached_aws_policies_are_read_in_one_filtered_pass(iam, clock):
    names = [
        "ReadOnlyAccess",
        "SecurityAudit",
        "AmazonS3FullAccess",
        "AmazonEC2FullAccess",
        "IAMReadOnlyAccess",
        "AWSSupportAccess",
        "AWSCloudShellFullAccess",
        "AmazonSQSReadOnlyAccess",
    ]
    assert len(names) > MAX_SINGLE_AWS_POLICIES
    iam.create_role(
        RoleName="many",
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ),
    )
    iam.create_user(UserName="many")
    for i, name in enumerate(names):
        target = {"RoleName": "many"} if i < 5 else {"UserName": "many"}
        attach = iam.attach_role_policy if i < 5 else iam.attach_user_policy
        attach(PolicyArn=f"arn:aws:iam::aws:policy/{name}", **target)
    aws = AwsFactory()
    inv = collect(aws, account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    assert sorted(p["PolicyName"] for p in inv["policies"]) == sorted(names)
    assert aws.counter.by_operation["iam:GetPolicy"] == 0
    assert aws.counter.by_operation["iam:GetAccountAuthorizationDetails"] == 2


def test_a_report_that_never_completes_is_unknown_after_the_backoff(iam, clock, monkeypatch):
    from moto.iam.models import IAMBackend

    from bot.inventory import REPORT_POLL_DELAYS

    monkeypatch.setattr(IAMBackend, "report_generated", lambda self: False)  # AWS keeps saying STARTED
    iam.create_user(UserName="someone")
    sleeps: list[float] = []
    inv = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=sleeps.append)
    assert sleeps == list(REPORT_POLL_DELAYS)  # backoff through the seam, no real waiting
    assert inv["credential_report"] is None
    [entry] = inv["unknown_sources"]
    assert entry["source"] == "credential_report" and "ReportInProgress" in entry["reason"]
    assert [u["UserName"] for u in inv["users"]] == ["someone"]  # the rest of the snapshot is there


def test_authorization_details_pages_are_merged(iam, clock, monkeypatch):
    """moto answers GAAD in one page whatever MaxItems says; make it page (3 entries a page) as AWS does."""
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def paged(self):
        details = self.backend.get_account_authorization_details(self._get_param("Filter", []))
        keys = {
            "users": "UserDetailList",
            "groups": "GroupDetailList",
            "roles": "RoleDetailList",
            "managed_policies": "Policies",
        }
        entries = [(keys[k], item) for k in keys for item in details[k]]
        start = int(self._get_param("Marker") or 0)
        page = entries[start : start + 3]
        result = {name: [item for key, item in page if key == name] for name in keys.values()}
        result["IsTruncated"] = start + 3 < len(entries)
        if result["IsTruncated"]:
            result["Marker"] = str(start + 3)
        return ActionResult(result)

    monkeypatch.setattr(IamResponse, "get_account_authorization_details", paged)
    iam.create_group(GroupName="g")
    for i in range(4):
        iam.create_user(UserName=f"u{i}")
        iam.create_role(
            RoleName=f"r{i}",
            AssumeRolePolicyDocument=doc(
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ),
        )
    iam.create_policy(PolicyName="p", PolicyDocument=doc(allow("s3:ListBucket")))
    aws = AwsFactory()
    inv = collect(aws, account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    assert sorted(u["UserName"] for u in inv["users"]) == ["u0", "u1", "u2", "u3"]
    assert sorted(r["RoleName"] for r in inv["roles"]) == ["r0", "r1", "r2", "r3"]
    assert [g["GroupName"] for g in inv["groups"]] == ["g"]
    assert [p["PolicyName"] for p in inv["policies"]] == ["p"]
    assert aws.counter.by_operation["iam:GetAccountAuthorizationDetails"] == 4  # 10 entries, 3 a page
