"""A principal's effective statements over one snapshot: the union of its policies, each with its source."""

from __future__ import annotations

import pytest

from bot.aws import AwsFactory
from bot.inventory import collect, principal_statements
from bot.policy import evaluate
from tests.scan_helpers import ACCOUNT_ID, allow, doc

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def test_principal_statements_is_the_union_with_sources(iam, clock):
    iam.create_group(GroupName="ops")
    iam.put_group_policy(
        GroupName="ops", PolicyName="ops-inline", PolicyDocument=doc(allow("ec2:StartInstances"))
    )
    iam.attach_group_policy(GroupName="ops", PolicyArn=READ_ONLY)
    iam.create_user(UserName="ana")
    iam.add_user_to_group(GroupName="ops", UserName="ana")
    iam.put_user_policy(
        UserName="ana",
        PolicyName="ana-inline",
        PolicyDocument=doc(allow("s3:PutObject", "arn:aws:s3:::ana/*")),
    )
    custom = iam.create_policy(
        PolicyName="deny-delete",
        PolicyDocument=doc({"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}),
    )
    iam.attach_user_policy(UserName="ana", PolicyArn=custom["Policy"]["Arn"])
    inv = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)

    statements = principal_statements(inv, f"arn:aws:iam::{ACCOUNT_ID}:user/ana")
    sources = {(s.source.kind, s.source.name, s.source.via) for s in statements}
    assert sources == {
        ("inline", "ana-inline", None),
        ("managed", "deny-delete", None),
        ("group-inline", "ops-inline", "ops"),
        ("group-managed", "ReadOnlyAccess", "ops"),
    }
    assert evaluate(statements, "s3:PutObject", "arn:aws:s3:::ana/report.csv").allowed
    assert evaluate(statements, "ec2:StartInstances").allowed
    assert evaluate(statements, "s3:DeleteBucket").decision == "explicit-deny"
    with pytest.raises(KeyError):
        principal_statements(inv, f"arn:aws:iam::{ACCOUNT_ID}:user/nobody")
