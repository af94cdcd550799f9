"""Identity and JIT correlation: the Slack member behind an event's principal, and the access
request its session came from."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from bot.alerts.events import CloudTrailEvent, UserIdentity
from bot.alerts.facts import _name_of
from bot.identity import identity_from_store
from bot.settings import Config
from bot.store import Store, iso

log = logging.getLogger(__name__)


@dataclass
class Enrichment:
    """What we know beyond the event: the mapped Slack member and the JIT request, if any."""

    owner: str | None = None
    jit_request_id: str | None = None
    jit_requester: str | None = None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def owner_of(config: Config, store: Store, event: CloudTrailEvent) -> str | None:
    """The Slack member behind the event's principal: the identity map (explicit config wins, then
    the email tag), the session issuer's role for assumed roles, or an SSO-style email session name."""
    return owner_of_identity(config, store, event.user_identity)


def owner_of_identity(config: Config, store: Store, ident: UserIdentity) -> str | None:
    """The Slack member behind one principal (see ``owner_of``)."""
    candidates = [ident.arn]
    if ident.session_context and ident.session_context.session_issuer:
        candidates.append(ident.session_context.session_issuer.arn)
    try:
        ids = identity_from_store(config, store)
        for arn in candidates:
            if arn and (member := ids.owner_of(arn)):
                return member
    except Exception:  # enrichment is optional: a failure here must not lose the alert
        log.exception("identity look-up failed; falling back to [identity] map")
    names = {c for c in candidates if c} | {_name_of(c) for c in candidates if c}
    if ident.user_name:
        names.add(ident.user_name)
    for member, principals in config.identity.map.items():
        if names & set(principals):
            return member
    for name in (ident.source_identity, ident.session_name):
        if name and _EMAIL.match(name):
            row = store.db.execute(
                "SELECT id FROM slack_users WHERE email = ? AND deleted = 0", [name.lower()]
            ).fetchone()
            if row:
                return row[0]
    return None


def jit_request_for(store: Store, event: CloudTrailEvent) -> tuple[str, str] | None:
    """(request id, requester) of the JIT grant this session came from, or None.

    The only coupling to the access feature (bot/access.py): its grants record the RoleSessionName
    (``iamwarden-<requester>-<request id>``) in ``access_grants`` and set SourceIdentity to the
    requester. Matches the session name first, else SourceIdentity + role + the approved window.
    Without those tables (access not deployed) there is nothing to correlate.
    """
    ident = event.user_identity
    session, source_identity = ident.session_name, ident.source_identity
    if not (session or source_identity) or not store.db["access_grants"].exists():
        return None
    row = None
    if session:
        row = store.db.execute(
            "SELECT r.id, r.requester FROM access_grants g JOIN access_requests r ON r.id = g.request_id "
            "WHERE g.session_name = ? ORDER BY g.issued_at DESC LIMIT 1",
            [session],
        ).fetchone()
    issuer = ident.session_context.session_issuer if ident.session_context else None
    if row is None and source_identity and issuer and issuer.arn:
        at = iso(event.event_time)
        row = store.db.execute(
            "SELECT id, requester FROM access_requests WHERE requester = ? AND role_arn = ? "
            "AND window_start <= ? AND window_end >= ? ORDER BY window_start DESC LIMIT 1",
            [source_identity, issuer.arn, at, at],
        ).fetchone()
    return (str(row[0]), str(row[1] or "")) if row else None


def enrich(config: Config, store: Store, event: CloudTrailEvent) -> Enrichment:
    jit = jit_request_for(store, event)
    owner = owner_of(config, store, event)
    if jit and not owner and jit[1]:
        owner = jit[1]
    return Enrichment(
        owner=owner, jit_request_id=jit[0] if jit else None, jit_requester=jit[1] if jit else None
    )
