"""Every escalation method, one by one, through the real graph: a positive case and its twins.

For each method of ``bot.escalation.METHODS`` a non-admin user ``dev`` holds exactly that method's
required actions (the first of each group; a second case takes the last alternative of each group)
on the resource the method targets, in one small GAAD-shaped account that has what the method
needs (a customer-managed policy ``dev`` holds, an admin user, an admin group, a role to pass that
trusts the service and, for EC2, sits in an instance profile, …). ``EscalationGraph.routes`` must
give a route whose first hop names the method.

The non-exploitable twins must give no route through the method, and no route at all unless
the twin still holds all another method needs (``embedded``: ``passrole-codebuild`` without
``iam:PassRole`` still holds ``codebuild:StartBuild``, which is ``codebuild-start-build``):

* ``deny``: an explicit Deny of one required action (each one in turn);
* ``boundary``: a permissions boundary on ``dev`` that allows only ``s3:GetObject``;
* ``condition``: the grant holds only while ``aws:CurrentTime`` is before 2020 (never);
* ``elsewhere``: the method's resource scoped to another ARN (a role that is not privileged, a
  user that is not admin, a group ``dev`` is not in, a policy nobody holds, an S3 bucket …);
* ``aws-managed``: for policy-version methods, the target is an AWS-managed policy;
* ``trust`` / ``no-profile`` / ``nothing-behind``: the target exists but cannot be used (its
  trust does not admit the service or the principal, the role is in no instance profile, the
  policies behind the boundary to lift are no broader than it).

Lifting one's own boundary escalates only when the identity policies behind it are broader, so
for ``delete-user-permissions-boundary`` ``dev`` holds AdministratorAccess under a boundary made
of the grant (``via_boundary``): what it may really do is exactly the method's actions.

``CASES`` is keyed by method id and must name every method: a method added to the catalog
without a case here fails ``test_every_method_has_a_case``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.escalation import METHODS, EscalationMethod
from tests.checks.test_escalation_graph import (
    ADMIN_ARN,
    READ_ONLY_ARN,
    Account,
    allow,
    arn,
    deny,
    document,
    trusting,
)

BY_ID = {m.id: m for m in METHODS}
DEV = arn("user", "dev")
NEVER = {"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}
OTHER_SERVICE = "states.amazonaws.com"  # trusted by no method of the catalog
SERVICES = sorted({m.service for m in METHODS if m.service})


def svc_role(service: str) -> str:
    """The privileged role a service may assume (in an instance profile for EC2)."""
    return arn("role", "svc-" + service.removesuffix(".amazonaws.com").replace(".", "-"))


def app_role(service: str) -> str:
    """A role the same service may assume, with nothing but read access."""
    return arn("role", "app-" + service.removesuffix(".amazonaws.com").replace(".", "-"))


def name_of(resource_arn: str) -> str:
    return resource_arn.rsplit("/", 1)[-1]


def world(
    dev_statements: list[dict], *, dev_boundary: str | None = None, via_boundary: bool = False
) -> Account:
    """One account with everything any method needs, and ``dev`` holding ``dev_statements``.

    ``via_boundary``: ``dev`` holds AdministratorAccess under a boundary ``fence`` made of
    ``dev_statements`` (what it may really do is then exactly those)."""
    acct = Account()
    tools = acct.managed("tools", allow("s3:GetObject"))
    acct.managed("unheld", allow("s3:GetObject"))
    fence = acct.managed("fence", allow(["iam:DeleteUserPermissionsBoundary", "s3:GetObject"]))
    acct.managed("fence-s3", allow("s3:GetObject"))
    acct.group("devs")
    acct.group("admins", managed=[ADMIN_ARN])
    acct.group("readers", managed=[READ_ONLY_ARN])
    acct.user("admin", managed=[ADMIN_ARN])
    acct.user("intern")
    acct.user("other", managed=[ADMIN_ARN])
    acct.users["other"]["PermissionsBoundary"] = {"PermissionsBoundaryArn": fence}
    acct.role("admin", managed=[ADMIN_ARN])  # trusts the account
    acct.role("readonly", managed=[READ_ONLY_ARN])
    acct.role("target")  # nothing yet: a role to change, then assume
    acct.role("bounded", managed=[ADMIN_ARN], boundary=arn("policy", "fence-s3"))
    acct.role("vault", managed=[ADMIN_ARN], trust=trusting(arn("role", "nobody")))
    for service in SERVICES:
        profile = service == "ec2.amazonaws.com"
        acct.role(
            name_of(svc_role(service)),
            managed=[ADMIN_ARN],
            trust=trusting({"Service": service}),
            profile=profile,
        )
        acct.role(
            name_of(app_role(service)),
            managed=[READ_ONLY_ARN],
            trust=trusting({"Service": service}),
            profile=profile,
        )
    if via_boundary:
        allows = [s for s in dev_statements if s["Effect"] == "Allow"]
        denies = [s for s in dev_statements if s["Effect"] != "Allow"]
        acct.managed("fence", *allows, allow("s3:GetObject"))
        acct.user("dev", *denies, groups=["devs"], managed=[tools, ADMIN_ARN])
        dev_boundary = dev_boundary or fence
    else:
        acct.user("dev", *dev_statements, groups=["devs"], managed=[tools])
    if dev_boundary:
        acct.users["dev"]["PermissionsBoundary"] = {"PermissionsBoundaryArn": dev_boundary}
    return acct


# --------------------------------------------------------------------------- the case table


@dataclass(frozen=True)
class Case:
    """How to exploit one method in ``world``, and where its twins point instead."""

    target: str  # the ARN the method's IAM (iam:*, sts:*) actions are granted on
    elsewhere: str  # the same actions scoped to a resource that gives nothing
    # extra twins: name → change to the account (after ``world``) that makes the target unusable
    breaks: dict[str, Callable[[Account], None]] = field(default_factory=dict)
    # The grant is dev's boundary ``fence`` over AdministratorAccess (see ``world``): lifting a
    # boundary escalates only when the identity policies behind it are broader.
    via_boundary: bool = False
    elsewhere_all: bool = False  # scope every action elsewhere, not only the IAM ones

    def world(self, statements: list[dict], *, boundary: str | None = None) -> Account:
        return world(statements, dev_boundary=boundary, via_boundary=self.via_boundary)


def _untrusted(role: str, trust: dict) -> Callable[[Account], None]:
    def change(acct: Account) -> None:
        acct.roles[role]["AssumeRolePolicyDocument"] = trust

    return change


def _no_profile(role: str) -> Callable[[Account], None]:
    def change(acct: Account) -> None:
        acct.roles[role]["InstanceProfileList"] = []

    return change


def _read_only_behind(role: str) -> Callable[[Account], None]:
    """The role's boundary hides nothing: its own policies are read-only."""

    def change(acct: Account) -> None:
        acct.roles[role]["AttachedManagedPolicies"] = [
            {"PolicyArn": READ_ONLY_ARN, "PolicyName": "ReadOnlyAccess"}
        ]

    return change


