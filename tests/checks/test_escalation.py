"""Privilege-escalation methods: the table is sound, each method is found and each negative holds."""

from __future__ import annotations

import pytest

from bot.escalation import METHODS, EscalationMethod, find_escalations, unknown_method_actions
from bot.policy import ActionCatalog, PolicySource, parse_policy

INLINE = PolicySource("inline", "dev-inline")
BOUNDARY = PolicySource("permissions-boundary", "dev-boundary", "arn:aws:iam::123456789012:policy/b")
ACCOUNT = "123456789012"
BY_ID = {m.id: m for m in METHODS}


def stmts(*statements: dict, source: PolicySource = INLINE):
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, source)


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def found(statements, method_id: str) -> bool:
    paths, errors = find_escalations(statements, account_id=ACCOUNT, methods=[BY_ID[method_id]])
    assert errors == []
    return any(p.method.id == method_id for p in paths)


def minimal_grant(method: EscalationMethod) -> list[dict]:
    """The first action of every group, each on Resource *."""
    return [allow([group[0] for group in method.required])]


REQUIRED_IDS = [
    "create-policy-version",
    "set-default-policy-version",
    "attach-user-policy",
    "attach-group-policy",
    "attach-role-policy",
    "put-user-policy",
    "put-group-policy",
    "put-role-policy",
    "create-access-key",
    "create-login-profile",
    "update-login-profile",
    "add-user-to-group",
    "update-assume-role-policy",
    "passrole-ec2",
    "passrole-lambda",
    "lambda-update-function-code",
    "passrole-glue-dev-endpoint",
    "glue-update-dev-endpoint",
    "passrole-cloudformation",
    "passrole-datapipeline",
    "passrole-codebuild",
    "passrole-sagemaker-notebook",
    "passrole-ecs",
    "assume-any-role",
]


def test_table_covers_the_known_methods():
    assert set(REQUIRED_IDS) <= set(BY_ID)


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_every_action_in_the_table_is_known_to_the_catalog(method):
    catalog = ActionCatalog.default()
    assert [a for a in method.actions if not catalog.known_action(a)] == []


def test_table_has_no_unknown_actions():
    assert unknown_method_actions() == {}


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_method_found_with_minimal_grant(method):
    assert found(stmts(*minimal_grant(method)), method.id)


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_method_not_found_when_resources_are_s3(method):
    grant = allow([group[0] for group in method.required], "arn:aws:s3:::bucket/*")
    assert not found(stmts(grant), method.id)


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_method_not_found_when_explicitly_denied(method):
    assert not found(stmts(*minimal_grant(method), deny(list(method.required[0]))), method.id)


@pytest.mark.parametrize("method", [m for m in METHODS if len(m.required) > 1], ids=lambda m: m.id)
def test_method_needs_every_group(method):
    assert not found(stmts(allow([a for group in method.required[:-1] for a in group])), method.id)


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_method_not_found_outside_permissions_boundary(method):
    policy = stmts(allow("*")) + stmts(allow("s3:*"), source=BOUNDARY)
    assert not found(policy, method.id)


# --------------------------------------------------------------------------- resource nuances

