"""Offboarding: when a Slack member leaves, end their access at once and tell security what is left.

A member is *detected* deactivated by Slack's ``user_change`` event, or by a directory refresh
(events missed while the bot was down). Detection is claimed in SQLite (one open ``offboardings``
row per member: a unique index), so the same event delivered twice, two instances, or an event and
a refresh act once. Processing ends every live just-in-time grant of the member through the access
lifecycle's revocation (the role's inline deny on their SourceIdentity stops live sessions) and
withdraws their pending requests and extensions, then posts ONE alert to the security channel
naming what the member still holds. Each step is a conditional update, so a crash mid-way is
finished by the sweep, never repeated. A member who is reactivated is not re-granted anything: the
row is closed, the access stays ended. Cutting off what they still hold in IAM is
``bot.identity.disable``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.access.intents import end_all_access_of
from bot.identity.directory import DirectoryChanges, slack_error_text, slack_member, store_member
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)


# A processing step that has not finished in this long was interrupted (crash): the sweep takes it over.
STUCK_AFTER = timedelta(minutes=2)
ALERT_ATTEMPTS = 10


@dataclass
class EndedAccess:
    """What ending a member's access did: requests revoked (with whether the deny reached AWS) and
    requests or extensions withdrawn."""

    revoked: list[dict[str, Any]] = field(default_factory=list)  # {request_id, role, policy_written, problem}
    withdrawn: list[dict[str, Any]] = field(default_factory=list)  # {request_id, role, kind}

    @property
    def request_ids(self) -> list[str]:
        return [r["request_id"] for r in self.revoked + self.withdrawn]


def end_access_of(services: Services, user_id: str, *, reason: str) -> EndedAccess:
    """End every just-in-time access of ``user_id``: revoke live grants (the normal revocation path,
    so live sessions stop), withdraw pending requests and extensions.

    The one place offboarding touches the access lifecycle: the access domain's single call.
    """
    ended = EndedAccess()
    result = end_all_access_of(services, user_id, by="iamwarden", reason=reason)
    for request_id, role, revocation in result.revoked:
        ended.revoked.append(
            {
                "request_id": request_id,
                "role": role,
                "policy_written": revocation.policy_written,
                "problem": revocation.problem,
            }
        )
    for request_id, role, kind in result.withdrawn:
        ended.withdrawn.append({"request_id": request_id, "role": role, "kind": kind})
    return ended


@dataclass
class HeldUser:
    """An IAM user linked to the member that still works, as the latest snapshot tells it."""

    account_id: str
    user_name: str
    arn: str
    credentials: list[str]  # "console password", "access key 1", …


@dataclass
class OffboardingReport:
    """Everything the security channel needs about one departed member."""

    offboarding_id: int
    user_id: str
    name: str
    email: str | None
    source: str
    detected_at: datetime
    ended: EndedAccess
    users: list[HeldUser]
    roles: list[str]  # ARNs of roles mapped to the member
    snapshot_at: str | None  # when the holdings were last seen by a scan (None: never scanned)


class OffboardingNotifier(Protocol):
    """The Slack side (``handlers.identity.notifier``)."""

    def access_changed(self, request_ids: list[str]) -> None:
        """Re-render the messages of these requests (revoked / withdrawn)."""

    def offboarding_alert(self, report: OffboardingReport) -> tuple[str, str]:
        """Post the one alert to the security channel; returns (channel, ts). Raises on failure."""


def claim(services: Services, user_id: str, *, source: str, event_id: str | None = None) -> int | None:
    """Record that ``user_id`` was deactivated; returns the offboarding id when this call is the
    first to know (None when an open offboarding of the member exists already)."""
    now = services.clock.now()
    with services.store.transaction() as db:
        cursor = db.execute(
            "INSERT OR IGNORE INTO offboardings (user_id, source, event_id, detected_at, state, alert_attempts) "
            "VALUES (?, ?, ?, ?, 'detected', 0)",
            [user_id, source, event_id, iso(now)],
        )
        if cursor.rowcount != 1:
            return None
        offboarding_id = cursor.lastrowid
    services.store.audit(
        "offboarding.detected",
        actor="iamwarden",
        at=now,
        member=user_id,
        source=source,
        event_id=event_id,
        offboarding_id=offboarding_id,
    )
    return offboarding_id


def reactivated(services: Services, user_id: str, *, source: str) -> bool:
    """The member is active again: close their offboarding. Nothing is re-granted (ended access stays
    ended; they request again like anyone). True when an open offboarding was closed."""
    now = services.clock.now()
    changed = services.store.execute(
        "UPDATE offboardings SET reactivated_at = ? WHERE user_id = ? AND reactivated_at IS NULL",
        [iso(now), user_id],
    ).rowcount
    if changed:
        services.store.audit(
            "offboarding.reactivated",
            actor="iamwarden",
            at=now,
            member=user_id,
            source=source,
            regranted=False,
        )
    return bool(changed)


def is_offboarded(services: Services, user_id: str) -> bool:
    """True while the member has an open offboarding (deactivated and not reactivated since)."""
    row = services.store.execute(
        "SELECT 1 FROM offboardings WHERE user_id = ? AND reactivated_at IS NULL", [user_id]
    ).fetchone()
    return row is not None


def record_directory_changes(services: Services, changes: DirectoryChanges, *, source: str) -> list[int]:
    """Claim offboarding for members a directory write found deactivated (and for cached deactivated
    members who still hold just-in-time access, e.g. on the first refresh); close reactivated ones.
    Returns the offboarding ids claimed."""
    for user_id in changes.reactivated:
        reactivated(services, user_id, source=source)
    candidates = list(changes.deactivated)
    candidates += [
        r[0]
        for r in services.store.execute(
            "SELECT DISTINCT r.requester FROM access_requests r JOIN slack_users u ON u.id = r.requester "
            "WHERE u.deleted = 1 AND r.state IN ('pending', 'approved', 'granted') "
            "AND NOT EXISTS (SELECT 1 FROM offboardings o WHERE o.user_id = r.requester "
            "AND o.reactivated_at IS NULL)"
        ).fetchall()
        if r[0] not in candidates
    ]
    claimed = []
    for user_id in candidates:
        offboarding_id = claim(services, user_id, source=source)
        if offboarding_id is not None:
            claimed.append(offboarding_id)
    return claimed


def _take(services: Services, offboarding_id: int, *, from_state: str, to_state: str) -> bool:
    """Move one offboarding from ``from_state`` to ``to_state``; True for the one caller that did.
    A step left half-done by a crash (``claimed_at`` older than STUCK_AFTER) can be taken over."""
    now = services.clock.now()
    stuck = iso(now - STUCK_AFTER)
    return (
        services.store.execute(
            "UPDATE offboardings SET state = ?, claimed_at = ? WHERE id = ? AND reactivated_at IS NULL AND "
            "(state = ? OR (state = ? AND claimed_at <= ?))",
            [to_state, iso(now), offboarding_id, from_state, to_state, stuck],
        ).rowcount
        == 1
    )


def _row(services: Services, offboarding_id: int) -> dict[str, Any] | None:
    rows = list(services.store.db["offboardings"].rows_where("id = ?", [offboarding_id]))
    return rows[0] if rows else None


def holdings(services: Services, user_id: str) -> tuple[list[HeldUser], list[str], str | None]:
    """IAM users linked to the member that still have an active key or a console password, and the
    roles mapped to them, from the latest snapshots and the directory as it is now (no AWS call)."""
    from bot.queries import current_book  # late: bot.queries imports bot.identity

    book = current_book(services)
    users: list[HeldUser] = []
    roles: list[str] = []
    for ref in book.identity.principals_of(user_id):
        if ref.kind == "role":
            roles.append(ref.arn)
            continue
        if ref.kind != "user":
            continue
        row = book.credential_row(ref.arn) or {}
        held = []
        if str(row.get("password_enabled", "")).lower() == "true":
            held.append("console password")
        for slot in (1, 2):
            if str(row.get(f"access_key_{slot}_active", "")).lower() == "true":
                held.append(f"access key {slot}")
        if held:
            users.append(HeldUser(ref.account_id, ref.name, ref.arn, held))
    scanned = max((iso(s.scanned_at) for s in book.snapshots), default=None)
    return users, roles, scanned


def report_of(services: Services, offboarding_id: int) -> OffboardingReport | None:
    row = _row(services, offboarding_id)
    if row is None:
        return None
    member = slack_member(services.store, row["user_id"]) or {}
    users, roles, scanned = holdings(services, row["user_id"])
    ended = EndedAccess(
        revoked=json.loads(row["revoked"] or "[]"), withdrawn=json.loads(row["withdrawn"] or "[]")
    )
    return OffboardingReport(
        offboarding_id=offboarding_id,
        user_id=row["user_id"],
        name=member.get("real_name") or member.get("name") or row["user_id"],
        email=member.get("email"),
        source=row["source"],
        detected_at=datetime.fromisoformat(row["detected_at"]),
        ended=ended,
        users=users,
        roles=roles,
        snapshot_at=scanned,
    )


def process(
    services: Services, offboarding_id: int, notifier: OffboardingNotifier
) -> OffboardingReport | None:
    """Finish one offboarding: end the member's access, then post the one alert. Safe to call from
    any number of threads or instances: each step is taken by one caller only. Returns the report
    when this call posted the alert."""
    if _take(services, offboarding_id, from_state="detected", to_state="ending"):
        row = _row(services, offboarding_id)
        assert row is not None
        ended = end_access_of(
            services, row["user_id"], reason=f"{row['user_id']} left the workspace (offboarding)"
        )
        now = services.clock.now()
        for item in ended.revoked:
            services.store.audit(
                "offboarding.revoked",
                actor="iamwarden",
                at=now,
                request_id=item["request_id"],
                role=item["role"],
                member=row["user_id"],
                offboarding_id=offboarding_id,
                policy_written=item["policy_written"],
                problem=item["problem"],
            )
        for item in ended.withdrawn:
            services.store.audit(
                "offboarding.withdrawn",
                actor="iamwarden",
                at=now,
                request_id=item["request_id"],
                role=item["role"],
                member=row["user_id"],
                offboarding_id=offboarding_id,
                kind=item["kind"],
            )
        services.store.execute(
            "UPDATE offboardings SET state = 'access_ended', revoked = ?, withdrawn = ? WHERE id = ? AND state = 'ending'",
            [json.dumps(ended.revoked), json.dumps(ended.withdrawn), offboarding_id],
        )
        if ended.request_ids:
            try:
                notifier.access_changed(ended.request_ids)
            except Exception:  # the messages are cosmetic; the sweep never needs them
                log.exception("could not update the messages of %s", ended.request_ids)
    if not _take(services, offboarding_id, from_state="access_ended", to_state="alerting"):
        return None
    report = report_of(services, offboarding_id)
    assert report is not None
    try:
        channel, ts = notifier.offboarding_alert(report)
    except Exception as exc:
        error = slack_error_text(exc)
        services.store.execute(
            "UPDATE offboardings SET state = 'access_ended', alert_error = ?, alert_attempts = alert_attempts + 1 "
            "WHERE id = ? AND state = 'alerting'",
            [error, offboarding_id],
        )
        services.store.audit(
            "offboarding.alert_failed",
            actor="iamwarden",
            at=services.clock.now(),
            member=report.user_id,
            offboarding_id=offboarding_id,
            error=error,
        )
        log.warning("offboarding alert for %s not posted (%s); the sweep retries", report.user_id, error)
        return None
    services.store.execute(
        "UPDATE offboardings SET state = 'alerted', alert_channel = ?, alert_ts = ?, alert_error = NULL "
        "WHERE id = ? AND state = 'alerting'",
        [channel, ts, offboarding_id],
    )
    services.store.audit(
        "offboarding.alerted",
        actor="iamwarden",
        at=services.clock.now(),
        member=report.user_id,
        offboarding_id=offboarding_id,
        channel=channel,
        ts=ts,
        iam_users=[u.arn for u in report.users],
        roles=report.roles,
        revoked=[r["request_id"] for r in report.ended.revoked],
        withdrawn=[w["request_id"] for w in report.ended.withdrawn],
    )
    return report


def sweep(services: Services, notifier: OffboardingNotifier) -> int:
    """Finish interrupted offboardings and retry alerts Slack refused; end access that reached a
    departed member after their offboarding (a grant that was already being issued). Returns how
    many alerts were posted."""
    posted = 0
    rows = services.store.execute(
        "SELECT id, user_id, state FROM offboardings WHERE reactivated_at IS NULL AND "
        "(state != 'alerted' OR id IN (SELECT o.id FROM offboardings o JOIN access_requests r "
        "ON r.requester = o.user_id WHERE r.state IN ('pending', 'granted'))) AND alert_attempts < ?",
        [ALERT_ATTEMPTS],
    ).fetchall()
    for offboarding_id, user_id, state in rows:
        if state in ("alerted", "access_ended", "alerting"):
            late = end_access_of(services, user_id, reason=f"{user_id} left the workspace (offboarding)")
            if late.request_ids:
                now = services.clock.now()
                for item in late.revoked:
                    services.store.audit(
                        "offboarding.revoked",
                        actor="iamwarden",
                        at=now,
                        request_id=item["request_id"],
                        role=item["role"],
                        member=user_id,
                        offboarding_id=offboarding_id,
                        late=True,
                        policy_written=item["policy_written"],
                        problem=item["problem"],
                    )
                for item in late.withdrawn:
                    services.store.audit(
                        "offboarding.withdrawn",
                        actor="iamwarden",
                        at=now,
                        request_id=item["request_id"],
                        role=item["role"],
                        member=user_id,
                        offboarding_id=offboarding_id,
                        late=True,
                    )
                try:
                    notifier.access_changed(late.request_ids)
                except Exception:
                    log.exception("could not update the messages of %s", late.request_ids)
        if state != "alerted" and process(services, offboarding_id, notifier) is not None:
            posted += 1
    return posted


def offboard(
    services: Services,
    user_id: str,
    notifier: OffboardingNotifier,
    *,
    source: str,
    event_id: str | None = None,
) -> OffboardingReport | None:
    """Detect and process at once (the ``user_change`` listener, the demo). None when the member
    was already being offboarded (the event was delivered twice, or a refresh got there first)."""
    offboarding_id = claim(services, user_id, source=source, event_id=event_id)
    if offboarding_id is None:
        return None
    return process(services, offboarding_id, notifier)


def open_offboarding(services: Services, offboarding_id: int) -> dict[str, Any] | None:
    """The stored offboarding (for the alert's Disable access buttons: authorize from stored state)."""
    return _row(services, offboarding_id)


def member_changed(
    services: Services,
    member: dict[str, Any],
    notifier: OffboardingNotifier,
    *,
    event_id: str | None = None,
) -> str:
    """One member as Slack's ``user_change`` event has them (a valid ``id``): cache them, then
    offboard them or close their offboarding. Returns what happened, for the log."""
    user_id = member["id"]
    changes = store_member(services.store, member, services.clock.now())
    if member.get("deleted"):
        # claim() dedupes: the same event retried (X-Slack-Retry-Num), two instances, or an event and a
        # directory refresh, all act once.
        report = offboard(services, user_id, notifier, source="user_change", event_id=event_id)
        # None: another delivery (or instance) claimed it first, or the alert waits for the sweep.
        return "offboarded" if report is not None else "claimed elsewhere or alert pending"
    if changes.reactivated or is_offboarded(services, user_id):
        reactivated(services, user_id, source="user_change")
        return "reactivated"
    return "updated"
