"""The catalog of checks: each check is one small function over a snapshot, with its metadata beside it.

Adding a check is adding one decorated function in a theme module (and the module to its feature's ``checks`` in ``bot/features.py``)::

    @check(
        "ROOT_ACCESS_KEYS",
        title="The root user has access keys",
        severity=Severity.CRITICAL,
        cis=("1.4",),
        risk="One leaked key is the whole account, with no way to limit it.",
        console="Sign in as root → Security credentials → Access keys → Delete.",
        cli="aws iam delete-access-key --access-key-id KEY_ID  (run with root credentials)",
        needs=("credential_report",),
    )
    def root_access_keys(ctx: CheckContext) -> Iterator[Hit]:
        ...
        yield Hit(principal_arn=..., principal_name="<root_account>", detail="...", key="access_key_1")

A check yields ``Hit`` (a problem) or ``ctx.unknown(reason, ...)`` (could not evaluate). The runner
turns them into ``bot.findings.Finding`` with the check's metadata. When a source the check
``needs`` could not be read, the runner reports the check as "could not evaluate" without calling
it, so an unavailable source is never a pass.

``cli`` may name fields in braces (``{name}``, or any key of ``Hit.fields``); they are filled per
finding, and unknown ones are left as they are.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from bot.escalation import METHODS, find_escalations
from bot.escalation_graph import EscalationGraph
from bot.features import modules
from bot.findings import Finding, FindingStatus, Severity
from bot.inventory import PolicyIndex, report_date, unknown_source
from bot.policy import Statement, evaluate, is_full_admin, service_wildcards
from bot.settings import Config, ScanConfig

# Theme modules whose checks make up the catalog (each feature's ``checks`` in bot.features; imported
# by ``load_checks``).
MODULES: tuple[str, ...] = modules("checks")


class Owners(Protocol):
    """What checks may ask about people (``bot.identity.IdentityMap`` satisfies it)."""

    def owner_of(self, principal_arn: str | None) -> str | None: ...


@dataclass
class Hit:
    """One problem a check found. ``key`` distinguishes several hits on one principal."""

    principal_arn: str | None = None
    principal_name: str | None = None
    detail: str = ""
    key: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    unknown: bool = False


ESCALATION_ACTIONS = tuple(sorted({a.lower() for m in METHODS for a in m.actions}))
_LIMITS = ("permissions-boundary", "session")


class _ActionGlobs:
    """A statement's Action (or NotAction) globs, lower case, as a matcher: the names without a
    wildcard in a set, one regular expression for the others. (One expression for all of them cost
    more to compile than every question asked of it: AWS-managed policies list hundreds of names.)"""

    __slots__ = ("_names", "_wild")

    def __init__(self, patterns: Iterable[str]) -> None:
        lowered = [p.strip().lower() for p in patterns]
        self._names = frozenset(p for p in lowered if "*" not in p and "?" not in p)
        wild = [p for p in lowered if "*" in p or "?" in p]
        self._wild = re.compile("|".join(_glob_source(p) for p in wild)) if wild else None

    def fullmatch(self, action: str) -> bool:
        """Does one of the globs match all of ``action`` (lower case)?"""
        return action in self._names or (self._wild is not None and self._wild.fullmatch(action) is not None)


def _action_globs(stmt: Statement) -> _ActionGlobs:
    """The matcher of all of a statement's Action (or NotAction) globs, lower case."""
    patterns = stmt.actions if stmt.actions is not None else (stmt.not_actions or ())
    return _ActionGlobs(patterns)


@functools.lru_cache(maxsize=65536)
def _glob_source(pattern: str) -> str:
    """IAM action glob → regex source: ``*`` any run, ``?`` one character, case-insensitive."""
    return "(?:" + re.escape(pattern.strip().lower()).replace(r"\*", ".*").replace(r"\?", ".") + ")"


