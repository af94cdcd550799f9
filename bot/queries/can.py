"""Policy questions over the snapshot: can this principal call an action, and who can.

Evaluated offline with the policy engine (``bot.policy``) over each principal's identity-policy
statements as the latest scan stored them; never a live AWS call.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass

from bot.identity import PrincipalRef
from bot.policy import ActionCatalog, Decision, evaluate
from bot.queries.book import SnapshotBook, SnapshotInfo

log = logging.getLogger(__name__)


class BadAction(ValueError):
    """The action is not one ``service:Action`` (or is unknown); ``suggestions`` are close known ones."""

    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


_ACTION = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9]+$")


def check_action(action: str) -> str:
    """Validate one ``service:Action`` (no wildcards); returns its canonical spelling.

    Raises BadAction. An action the catalog does not know is refused with the closest known ones,
    because evaluating a typo would answer "not allowed" for the wrong reason.
    """
    if not _ACTION.match(action):
        raise BadAction("Give one action like `s3:GetObject` (no wildcards).")
    catalog = ActionCatalog.default()
    if catalog.known_action(action):
        return catalog.canonical(action)
    service, _, name = action.partition(":")
    if catalog.known_service(service):
        candidates = sorted(catalog.expand(f"{service}:*"))
        by_lower = {c.lower(): c for c in candidates}
        close = difflib.get_close_matches(action.lower(), list(by_lower), n=3, cutoff=0.6)
        raise BadAction(f"`{action}` is not an action I know.", [by_lower[c] for c in close])
    close = difflib.get_close_matches(service.lower(), sorted(catalog.services()), n=3, cutoff=0.6)
    raise BadAction(f"`{service}` is not an AWS service I know.", [f"{c}:{name}" for c in close])


@dataclass
class PrincipalDecision:
    principal: PrincipalRef
    decision: Decision | None  # None when the principal's policies could not be read
    error: str | None = None


def can(
    book: SnapshotBook, principals: list[PrincipalRef], action: str, resource: str = "*"
) -> list[PrincipalDecision]:
    """Evaluate ``action`` on ``resource`` for each principal, offline, over the snapshot."""
    return [_decide(book, ref, action, resource) for ref in principals]


@dataclass
class WhoCan:
    action: str
    resource: str
    allowed: list[PrincipalDecision]
    evaluated: int
    errors: list[PrincipalDecision]
    snapshots: list[SnapshotInfo]


def who_can(book: SnapshotBook, action: str, resource: str = "*") -> WhoCan:
    """Every user and role whose identity policies allow ``action`` on ``resource``."""
    allowed, errors = [], []
    for ref in book.principals:
        result = _decide(book, ref, action, resource)
        if result.error:
            errors.append(result)
        elif result.decision.allowed:
            allowed.append(result)
    allowed.sort(key=lambda r: (r.principal.kind, r.principal.name.lower(), r.principal.account_id))
    return WhoCan(action, resource, allowed, len(book.principals), errors, book.snapshots)


def _decide(book: SnapshotBook, ref: PrincipalRef, action: str, resource: str) -> PrincipalDecision:
    try:
        statements = book.statements(ref)
    except Exception as exc:  # a malformed stored policy: say so, never report "not allowed"
        log.warning("could not read the policies of %s: %s", ref.arn, exc)
        return PrincipalDecision(ref, None, error=f"could not read its policies ({type(exc).__name__})")
    return PrincipalDecision(ref, evaluate(statements, action, resource))