def _dev_nothing_behind(acct: Account) -> None:
    """Behind dev's boundary are only the boundary actions themselves: lifting it gives nothing."""
    dev = acct.users["dev"]
    dev["AttachedManagedPolicies"] = [
        a for a in dev["AttachedManagedPolicies"] if a["PolicyArn"] != ADMIN_ARN
    ]
    dev["UserPolicyList"] = [
        {
            "PolicyName": "dev-inline",
            "PolicyDocument": document(
                allow(["iam:DeleteUserPermissionsBoundary", "iam:PutUserPermissionsBoundary"], DEV)
            ),
        }
    ]


def versioning() -> Case:
    return Case(target=arn("policy", "tools"), elsewhere=arn("policy", "unheld"))


def own_user() -> Case:
    return Case(target=DEV, elsewhere=arn("user", "intern"))


def own_group() -> Case:
    return Case(target=arn("group", "devs"), elsewhere=arn("group", "readers"))


def a_role(role: str = "target") -> Case:
    return Case(
        target=arn("role", role),
        elsewhere=arn("role", "readonly"),
        breaks={"trust": _untrusted(role, trusting(arn("role", "nobody")))},
    )


def admin_user() -> Case:
    return Case(target=arn("user", "admin"), elsewhere=arn("user", "intern"))


def passed(service: str) -> Case:
    role = name_of(svc_role(service))
    breaks = {"trust": _untrusted(role, trusting({"Service": OTHER_SERVICE}))}
    if service == "ec2.amazonaws.com":
        breaks["no-profile"] = _no_profile(role)
    return Case(target=svc_role(service), elsewhere=app_role(service), breaks=breaks)


def existing(service: str) -> Case:
    """An existing resource running as a role: the service's actions, on some resource."""
    case = passed(service)
    return Case(target="*", elsewhere="arn:aws:s3:::bucket/*", breaks=case.breaks, elsewhere_all=True)