def relevant_to(statements: Iterable[Statement], actions: Iterable[str]) -> list[Statement]:
    """The statements that can bear on any of ``actions`` (lower case, no wildcards).

    ``bot.policy.evaluate`` only ever looks at statements whose Action (or NotAction) matches the
    action asked about, so leaving the others out changes no decision and makes evaluations of
    principals with the same relevant policies identical (they are cached). Permission boundaries
    and session policies are always kept: an empty boundary must still deny.
    """
    wanted = _lowered(actions if isinstance(actions, tuple) else tuple(actions))
    return [s for s in statements if s.source.kind in _LIMITS or _bears_on(s, wanted)]


@functools.lru_cache(maxsize=1024)
def _lowered(actions: tuple[str, ...]) -> tuple[str, ...]:
    """``actions`` in lower case, once per tuple (the graph asks about the same ~30 for every principal)."""
    return tuple(a.lower() for a in actions)


_MEMO: dict[tuple[int, Any], tuple[Statement, Any]] = {}
_MEMO_LOCK = threading.Lock()
# A safety bound within one scan; ``clear_scan_memo`` empties it after every scan, so the statements
# it holds (and keeps alive) never outlive the scan that parsed them.
MEMO_LIMIT = 100_000


def clear_scan_memo() -> None:
    """Forget the per-statement facts of the scan that just ended (called by ``bot.scan``)."""
    with _MEMO_LOCK:
        _MEMO.clear()


def memo_size() -> int:
    return len(_MEMO)


def _memo(stmt: Statement, tag: Any, compute: Callable[[Statement], Any]) -> Any:
    """A per-statement-object memo: a managed policy's statements are shared by every principal it is
    attached to, so a fact about one (say, "matches iam:PassRole") is worked out once per scan."""
    key = (id(stmt), tag)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    result = compute(stmt)
    with _MEMO_LOCK:
        if len(_MEMO) > MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = (stmt, result)  # holding stmt keeps its id() from being reused while cached
    return result


def _bears_on(stmt: Statement, wanted: tuple[str, ...]) -> bool:
    """Does the statement's Action/NotAction match one of ``wanted``?"""

    def compute(s: Statement) -> bool:
        matcher = _memo(s, "action-globs", _action_globs)
        if s.actions is not None:
            return any(matcher.fullmatch(a) for a in wanted)
        return not all(matcher.fullmatch(a) for a in wanted)

    return _memo(stmt, wanted, compute)


def _may_matter_for_admin(stmt: Statement) -> bool:
    """Could ``is_full_admin`` look at this statement? (Allow * on *, any Deny, boundaries.)"""

    def compute(s: Statement) -> bool:
        if s.effect == "Deny" or s.source.kind in _LIMITS:
            return True
        if s.resources is None or "*" not in s.resources:
            return False
        return s.actions is None or any(p.strip() in ("*", "*:*") for p in s.actions)

    return _memo(stmt, "admin?", compute)


def _service_wildcards(stmt: Statement) -> list[tuple[str, Statement]]:
    return service_wildcards([stmt])


