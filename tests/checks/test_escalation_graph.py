"""The escalation graph over a snapshot: self-targeting, multi-hop, trust, cycles, conditions, denies.

Each case builds a GAAD-shaped inventory by hand (the graph makes no AWS calls; the moto
end-to-end cases live in tests/test_checks_privilege.py) and has a non-exploitable twin.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.escalation import METHODS, EscalationMethod, find_escalations
from bot.escalation_graph import EscalationGraph, principal_context
from bot.policy import PolicySource, parse_policy

ACCOUNT = "123456789012"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def arn(kind: str, name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


def trusting(*principals: str | dict, **extra) -> dict:
    out = []
    for p in principals:
        principal = p if isinstance(p, dict) else {"AWS": p}
        out.append({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra})
    return document(*out)


ROOT = f"arn:aws:iam::{ACCOUNT}:root"


class Account:
    """A small GAAD-shaped inventory built statement by statement."""

    def __init__(self) -> None:
        self.users: dict[str, dict] = {}
        self.roles: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.policies: dict[str, dict] = {
            ADMIN_ARN: self._policy(ADMIN_ARN, "AdministratorAccess", document(allow("*"))),
            READ_ONLY_ARN: self._policy(
                READ_ONLY_ARN, "ReadOnlyAccess", document(allow(["s3:Get*", "iam:Get*"]))
            ),
        }

    @staticmethod
    def _policy(policy_arn: str, name: str, doc: dict) -> dict:
        return {
            "Arn": policy_arn,
            "PolicyName": name,
            "PolicyVersionList": [{"Document": doc, "IsDefaultVersion": True, "VersionId": "v1"}],
        }

    def user(self, name: str, *statements: dict, tags: dict | None = None, groups=(), managed=()) -> str:
        self.users[name] = {
            "UserName": name,
            "UserId": f"AIDA{name.upper()}",
            "Arn": arn("user", name),
            "Path": "/",
            "UserPolicyList": [{"PolicyName": f"{name}-inline", "PolicyDocument": document(*statements)}]
            if statements
            else [],
            "AttachedManagedPolicies": [
                {"PolicyArn": a, "PolicyName": a.rsplit("/", 1)[-1]} for a in managed
            ],
            "GroupList": list(groups),
            "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        }
        return arn("user", name)

    def role(
        self,
        name: str,
        *statements: dict,
        trust: dict | None = None,
        managed=(),
        profile=False,
        boundary=None,
    ) -> str:
        entry = {
            "RoleName": name,
            "RoleId": f"AROA{name.upper()}",
            "Arn": arn("role", name),
            "Path": "/",
            "AssumeRolePolicyDocument": trust or trusting(ROOT),
            "RolePolicyList": [{"PolicyName": f"{name}-inline", "PolicyDocument": document(*statements)}]
            if statements
            else [],
            "AttachedManagedPolicies": [
                {"PolicyArn": a, "PolicyName": a.rsplit("/", 1)[-1]} for a in managed
            ],
            "InstanceProfileList": [{"InstanceProfileName": name}] if profile else [],
            "Tags": [],
        }
        if boundary:
            entry["PermissionsBoundary"] = {"PermissionsBoundaryArn": boundary}
        self.roles[name] = entry
        return arn("role", name)

    def group(self, name: str, *statements: dict, managed=()) -> str:
        self.groups[name] = {
            "GroupName": name,
            "GroupId": f"AGPA{name.upper()}",
            "Arn": arn("group", name),
            "Path": "/",
            "GroupPolicyList": [{"PolicyName": f"{name}-inline", "PolicyDocument": document(*statements)}]
            if statements
            else [],
            "AttachedManagedPolicies": [
                {"PolicyArn": a, "PolicyName": a.rsplit("/", 1)[-1]} for a in managed
            ],
        }
        return arn("group", name)

    def managed(self, name: str, *statements: dict) -> str:
        policy_arn = arn("policy", name)
        self.policies[policy_arn] = self._policy(policy_arn, name, document(*statements))
        return policy_arn

    def inventory(self) -> dict:
        return {
            "account_id": ACCOUNT,
            "users": list(self.users.values()),
            "roles": list(self.roles.values()),
            "groups": list(self.groups.values()),
            "policies": list(self.policies.values()),
        }

    def graph(self, **kw) -> EscalationGraph:
        return EscalationGraph(json.loads(json.dumps(self.inventory())), now=NOW, **kw)


def methods_of(graph: EscalationGraph, principal: str) -> set[str]:
    return {r.first.method for r in graph.routes(principal)}


# --------------------------------------------------------------------------- self-targeting


@pytest.mark.parametrize(
    ("action", "method"),
    [("iam:AttachRolePolicy", "attach-role-policy"), ("iam:PutRolePolicy", "put-role-policy")],
)
@pytest.mark.parametrize("resource", ["own", "*"])
def test_a_role_that_may_change_its_own_policies_escalates_without_assume_role(action, method, resource):
    acct = Account()
    me = arn("role", "builder")
    acct.role("builder", allow(action, me if resource == "own" else "*"))
    graph = acct.graph()
    [route] = graph.routes(me)
    assert (route.first.method, route.hop_count, route.admin) == (method, 1, me)
    assert route.first.statements == ("inline policy builder-inline, statement #1",)


def test_a_role_changing_another_role_it_cannot_act_as_does_not_escalate():
    acct = Account()
    acct.role("other", trust=trusting({"Service": "lambda.amazonaws.com"}))
    acct.role("builder", allow("iam:AttachRolePolicy", arn("role", "other")))
    assert acct.graph().routes(arn("role", "builder")) == []


def test_a_user_changing_a_role_then_assuming_it_escalates_in_two_hops():
    acct = Account()
    acct.role("target")
    me = acct.user(
        "dev",
        allow("iam:AttachRolePolicy", arn("role", "target")),
        allow("sts:AssumeRole", arn("role", "target")),
    )
    [route] = acct.graph().routes(me)
    assert [h.method for h in route.hops] == ["attach-role-policy", "assume-any-role"]
    assert route.admin == arn("role", "target")


@pytest.mark.parametrize(
    ("statement", "method"),
    [
        (allow("iam:PutUserPolicy", "arn:aws:iam::*:user/${aws:username}"), "put-user-policy"),
        (allow("iam:AttachUserPolicy", arn("user", "dev")), "attach-user-policy"),
        (allow("iam:PutGroupPolicy", arn("group", "devs")), "put-group-policy"),
        (allow("iam:AttachGroupPolicy"), "attach-group-policy"),
    ],
)
def test_a_user_changing_itself_or_its_group_escalates(statement, method):
    acct = Account()
    acct.group("devs")
    me = acct.user("dev", statement, groups=["devs"])
    assert method in methods_of(acct.graph(), me)


def test_self_scoped_user_policy_is_not_an_escalation_for_someone_else():
    acct = Account()
    acct.user("admin", managed=[ADMIN_ARN])
    me = acct.user("dev", allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}"))
    assert acct.graph().routes(me) == []


# --------------------------------------------------------------------------- multi-hop and trust


def test_two_hops_through_trust_policies():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN], trust=trusting(arn("role", "jump")))
    acct.role("jump", allow("sts:AssumeRole", arn("role", "admin")))
    me = acct.user("dev", allow("sts:AssumeRole", arn("role", "jump")))
    [route] = acct.graph().routes(me)
    assert route.hop_count == 2
    assert [h.target for h in route.hops] == [arn("role", "jump"), arn("role", "admin")]
    assert "trust policy admin" in " ".join(route.hops[1].statements)
    assert "2 hops to administrator" in route.explain()


def test_three_hops_mixing_methods():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN], trust=trusting({"Service": "lambda.amazonaws.com"}))
    acct.role(
        "deployer",
        allow(["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction"]),
        trust=trusting(arn("user", "ops")),
    )
    acct.user("ops", allow("sts:AssumeRole", "*"))
    me = acct.user("dev", allow("iam:CreateAccessKey", arn("user", "ops")))
    [route] = acct.graph().routes(me)
    assert [h.method for h in route.hops] == ["create-access-key", "assume-any-role", "passrole-lambda"]
    assert route.admin == arn("role", "admin")


def test_a_trust_policy_that_does_not_admit_the_principal_breaks_the_path():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN], trust=trusting(arn("role", "someone-else")))
    acct.role("jump", allow("sts:AssumeRole", arn("role", "admin")))
    me = acct.user("dev", allow("sts:AssumeRole", arn("role", "jump")))
    assert acct.graph().routes(me) == []


def test_trust_naming_the_principal_needs_no_identity_grant_but_a_deny_still_cuts():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN], trust=trusting(arn("user", "dev")))
    me = acct.user("dev", allow("s3:GetObject"))
    assert methods_of(acct.graph(), me) == {"assume-any-role"}
    acct.user("dev", allow("s3:GetObject"), deny("sts:AssumeRole"))
    assert acct.graph().routes(me) == []


def test_trust_in_the_account_needs_the_identity_grant():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN])  # trusts the account root
    me = acct.user("dev", allow("s3:GetObject"))
    assert acct.graph().routes(me) == []


def test_a_cycle_terminates_and_reports_nothing_without_an_admin():
    acct = Account()
    acct.role(
        "a", allow("sts:AssumeRole", arn("role", "b")), trust=trusting(arn("role", "b"), arn("user", "dev"))
    )
    acct.role("b", allow("sts:AssumeRole", arn("role", "a")), trust=trusting(arn("role", "a")))
    me = acct.user("dev", allow("sts:AssumeRole", arn("role", "a")))
    graph = acct.graph()
    assert graph.routes(me) == [] and graph.routes(arn("role", "a")) == []


def test_a_cycle_with_an_exit_finds_the_shortest_route():
    acct = Account()
    acct.role("a", allow("sts:AssumeRole", "*"), trust=trusting(arn("role", "b"), arn("user", "dev")))
    acct.role("b", allow("sts:AssumeRole", "*"), trust=trusting(arn("role", "a")))
    acct.role("admin", managed=[ADMIN_ARN], trust=trusting(arn("role", "b")))
    me = acct.user("dev", allow("sts:AssumeRole", arn("role", "a")))
    [route] = acct.graph().routes(me)
    assert [h.target.rsplit("/", 1)[-1] for h in route.hops] == ["a", "b", "admin"]


def test_joining_an_admin_group():
    acct = Account()
    acct.group("admins", managed=[ADMIN_ARN])
    me = acct.user("dev", allow("iam:AddUserToGroup", arn("group", "admins")))
    [route] = acct.graph().routes(me)
    assert (route.first.method, route.admin) == ("add-user-to-group", arn("group", "admins"))
    acct.user("dev", allow("iam:AddUserToGroup", arn("group", "readers")))
    assert acct.graph().routes(me) == []


def test_existing_resources_take_over_a_role_in_an_instance_profile():
    acct = Account()
    acct.role("box", managed=[ADMIN_ARN], trust=trusting({"Service": "ec2.amazonaws.com"}), profile=True)
    me = acct.user("dev", allow("ssm:SendCommand"))
    [route] = acct.graph().routes(me)
    assert route.first.method == "ssm-send-command"
    assert "if a resource running as this role exists" in route.first.note
    acct.roles["box"]["InstanceProfileList"] = []
    assert acct.graph().routes(me) == []


# --------------------------------------------------------------------------- AWS-managed targets


def test_aws_managed_policies_are_not_versioning_targets():
    acct = Account()
    me = acct.user(
        "dev",
        allow(["iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion"], "arn:aws:iam::aws:policy/*"),
        managed=[READ_ONLY_ARN],
    )
    assert acct.graph().routes(me) == []
    stmts = parse_policy(
        document(allow("iam:CreatePolicyVersion", "arn:aws:iam::aws:policy/*")), PolicySource("inline", "x")
    )
    paths, errors = find_escalations(stmts, methods=[m for m in METHODS if m.id == "create-policy-version"])
    assert (paths, errors) == ([], [])


def test_a_customer_policy_the_principal_holds_is_a_versioning_target():
    acct = Account()
    tools = acct.managed("tools", allow("s3:GetObject"))
    me = acct.user("dev", allow("iam:CreatePolicyVersion", tools), managed=[tools])
    assert methods_of(acct.graph(), me) == {"create-policy-version"}


# --------------------------------------------------------------------------- conditions


def test_token_issue_time_before_2020_can_never_hold_so_the_grant_is_dropped():
    acct = Account()
    me = acct.role(
        "r",
        allow(
            "iam:PutRolePolicy", Condition={"DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}
        ),
    )
    assert acct.graph().routes(me) == []


def test_token_issue_time_after_2020_always_holds_so_the_grant_is_certain():
    acct = Account()
    me = acct.role(
        "r",
        allow(
            "iam:PutRolePolicy", Condition={"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}
        ),
    )
    [route] = acct.graph().routes(me)
    assert route.conditional is False


@pytest.mark.parametrize(
    ("condition", "escalates"),
    [
        ({"StringEquals": {"aws:PrincipalTag/team": "platform"}}, True),
        ({"StringEquals": {"aws:PrincipalTag/team": "finance"}}, False),
        ({"StringEquals": {"aws:username": "dev"}}, True),
        ({"StringEquals": {"aws:username": "somebody"}}, False),
        ({"ArnEquals": {"aws:PrincipalArn": arn("user", "dev")}}, True),
        ({"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}, False),
        ({"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}, True),
        ({"NumericLessThan": {"aws:EpochTime": "1000"}}, False),
        ({"StringEquals": {"aws:userid": "AIDADEV"}}, True),
    ],
)
def test_keys_known_at_evaluation_are_decided(condition, escalates):
    acct = Account()
    me = acct.user("dev", allow("iam:PutUserPolicy", Condition=condition), tags={"team": "platform"})
    routes = acct.graph().routes(me)
    assert bool(routes) is escalates
    assert all(not r.conditional for r in routes)


@pytest.mark.parametrize(
    "condition",
    [
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        {"StringEquals": {"aws:SourceVpce": "vpce-1"}},
        {"StringEquals": {"aws:RequestTag/owner": "me"}},
    ],
)
def test_unknown_keys_keep_the_finding_conditional_and_name_the_key(condition):
    acct = Account()
    me = acct.user("dev", allow("iam:PutUserPolicy", Condition=condition))
    [route] = acct.graph().routes(me)
    key = next(iter(next(iter(condition.values()))))
    assert route.conditional and route.condition_keys == [key]
    assert key in route.first.describe()


def test_a_deny_under_an_unknown_condition_is_named_on_the_hop():
    acct = Account()
    me = acct.user(
        "dev",
        allow("iam:PutUserPolicy", Sid="SelfService"),
        deny(
            "iam:PutUserPolicy", Sid="OfficeOnly", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
        ),
    )
    [route] = acct.graph().routes(me)
    assert route.conditional
    assert route.possible_denies == ["inline policy dev-inline, statement Sid OfficeOnly"]
    assert "a Deny may apply under a condition" in route.explain()


def test_principal_context_holds_what_the_snapshot_knows():
    ctx = principal_context(
        "user",
        {"Arn": arn("user", "u"), "UserName": "u", "UserId": "AIDAU", "Tags": [{"Key": "k", "Value": "v"}]},
        account_id=ACCOUNT,
        now=NOW,
    )
    assert (
        ctx["aws:username"] == "u"
        and ctx["aws:PrincipalTag/k"] == "v"
        and ctx["aws:PrincipalAccount"] == ACCOUNT
    )
    assert "aws:SourceIp" not in ctx and "aws:MultiFactorAuthPresent" not in ctx


# --------------------------------------------------------------------------- denies, boundaries, errors


def test_an_explicit_deny_cuts_the_edge():
    acct = Account()
    acct.role("admin", managed=[ADMIN_ARN])
    me = acct.user("dev", allow("sts:AssumeRole"), deny("sts:AssumeRole", arn("role", "admin")))
    assert acct.graph().routes(me) == []


def test_a_boundary_cuts_the_edge():
    acct = Account()
    me = acct.role("r", allow("iam:PutRolePolicy"), boundary=READ_ONLY_ARN)
    assert acct.graph().routes(me) == []


def test_admins_have_no_route_and_are_not_reported():
    acct = Account()
    me = acct.user("root-ish", managed=[ADMIN_ARN])
    graph = acct.graph()
    assert graph.is_admin(me) and graph.routes(me) == []


def test_a_method_naming_an_unknown_action_is_an_error_not_a_pass():
    ghost = EscalationMethod(
        id="codestar-create-project",
        title="CodeStar project",
        required=(("codestar:CreateProject",), ("iam:PassRole",)),
        resource_hint="*",
        description="retired service",
        passed_to_service="codestar.amazonaws.com",
    )
    acct = Account()
    acct.user("dev", allow("*"))
    graph = acct.graph(methods=[ghost])
    assert [e.split(":")[0] for e in graph.errors] == ["codestar-create-project"]


def test_an_unreadable_trust_policy_is_reported_for_the_role():
    acct = Account()
    acct.role("broken", trust={"Statement": "nope"})
    acct.user("dev", allow("sts:AssumeRole"))
    graph = acct.graph()
    assert any("trust policy of broken" in p for p in graph.principal_errors[arn("role", "broken")])


# --------------------------------------------------------------------------- properties

ACTIONS = [
    "sts:AssumeRole",
    "iam:PutRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:AddUserToGroup",
    "iam:PassRole",
    "lambda:CreateFunction",
    "lambda:InvokeFunction",
]
NAMES = ["r0", "r1", "r2", "u0", "u1"]


def _resource(name: str | None) -> str:
    if name is None:
        return "*"
    return arn("role" if name.startswith("r") else "user", name)


grant = st.tuples(st.sampled_from(ACTIONS), st.sampled_from([None, *NAMES]))
world = st.fixed_dictionaries(
    {name: st.lists(grant, max_size=3) for name in NAMES}
    | {"admin": st.sampled_from(NAMES), "lambda": st.sampled_from(["r0", "r1", "r2"])}
)


def _build(spec: dict, extra_deny: tuple[str, str, str | None] | None = None) -> EscalationGraph:
    acct = Account()
    for name in NAMES:
        statements = [allow(a, _resource(r)) for a, r in spec[name]]
        if extra_deny and extra_deny[0] == name:
            statements.append(deny(extra_deny[1], _resource(extra_deny[2])))
        managed = [ADMIN_ARN] if spec["admin"] == name else []
        if name.startswith("r"):
            trust = trusting(ROOT, {"Service": "lambda.amazonaws.com"}) if spec["lambda"] == name else None
            acct.role(name, *statements, managed=managed, trust=trust)
        else:
            acct.user(name, *statements, managed=managed)
    return acct.graph()


def _escalating(graph: EscalationGraph) -> set[str]:
    return {a for _, a, _ in graph.principals() if graph.routes(a)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world, st.sampled_from(NAMES), st.sampled_from(ACTIONS), st.sampled_from([None, *NAMES]))
def test_adding_a_deny_never_adds_a_path(spec, who, action, resource):
    # Compared: who can end up administrator (is one, or has a route). A Deny may demote an
    # administrator to a principal that still escalates, which is a path, not a new one.
    before = _can_become_admin(_build(spec))
    after = _can_become_admin(_build(spec, (who, action, resource)))
    assert after <= before


def _can_become_admin(graph: EscalationGraph) -> set[str]:
    return {a for _, a, _ in graph.principals() if graph.is_admin(a) or graph.routes(a)}


def test_granting_oneself_more_does_not_lift_ones_own_deny():
    # The minimal example the property found: an administrator denied iam:PutRolePolicy was
    # reported as reaching administrator by attaching a policy to itself; the Deny still applies.
    acct = Account()
    me = acct.role("r0", deny("iam:PutRolePolicy"), managed=[ADMIN_ARN])
    graph = acct.graph()
    assert not graph.is_admin(me)
    assert all(route.admin != me for route in graph.routes(me))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world)
def test_every_route_is_shortest_and_ends_at_an_administrator(spec):
    graph = _build(spec)
    for _, principal, _ in graph.principals():
        for route in graph.routes(principal):
            assert route.hops and route.hops[0].source == principal
            assert (
                graph.is_admin(route.admin)
                or route.hops[-1].changes_permissions
                or any(h.changes_permissions for h in route.hops)
            )
            for a, b in zip(route.hops, route.hops[1:]):
                assert a.target == b.source or a.changes_permissions