LAMBDA, GLUE, CFN = "lambda.amazonaws.com", "glue.amazonaws.com", "cloudformation.amazonaws.com"
EC2, SAGEMAKER, CODEBUILD = "ec2.amazonaws.com", "sagemaker.amazonaws.com", "codebuild.amazonaws.com"
ECS, APPRUNNER = "ecs-tasks.amazonaws.com", "tasks.apprunner.amazonaws.com"

CASES: dict[str, Case] = {
    "create-policy-version": versioning(),
    "set-default-policy-version": versioning(),
    "attach-user-policy": own_user(),
    "attach-group-policy": own_group(),
    "attach-role-policy": a_role(),
    "put-user-policy": own_user(),
    "put-group-policy": own_group(),
    "put-role-policy": a_role(),
    "create-access-key": admin_user(),
    "create-login-profile": admin_user(),
    "update-login-profile": admin_user(),
    "add-user-to-group": Case(target=arn("group", "admins"), elsewhere=arn("group", "readers")),
    # the vault's trust admits nobody: rewriting it is the way in
    "update-assume-role-policy": Case(target=arn("role", "vault"), elsewhere=arn("role", "readonly")),
    "delete-user-permissions-boundary": Case(
        target=DEV,
        elsewhere=arn("user", "other"),
        via_boundary=True,
        breaks={"nothing-behind": _dev_nothing_behind},
    ),
    "delete-role-permissions-boundary": Case(
        target=arn("role", "bounded"),
        elsewhere=arn("role", "readonly"),
        breaks={
            "trust": _untrusted("bounded", trusting(arn("role", "nobody"))),
            "nothing-behind": _read_only_behind("bounded"),
        },
    ),
    "passrole-ec2": passed(EC2),
    "passrole-lambda": passed(LAMBDA),
    "lambda-update-function-code": existing(LAMBDA),
    "passrole-glue-dev-endpoint": passed(GLUE),
    "glue-update-dev-endpoint": existing(GLUE),
    "passrole-glue-job": passed(GLUE),
    "passrole-cloudformation": passed(CFN),
    "passrole-datapipeline": passed("datapipeline.amazonaws.com"),
    "passrole-codebuild": passed(CODEBUILD),
    "passrole-sagemaker-notebook": passed(SAGEMAKER),
    "passrole-sagemaker-job": passed(SAGEMAKER),
    "passrole-ecs": passed(ECS),
    "lambda-update-function-configuration": passed(LAMBDA),
    "cloudformation-update-stack": existing(CFN),
    "cloudformation-change-set": existing(CFN),
    "passrole-cloudformation-update": passed(CFN),
    "ec2-instance-connect": existing(EC2),
    "ssm-send-command": existing(EC2),
    "ec2-modify-user-data": existing(EC2),
    "ec2-launch-template-version": existing(EC2),
    "passrole-autoscaling": passed(EC2),
    "sagemaker-presigned-notebook-url": existing(SAGEMAKER),
    "sagemaker-notebook-lifecycle": existing(SAGEMAKER),
    "codebuild-start-build": existing(CODEBUILD),
    "codebuild-update-project": passed(CODEBUILD),
    "glue-update-job": passed(GLUE),
    "passrole-glue-session": passed(GLUE),
    "ecs-execute-command": existing(ECS),
    "passrole-ecs-service-update": passed(ECS),
    "passrole-apprunner": passed(APPRUNNER),
    "apprunner-update-service": existing(APPRUNNER),
    "passrole-bedrock-code-interpreter": passed("bedrock-agentcore.amazonaws.com"),
    "assume-any-role": a_role("admin"),
}


def _iam(action: str) -> bool:
    return action.startswith(("iam:", "sts:"))


def grant(
    method: EscalationMethod, case: Case, *, pick: int = 0, scope: str | None = None, **extra
) -> list[dict]:
    """Allow statements for the method's required actions (one per group, ``pick`` chooses which):
    IAM actions on the case's target, the service's own actions on ``*``. ``scope`` moves the
    method's first action group there (every action when ``elsewhere_all``)."""
    out = []
    for i, group in enumerate(method.required):
        action = group[pick]
        moved = scope is not None and (i == 0 or case.elsewhere_all)
        resource = scope if moved else case.target if _iam(action) else "*"
        out.append(allow(action, resource, **extra))
    return out


def embedded(method: EscalationMethod, pick: int = 0) -> set[str]:
    """Other methods whose every group the method's grant already covers (``passrole-codebuild``
    holds ``codebuild:StartBuild``, all that ``codebuild-start-build`` needs): a twin of the
    method may still escalate through those, never through the method itself."""
    held = {group[pick] for group in method.required}
    return {m.id for m in METHODS if m.id != method.id and all(held & set(g) for g in m.required)}