@dataclass
class CheckContext:
    """What a check sees: the snapshot, the config, now, and (optionally) who owns what."""

    inventory: Mapping[str, Any]
    config: Config
    now: datetime
    owners: Owners | None = None
    # Account ids that are ours (``[[accounts]]``, AWS Organizations members): trusting them is not
    # trusting "another account".
    known_accounts: frozenset[str] = frozenset()
    _admin: dict[tuple, Any] = field(default_factory=dict, repr=False)
    _escalations: dict[tuple, Any] = field(default_factory=dict, repr=False)
    _decisions: dict[tuple, Any] = field(default_factory=dict, repr=False)

    @property
    def settings(self) -> ScanConfig:
        return self.config.scan

    @property
    def account_id(self) -> str:
        return self.inventory.get("account_id") or ""

    @cached_property
    def index(self) -> PolicyIndex:
        return PolicyIndex(self.inventory)

    def unknown(
        self,
        reason: str,
        *,
        principal_arn: str | None = None,
        principal_name: str | None = None,
        key: str = "",
    ) -> Hit:
        """A hit saying the check could not evaluate (never a pass)."""
        return Hit(principal_arn, principal_name, f"could not evaluate: {reason}", key, unknown=True)

    def source_unknown(self, source: str) -> str | None:
        return unknown_source(self.inventory, source)

    @cached_property
    def report_rows(self) -> list[dict[str, str]]:
        return list(self.inventory.get("credential_report") or [])

    @cached_property
    def root_row(self) -> dict[str, str] | None:
        return next((r for r in self.report_rows if r.get("user") == "<root_account>"), None)

    @cached_property
    def user_rows(self) -> list[dict[str, str]]:
        """Credential-report rows of IAM users (never the root row)."""
        return [r for r in self.report_rows if r.get("user") != "<root_account>"]

    @cached_property
    def report_by_arn(self) -> dict[str, dict[str, str]]:
        return {r.get("arn", ""): r for r in self.user_rows}

    def users(self) -> Iterator[tuple[Mapping[str, Any], dict[str, str] | None]]:
        """Each IAM user in the snapshot with its credential-report row (None when the report,
        generated up to 4 hours earlier, does not list it yet)."""
        for user in self.inventory.get("users") or []:
            yield user, self.report_by_arn.get(user["Arn"])

    def effective(self, arn: str, *, own_only: bool = False) -> tuple[list[Any], list[str]]:
        """A principal's statements and what made them incomplete (see ``PolicyIndex.statements``)."""
        return self.index.statements(arn, own_only=own_only)

    def full_admin(self, arn: str, *, own_only: bool = False) -> Any:
        """``bot.policy.is_full_admin`` over the principal's statements (a Decision or None).

        Only Allow-`*`-on-`*` statements, Denies and boundaries can matter to it; principals with the
        same such statements share one answer."""
        statements = [s for s in self.effective(arn, own_only=own_only)[0] if _may_matter_for_admin(s)]
        key = tuple(sorted(id(s) for s in statements))
        if key not in self._admin:
            self._admin[key] = is_full_admin(statements)
        return self._admin[key]

    def service_wildcards(self, arn: str, *, own_only: bool = False) -> list[tuple[str, Statement]]:
        """``bot.policy.service_wildcards`` over the principal's statements, memoised per statement."""
        return [
            hit
            for s in self.effective(arn, own_only=own_only)[0]
            for hit in _memo(s, "svc*", _service_wildcards)
        ]

    def escalations(self, arn: str) -> tuple[list[Any], list[str]]:
        """``bot.escalation.find_escalations`` over the principal's effective statements.

        Principals with the same policies (say, 300 members of one group) share one evaluation."""
        statements = relevant_to(self.effective(arn)[0], ESCALATION_ACTIONS)
        signature = tuple(sorted(id(s) for s in statements))
        if signature not in self._escalations:
            self._escalations[signature] = find_escalations(statements, account_id=self.account_id or None)
        return self._escalations[signature]

    @cached_property
    def escalation_graph(self) -> Any:
        """``bot.escalation_graph.EscalationGraph`` over this snapshot, built once per scan and
        sharing this context's statements, admin answers and relevance memo."""
        return EscalationGraph(
            self.inventory,
            now=self.now,
            statements=lambda arn: self.effective(arn),
            full_admin=lambda arn: self.full_admin(arn),
            relevant=relevant_to,
            password_enabled={
                arn: row.get("password_enabled") == "true"
                for arn, row in self.report_by_arn.items()
                if row.get("password_enabled") in ("true", "false")
            },
        )

    def decide(self, arn: str, action: str, resource: str = "*", *, own_only: bool = False) -> Any:
        """``bot.policy.evaluate`` for one principal, shared by principals with the same relevant statements."""
        statements = relevant_to(self.effective(arn, own_only=own_only)[0], (action,))
        key = (action, resource, tuple(sorted(id(s) for s in statements)))
        if key not in self._decisions:
            self._decisions[key] = evaluate(statements, action, resource)
        return self._decisions[key]

    def days_since(self, value: str | datetime | None) -> float | None:
        moment = report_date(value) if isinstance(value, str) or value is None else value
        if moment is None:
            return None
        return (self.now - moment).total_seconds() / 86400


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    cis: tuple[str, ...]
    risk: str
    console: str
    cli: str
    evaluate: Callable[[CheckContext], Iterable[Hit]]
    theme: str = ""
    needs: tuple[str, ...] = ()

    def remediation(self, fields: Mapping[str, Any] | None = None) -> str:
        """Console steps and the CLI command, with ``{name}``-style fields filled for one finding."""
        console = _fill(self.console, fields or {})
        cli = _fill(self.cli, fields or {})
        return f"Console: {console}\nCLI: {cli}" if cli else f"Console: {console}"

    def describe(self) -> dict[str, Any]:
        """The catalog entry as JSON (``iamwarden checks --format json``)."""
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "cis": list(self.cis),
            "risk": self.risk,
            "remediation": {"console": self.console, "cli": self.cli},
            "theme": self.theme,
            "needs": list(self.needs),
        }

    def run(self, ctx: CheckContext) -> list[Finding]:
        """Evaluate over one snapshot. A missing source or a crash is a "could not evaluate" finding."""
        missing = [(s, r) for s in self.needs if (r := ctx.source_unknown(s))]
        if missing:
            hits: Iterable[Hit] = [ctx.unknown("; ".join(f"{s}: {r}" for s, r in missing))]
        else:
            try:
                hits = list(self.evaluate(ctx))
            except Exception as exc:  # one broken check must not hide the others, nor pass
                hits = [ctx.unknown(f"the check failed: {type(exc).__name__}: {exc}")]
        return [self.finding(ctx, hit) for hit in hits]

    def finding(self, ctx: CheckContext, hit: Hit) -> Finding:
        fields = {"name": hit.principal_name or "", "arn": hit.principal_arn or "", "account": ctx.account_id}
        fields.update(hit.fields)
        return Finding(
            check_id=self.id,
            severity=self.severity,
            account_id=ctx.account_id,
            principal_arn=hit.principal_arn,
            principal_name=hit.principal_name,
            title=self.title,
            detail=hit.detail,
            remediation=self.remediation(fields),
            cis=list(self.cis),
            owner=ctx.owners.owner_of(hit.principal_arn) if ctx.owners and hit.principal_arn else None,
            status=FindingStatus.UNKNOWN if hit.unknown else FindingStatus.FAIL,
            detail_key=hit.key,
            extra=hit.extra,
        )


