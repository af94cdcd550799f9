"""Least-privilege checks on moto: admin, custom `*:*`, escalation, wildcards, trust, unused roles, CloudShell."""

from __future__ import annotations

import boto3
import pytest

from tests.scan_helpers import ACCOUNT_ID, allow, days_ago, doc, failed, of, scan, trust

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
SELF_TRUST = trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"})


@pytest.fixture
def iam(aws):
    return boto3.client("iam")


def test_admin_attached_to_user_group_and_role_but_not_repeated_on_group_members(iam, clock):
    iam.create_user(UserName="direct")
    iam.attach_user_policy(UserName="direct", PolicyArn=ADMIN)
    iam.create_group(GroupName="admins")
    iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)
    iam.create_user(UserName="member")
    iam.add_user_to_group(GroupName="admins", UserName="member")
    iam.create_role(RoleName="break-glass", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(RoleName="break-glass", PolicyName="all", PolicyDocument=doc(allow("*")))
    iam.create_user(UserName="reader")
    iam.attach_user_policy(UserName="reader", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    findings = of(scan(clock), "ADMIN_POLICY_ATTACHED")
    assert {f.principal_name for f in findings} == {"direct", "admins", "break-glass"}
    role = next(f for f in findings if f.principal_name == "break-glass")
    assert "inline policy all" in role.detail
    group = next(f for f in findings if f.principal_name == "admins")
    assert "aws iam detach-group-policy --group-name admins" in group.remediation


def test_full_admin_custom_policy(iam, clock):
    iam.create_policy(PolicyName="god-mode", PolicyDocument=doc(allow("*")))
    iam.create_policy(PolicyName="s3-admin", PolicyDocument=doc(allow("s3:*")))
    iam.create_policy(
        PolicyName="admin-but-no-iam",
        PolicyDocument=doc(allow("*"), {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}),
    )
    findings = of(scan(clock), "FULL_ADMIN_CUSTOM_POLICY")
    assert [(f.principal_name, f.principal_arn) for f in findings] == [
        ("god-mode", f"arn:aws:iam::{ACCOUNT_ID}:policy/god-mode")
    ]


def test_privilege_escalation_names_method_and_statement(iam, clock):
    iam.create_user(UserName="dev")
    iam.put_user_policy(
        UserName="dev",
        PolicyName="policy-admin",
        PolicyDocument=doc(allow("iam:CreatePolicyVersion", Sid="Versions")),
    )
    tools = iam.create_policy(PolicyName="dev-tools", PolicyDocument=doc(allow("s3:GetObject")))
    iam.attach_user_policy(UserName="dev", PolicyArn=tools["Policy"]["Arn"])
    findings = of(scan(clock), "PRIVILEGE_ESCALATION")
    assert [(f.principal_name, f.detail_key) for f in findings] == [("dev", "create-policy-version")]
    assert "inline policy policy-admin, statement Sid Versions" in findings[0].detail
    assert findings[0].extra["statements"] == ["inline policy policy-admin, statement Sid Versions"]
    assert findings[0].extra["hop_count"] == 1
    assert "customer-managed policy dev-tools" in findings[0].detail


def test_versioning_rights_with_no_policy_to_version_are_not_escalation(iam, clock):
    # the non-exploitable twin: nothing the user holds (or can act as) has a customer policy
    iam.create_user(UserName="dev")
    iam.put_user_policy(
        UserName="dev", PolicyName="policy-admin", PolicyDocument=doc(allow("iam:CreatePolicyVersion"))
    )
    iam.attach_user_policy(UserName="dev", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert failed(scan(clock), "PRIVILEGE_ESCALATION") == set()


def test_escalation_through_a_group_policy_is_found_on_the_member(iam, clock):
    iam.create_group(GroupName="deployers")
    iam.put_group_policy(
        GroupName="deployers",
        PolicyName="deploy",
        PolicyDocument=doc(allow(["iam:PassRole", "ec2:RunInstances"])),
    )
    iam.create_user(UserName="ci")
    iam.add_user_to_group(GroupName="deployers", UserName="ci")
    iam.create_role(RoleName="ec2-admin", AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))
    iam.attach_role_policy(RoleName="ec2-admin", PolicyArn=ADMIN)
    iam.create_instance_profile(InstanceProfileName="ec2-admin")
    iam.add_role_to_instance_profile(InstanceProfileName="ec2-admin", RoleName="ec2-admin")
    findings = of(scan(clock), "PRIVILEGE_ESCALATION")
    assert ("ci", "passrole-ec2") in {(f.principal_name, f.detail_key) for f in findings}
    finding = next(f for f in findings if f.detail_key == "passrole-ec2")
    assert "inline policy deploy of group deployers" in finding.detail
    assert finding.extra["admin"].endswith(":role/ec2-admin")


def test_passing_a_role_is_not_escalation_when_no_privileged_role_trusts_the_service(iam, clock):
    iam.create_user(UserName="ci")
    iam.put_user_policy(
        UserName="ci", PolicyName="deploy", PolicyDocument=doc(allow(["iam:PassRole", "ec2:RunInstances"]))
    )
    # an admin role, but only Lambda may assume it; and an EC2 role without an instance profile
    iam.create_role(RoleName="fn-admin", AssumeRolePolicyDocument=trust({"Service": "lambda.amazonaws.com"}))
    iam.attach_role_policy(RoleName="fn-admin", PolicyArn=ADMIN)
    iam.create_role(RoleName="no-profile", AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))
    iam.attach_role_policy(RoleName="no-profile", PolicyArn=ADMIN)
    assert failed(scan(clock), "PRIVILEGE_ESCALATION") == set()


def test_unexploitable_grants_are_not_escalation(iam, clock):
    iam.create_user(UserName="careful")
    iam.put_user_policy(
        UserName="careful",
        PolicyName="scoped",
        PolicyDocument=doc(
            # iam actions on an S3 ARN apply to nothing; own keys only is self-service, not escalation
            allow(["iam:AttachUserPolicy", "iam:PutUserPolicy"], "arn:aws:s3:::unrelated-bucket/*"),
            allow(["iam:CreateAccessKey"], "arn:aws:iam::*:user/${aws:username}"),
            {"Effect": "Allow", "Action": "iam:CreatePolicyVersion", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:CreatePolicyVersion", "Resource": "*"},
        ),
    )
    assert failed(scan(clock), "PRIVILEGE_ESCALATION") == set()


def test_admins_are_not_also_reported_as_escalation(iam, clock):
    iam.create_user(UserName="root-ish")
    iam.attach_user_policy(UserName="root-ish", PolicyArn=ADMIN)
    assert failed(scan(clock), "PRIVILEGE_ESCALATION") == set()


def test_passrole_or_assumerole_on_any_role(iam, clock):
    iam.create_role(RoleName="launcher", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(RoleName="launcher", PolicyName="pass", PolicyDocument=doc(allow("iam:PassRole")))
    iam.create_user(UserName="hopper")
    iam.put_user_policy(
        UserName="hopper",
        PolicyName="hop",
        PolicyDocument=doc(allow("sts:AssumeRole", "arn:aws:iam::*:role/*")),
    )
    iam.create_user(UserName="scoped")
    iam.put_user_policy(
        UserName="scoped",
        PolicyName="one-role",
        PolicyDocument=doc(
            allow(["iam:PassRole", "sts:AssumeRole"], f"arn:aws:iam::{ACCOUNT_ID}:role/app-runtime")
        ),
    )
    findings = of(scan(clock), "PASSROLE_OR_ASSUMEROLE_WILDCARD")
    assert {(f.principal_name, f.detail_key) for f in findings} == {
        ("launcher", "iam:PassRole"),
        ("hopper", "sts:AssumeRole"),
    }


def test_service_wildcard(iam, clock):
    iam.create_role(RoleName="etl", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(RoleName="etl", PolicyName="s3-all", PolicyDocument=doc(allow(["s3:*", "glue:Get*"])))
    iam.create_role(RoleName="bucket-admin", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(
        RoleName="bucket-admin",
        PolicyName="one-bucket",
        PolicyDocument=doc(allow("s3:*", "arn:aws:s3:::data/*")),
    )
    iam.create_role(RoleName="support", AssumeRolePolicyDocument=SELF_TRUST)
    iam.attach_role_policy(RoleName="support", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    findings = of(scan(clock), "SERVICE_WILDCARD")
    assert [(f.principal_name, f.extra["services"]) for f in findings] == [("etl", ["s3"])]


def test_service_wildcard_denied_by_the_same_principal_is_not_reported(iam, clock):
    iam.create_role(RoleName="no-iam", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(
        RoleName="no-iam",
        PolicyName="all-but-iam",
        PolicyDocument=doc(allow(["iam:*", "s3:*"]), {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}),
    )
    # the twin: a Deny under a condition may not apply, so the wildcard stays reported
    iam.create_role(RoleName="office-iam", AssumeRolePolicyDocument=SELF_TRUST)
    iam.put_role_policy(
        RoleName="office-iam",
        PolicyName="iam-in-office",
        PolicyDocument=doc(
            allow("iam:*"),
            {
                "Effect": "Deny",
                "Action": "iam:*",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
        ),
    )
    findings = of(scan(clock), "SERVICE_WILDCARD")
    assert sorted((f.principal_name, f.extra["services"]) for f in findings) == [
        ("no-iam", ["s3"]),
        ("office-iam", ["iam"]),
    ]


def test_user_direct_policies(iam, clock):
    iam.create_user(UserName="direct")
    iam.attach_user_policy(UserName="direct", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.create_user(UserName="grouped")
    iam.create_group(GroupName="readers")
    iam.attach_group_policy(GroupName="readers", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.add_user_to_group(GroupName="readers", UserName="grouped")
    assert failed(scan(clock), "USER_DIRECT_POLICIES") == {("USER_DIRECT_POLICIES", "direct")}


def test_role_trust_public(iam, clock):
    iam.create_role(RoleName="open", AssumeRolePolicyDocument=trust({"AWS": "*"}))
    iam.create_role(
        RoleName="org-only",
        AssumeRolePolicyDocument=trust(
            {"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}
        ),
    )
    iam.create_role(RoleName="internal", AssumeRolePolicyDocument=SELF_TRUST)
    findings = of(scan(clock), "ROLE_TRUST_PUBLIC")
    assert [(f.principal_name, f.severity.value) for f in findings] == [("open", "critical")]


def test_role_trust_external_without_condition(iam, clock):
    iam.create_role(
        RoleName="vendor", AssumeRolePolicyDocument=trust({"AWS": "arn:aws:iam::999988887777:root"})
    )
    iam.create_role(
        RoleName="vendor-safe",
        AssumeRolePolicyDocument=trust(
            {"AWS": "999988887777"}, Condition={"StringEquals": {"sts:ExternalId": "s3cr3t"}}
        ),
    )
    iam.create_role(
        RoleName="partner-people",
        AssumeRolePolicyDocument=trust(
            {"AWS": "arn:aws:iam::111122223333:root"},
            Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        ),
    )
    iam.create_role(RoleName="internal", AssumeRolePolicyDocument=SELF_TRUST)
    iam.create_role(RoleName="lambda", AssumeRolePolicyDocument=trust({"Service": "lambda.amazonaws.com"}))
    iam.create_role(
        RoleName="from-prod", AssumeRolePolicyDocument=trust({"AWS": "arn:aws:iam::210987654321:root"})
    )
    findings = of(scan(clock), "ROLE_TRUST_EXTERNAL_NO_CONDITION")
    assert [(f.principal_name, f.detail_key) for f in findings] == [
        ("from-prod", "210987654321"),
        ("vendor", "999988887777"),
    ]
    # An account of ours (listed in [[accounts]]) is not an outside account.
    ours = {"accounts": [{"id": "210987654321", "name": "prod"}]}
    assert failed(scan(clock, ours), "ROLE_TRUST_EXTERNAL_NO_CONDITION") == {
        ("ROLE_TRUST_EXTERNAL_NO_CONDITION", "vendor")
    }


def test_role_unused(iam, aws, clock):
    for name in ("dusty", "busy", "never-used", "new"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=SELF_TRUST)
    aws.set_role_last_used("dusty", days_ago(clock, 120))
    aws.set_role_last_used("busy", days_ago(clock, 5))
    aws.age_role("never-used", created=days_ago(clock, 200))
    aws.age_role("new", created=days_ago(clock, 10))
    aws.age_role("dusty", created=days_ago(clock, 300))
    aws.age_role("busy", created=days_ago(clock, 300))
    findings = of(scan(clock), "ROLE_UNUSED")
    assert {f.principal_name: f.detail for f in findings} == {
        "dusty": "Last used 120 days ago (limit 90).",
        "never-used": "Never used in the 200 days since it was created.",
    }


def test_cloudshell_full_access(iam, clock):
    iam.create_user(UserName="shell")
    iam.attach_user_policy(UserName="shell", PolicyArn="arn:aws:iam::aws:policy/AWSCloudShellFullAccess")
    iam.create_user(UserName="plain")
    assert failed(scan(clock), "CLOUDSHELL_FULL_ACCESS") == {("CLOUDSHELL_FULL_ACCESS", "shell")}


def test_a_permissions_boundary_blocks_escalation(iam, clock):
    # moto keeps a role's boundary (not a user's), and GAAD returns it.
    tools = iam.create_policy(PolicyName="tools", PolicyDocument=doc(allow("s3:GetObject")))["Policy"]
    for name, boundary in (
        ("bounded", {"PermissionsBoundary": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        ("free", {}),
    ):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=SELF_TRUST, **boundary)
        iam.put_role_policy(
            RoleName=name, PolicyName="edit", PolicyDocument=doc(allow("iam:CreatePolicyVersion"))
        )
        iam.attach_role_policy(RoleName=name, PolicyArn=tools["Arn"])
    findings = scan(clock)
    assert failed(findings, "PRIVILEGE_ESCALATION") == {("PRIVILEGE_ESCALATION", "free")}


def test_service_linked_roles_are_not_reported(iam, clock):
    role = iam.create_service_linked_role(AWSServiceName="elasticbeanstalk.amazonaws.com")["Role"]
    assert role["Path"].startswith("/aws-service-role/")
    iam.put_role_policy(
        RoleName=role["RoleName"], PolicyName="aws-owned", PolicyDocument=doc(allow(["s3:*", "iam:PassRole"]))
    )
    findings = [f for f in scan(clock) if f.principal_name == role["RoleName"]]
    assert findings == []


def test_self_targeting_role_and_a_two_hop_route_are_found_end_to_end(iam, clock):
    # a role that may attach policies to itself: no sts:AssumeRole needed
    iam.create_role(
        RoleName="builder", AssumeRolePolicyDocument=trust({"Service": "codebuild.amazonaws.com"})
    )
    iam.put_role_policy(
        RoleName="builder",
        PolicyName="self-service",
        PolicyDocument=doc(
            allow("iam:AttachRolePolicy", f"arn:aws:iam::{ACCOUNT_ID}:role/builder", Sid="Own")
        ),
    )
    # dev → jump → admin, each trust policy admitting the previous hop only
    iam.create_role(
        RoleName="admin", AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/jump"})
    )
    iam.attach_role_policy(RoleName="admin", PolicyArn=ADMIN)
    iam.create_role(
        RoleName="jump", AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/dev"})
    )
    iam.put_role_policy(
        RoleName="jump",
        PolicyName="hop",
        PolicyDocument=doc(allow("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT_ID}:role/admin")),
    )
    iam.create_user(UserName="dev")
    iam.put_user_policy(UserName="dev", PolicyName="hop", PolicyDocument=doc(allow("sts:AssumeRole")))
    # the twin: a user the jump role does not trust
    iam.create_user(UserName="outsider")
    iam.put_user_policy(UserName="outsider", PolicyName="hop", PolicyDocument=doc(allow("sts:AssumeRole")))
    findings = {f.principal_name: f for f in of(scan(clock), "PRIVILEGE_ESCALATION")}
    assert set(findings) == {"builder", "dev", "jump"}
    assert (findings["builder"].detail_key, findings["builder"].extra["hop_count"]) == (
        "attach-role-policy",
        1,
    )
    assert "statement Sid Own" in findings["builder"].detail
    assert findings["dev"].extra["hop_count"] == 2
    assert [h["to"].rsplit("/", 1)[-1] for h in findings["dev"].extra["hops"]] == ["jump", "admin"]
    assert "2 hops to administrator" in findings["dev"].detail