def assert_no_route_by(method: EscalationMethod, routes: list) -> None:
    used = {h.method for r in routes for h in r.hops}
    assert method.id not in used, [r.explain() for r in routes]
    assert {r.first.method for r in routes} <= embedded(method), [r.explain() for r in routes]


def routes_of(acct: Account) -> list:
    graph = acct.graph()
    assert graph.errors == [] and graph.principal_errors == {}
    return graph.routes(DEV)


def _params(twins: Callable[[EscalationMethod, Case], list[str]]) -> list:
    out = []
    for method in METHODS:
        case = CASES.get(method.id)
        for twin in twins(method, case) if case else ["missing"]:
            out.append(pytest.param(method, twin, id=f"{method.id}-{twin}"))
    return out


# --------------------------------------------------------------------------- the table is complete


def test_every_method_has_a_case():
    assert set(CASES) == {m.id for m in METHODS}


def test_the_world_alone_gives_dev_no_route():
    assert routes_of(world([])) == []


# --------------------------------------------------------------------------- positives


def _positives(method: EscalationMethod, case: Case) -> list[str]:
    alternatives = any(len(group) > 1 for group in method.required)
    return ["positive", "alternatives"] if alternatives else ["positive"]


@pytest.mark.parametrize(("method", "variant"), _params(_positives))
def test_the_method_alone_escalates(method, variant):
    case = CASES[method.id]
    pick = 0 if variant == "positive" else -1
    routes = routes_of(case.world(grant(method, case, pick=pick)))
    by_method = {r.first.method: r for r in routes}
    assert method.id in by_method, [r.explain() for r in routes]
    route = by_method[method.id]
    assert not route.conditional, route.explain()
    assert route.first.source == DEV
    assert set(route.first.actions) <= set(method.actions)


# --------------------------------------------------------------------------- twins


def _denies(method: EscalationMethod, case: Case) -> list[str]:
    return [f"deny-{group[0]}" for group in method.required]


@pytest.mark.parametrize(("method", "twin"), _params(_denies))
def test_an_explicit_deny_of_one_required_action_stops_it(method, twin):
    case = CASES[method.id]
    denied = twin.removeprefix("deny-")
    assert_no_route_by(method, routes_of(case.world([*grant(method, case), deny(denied)])))


def _twins(method: EscalationMethod, case: Case) -> list[str]:
    out = ["boundary", "condition", "elsewhere"]
    if method.target == "policy-holder":
        out.append("aws-managed")
    return out + sorted(case.breaks)


@pytest.mark.parametrize(("method", "twin"), _params(_twins))
def test_the_non_exploitable_twin_does_not_escalate(method, twin):
    case = CASES[method.id]
    boundary = None
    if twin == "boundary":
        statements, boundary = grant(method, case), arn("policy", "fence-s3")
    elif twin == "condition":
        statements = grant(method, case, Condition=NEVER)
    elif twin == "elsewhere":
        statements = grant(method, case, scope=case.elsewhere)
    elif twin == "aws-managed":
        statements = grant(method, case, scope="arn:aws:iam::aws:policy/*")
    else:
        statements = grant(method, case)
    acct = case.world(statements, boundary=boundary)
    if twin == "aws-managed":  # dev holds an AWS-managed policy too: still not a target
        acct.users["dev"]["AttachedManagedPolicies"].append(
            {"PolicyArn": READ_ONLY_ARN, "PolicyName": "ReadOnlyAccess"}
        )
    if twin in case.breaks:
        case.breaks[twin](acct)
    assert_no_route_by(method, routes_of(acct))


# --------------------------------------------------------------------------- Deny * removes everything


@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_deny_everything_removes_the_path(method):
    case = CASES[method.id]
    assert routes_of(case.world([*grant(method, case), deny("*")])) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(sorted(i for i, c in CASES.items() if not c.via_boundary)),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    st.lists(st.sampled_from([0, -1]), min_size=5, max_size=5),
)
def test_a_deny_star_statement_removes_every_path_of_any_mix_of_methods(ids, picks):
    statements = [s for i, p in zip(ids, picks) for s in grant(BY_ID[i], CASES[i], pick=p)]
    assert routes_of(world(statements))  # the mix escalates …
    assert routes_of(world([*statements, deny("*")])) == []  # … and Deny * stops all of it