_FIELD = re.compile(r"\{(\w+)\}")


def _fill(template: str, fields: Mapping[str, Any]) -> str:
    """Replace ``{name}`` fields that are known; leave anything else as written."""
    return _FIELD.sub(lambda m: str(fields[m[1]]) if m[1] in fields else m[0], template)


CHECKS: dict[str, Check] = {}


def check(
    check_id: str,
    *,
    title: str,
    severity: Severity,
    risk: str,
    console: str,
    cli: str = "",
    cis: Iterable[str] = (),
    needs: Iterable[str] = (),
) -> Callable[[Callable[[CheckContext], Iterable[Hit]]], Callable[[CheckContext], Iterable[Hit]]]:
    """Register a check in ``CHECKS``; the decorated function yields Hits for one snapshot."""

    def register(fn: Callable[[CheckContext], Iterable[Hit]]) -> Callable[[CheckContext], Iterable[Hit]]:
        if check_id in CHECKS and CHECKS[check_id].evaluate is not fn:
            raise ValueError(f"check {check_id} is registered twice")
        CHECKS[check_id] = Check(
            id=check_id,
            title=title,
            severity=severity,
            cis=tuple(cis),
            risk=risk,
            console=console,
            cli=cli,
            evaluate=fn,
            theme=fn.__module__.rsplit(".", 1)[-1],
            needs=tuple(needs),
        )
        return fn

    return register


def load_checks() -> dict[str, Check]:
    """Import every theme module (a missing optional one is skipped) and return the catalog."""
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return CHECKS


def iter_checks() -> Iterator[Check]:
    load_checks()
    severity_rank = {s: i for i, s in enumerate(Severity)}
    yield from sorted(CHECKS.values(), key=lambda c: (severity_rank[c.severity], c.id))


# The catalog is complete as soon as it is imported (theme modules register into CHECKS).
load_checks()