NUANCES = [
    (
        "policy version on unrelated policy still counts",
        "create-policy-version",
        [allow("iam:CreatePolicyVersion", "arn:aws:iam::*:policy/unrelated-*")],
        True,
    ),
    (
        "passrole on one role still counts",
        "passrole-ec2",
        [allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/app"), allow("ec2:RunInstances")],
        True,
    ),
    (
        "passrole to another service does not count",
        "passrole-ec2",
        [
            allow(
                "iam:PassRole", Condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
            ),
            allow("ec2:RunInstances"),
        ],
        False,
    ),
    (
        "passrole to the paired service counts",
        "passrole-lambda",
        [
            allow(
                "iam:PassRole", Condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
            ),
            allow(["lambda:CreateFunction", "lambda:CreateEventSourceMapping"]),
        ],
        True,
    ),
    (
        "access key for oneself only is safe",
        "create-access-key",
        [allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}")],
        False,
    ),
    (
        "access key for other users counts",
        "create-access-key",
        [allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/*")],
        True,
    ),
    (
        "assume one role is not assume-any",
        "assume-any-role",
        [allow("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/readonly")],
        False,
    ),
    (
        "assume all roles by ARN wildcard",
        "assume-any-role",
        [allow("sts:AssumeRole", "arn:aws:iam::*:role/*")],
        True,
    ),
    (
        "deny on the role resources subtracts",
        "attach-role-policy",
        [
            allow(["iam:AttachRolePolicy", "sts:AssumeRole"]),
            deny("iam:AttachRolePolicy", "arn:aws:iam::*:role/*"),
        ],
        False,
    ),
    (
        "deny on one role leaves the others",
        "attach-role-policy",
        [
            allow(["iam:AttachRolePolicy", "sts:AssumeRole"]),
            deny("iam:AttachRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        ],
        True,
    ),
    (
        "NotAction grant counts",
        "passrole-ec2",
        [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}],
        True,
    ),
    ("service wildcards count", "passrole-codebuild", [allow(["iam:Pass*", "codebuild:*"])], True),
]


@pytest.mark.parametrize(
    ("method_id", "statements", "expected"), [c[1:] for c in NUANCES], ids=[c[0] for c in NUANCES]
)
def test_resource_and_condition_nuances(method_id, statements, expected):
    assert found(stmts(*statements), method_id) is expected


def test_condition_makes_path_conditional():
    policy = stmts(allow("iam:AttachUserPolicy", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))
    paths, _ = find_escalations(policy, methods=[BY_ID["attach-user-policy"]])
    assert [p.conditional for p in paths] == [True]


def test_path_names_the_granting_statement():
    policy = stmts(allow("iam:PutUserPolicy", Sid="SelfService"))
    paths, _ = find_escalations(policy, methods=[BY_ID["put-user-policy"]])
    assert [s.sid for p in paths for s in p.statements] == ["SelfService"]


def test_read_only_principal_has_no_escalation():
    paths, errors = find_escalations(stmts(allow(["iam:Get*", "iam:List*", "s3:GetObject"])))
    assert (paths, errors) == ([], [])


def test_admin_has_every_escalation():
    paths, errors = find_escalations(stmts(allow("*")), account_id=ACCOUNT)
    assert ({p.method.id for p in paths}, errors) == ({m.id for m in METHODS}, [])


def test_method_with_unknown_action_is_reported_not_passed():
    ghost = EscalationMethod(
        id="codestar-create-project",
        title="CodeStar project with a privileged role",
        required=(("codestar:CreateProject",), ("iam:PassRole",)),
        resource_hint="*",
        description="Prowler's retired service: must be 'could not evaluate', not 'no escalation'.",
    )
    paths, errors = find_escalations(stmts(allow("*")), methods=[ghost, BY_ID["attach-user-policy"]])
    assert ([p.method.id for p in paths], [e.split(":")[0] for e in errors]) == (
        ["attach-user-policy"],
        ["codestar-create-project"],
    )


@pytest.mark.parametrize("method_id", ["attach-role-policy", "put-role-policy"])
def test_a_role_changing_itself_needs_no_assume_role(method_id):
    role = f"arn:aws:iam::{ACCOUNT}:role/builder"
    action = BY_ID[method_id].required[0][0]
    own = stmts(allow(action, role))
    paths, _ = find_escalations(own, account_id=ACCOUNT, methods=[BY_ID[method_id]], principal_arn=role)
    assert [p.method.id for p in paths] == [method_id]
    # the twin: the same grant seen from a user (who is not that role) still needs sts:AssumeRole
    user = f"arn:aws:iam::{ACCOUNT}:user/dev"
    paths, _ = find_escalations(own, account_id=ACCOUNT, methods=[BY_ID[method_id]], principal_arn=user)
    assert paths == []


def test_known_condition_keys_are_decided_with_a_context():
    never = stmts(
        allow("iam:PutUserPolicy", Condition={"DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}})
    )
    always = stmts(
        allow(
            "iam:PutUserPolicy", Condition={"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}
        )
    )
    now = {"aws:TokenIssueTime": "2026-12-02T12:00:00+00:00"}
    method = [BY_ID["put-user-policy"]]
    assert find_escalations(never, methods=method, context=now)[0] == []
    [path] = find_escalations(always, methods=method, context=now)[0]
    assert path.conditional is False
    [path] = find_escalations(always, methods=method)[0]
    assert path.conditional is True  # without a context the key is unknown


def test_every_method_names_its_target_and_a_service_when_it_runs_code():
    for method in METHODS:
        if method.target == "service-role":
            assert method.service, method.id
