"""A member's access keys: both key slots of every mapped IAM user, from the credential report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.identity import PrincipalRef
from bot.queries.book import SnapshotBook, SnapshotInfo, current_book, next_scan_at, parse_time
from bot.services import Services

# Values the credential report uses for "no value" (moto also writes not_supported for last-used
# region/service); they must never be parsed as dates.
_NO_VALUE = frozenset({"", "N/A", "not_supported", "no_information", "None"})


@dataclass(frozen=True)
class AccessKeyInfo:
    """One access-key slot of an IAM user, as the credential report tells it (it has no key ids)."""

    account_id: str
    user_name: str
    user_arn: str
    slot: int
    active: bool
    last_rotated: datetime | None
    last_used: datetime | None
    last_used_service: str | None  # None: never used or AWS has no information
    last_used_region: str | None

    def age_days(self, now: datetime) -> int | None:
        return (now - self.last_rotated).days if self.last_rotated else None

    def unused_days(self, now: datetime) -> int | None:
        return (now - self.last_used).days if self.last_used else None


@dataclass
class MemberKeys:
    user_id: str
    status: str  # as MemberRisks.status
    users: list[PrincipalRef]  # the member's IAM users (roles have no access keys)
    keys: list[AccessKeyInfo]
    snapshots: list[SnapshotInfo]
    next_scan: datetime | None = None
    tag_key: str = "email"
    email: str | None = None
    rotation_days: int = 90
    unused_days: int = 45


def member_keys(services: Services, user_id: str, *, book: SnapshotBook | None = None) -> MemberKeys:
    """The member's access keys (both slots of every mapped IAM user), from the credential report."""
    book = book or current_book(services)
    scan = services.config.scan
    base = dict(
        user_id=user_id,
        snapshots=book.snapshots,
        tag_key=services.config.identity.tag_key,
        email=book.identity.email_of(user_id),
        rotation_days=scan.key_rotation_days,
        unused_days=scan.key_unused_days,
    )
    if not book.snapshots:
        return MemberKeys(status="no-snapshot", users=[], keys=[], next_scan=next_scan_at(services), **base)
    principals = book.identity.principals_of(user_id)
    if not principals:
        return MemberKeys(status="unmapped", users=[], keys=[], **base)
    users = [p for p in principals if p.kind == "user"]
    keys: list[AccessKeyInfo] = []
    for user in users:
        row = book.credential_row(user.arn)
        if row is not None:
            keys += keys_from_row(user, row)
    return MemberKeys(status="ok", users=users, keys=keys, **base)


def keys_from_row(user: PrincipalRef, row: dict[str, str]) -> list[AccessKeyInfo]:
    """Key slots 1 and 2 of one credential report row; slots never issued (N/A, inactive) are skipped."""
    keys = []
    for slot in (1, 2):
        prefix = f"access_key_{slot}_"
        active = _flag(row.get(prefix + "active"))
        rotated = _cell_time(row.get(prefix + "last_rotated"))
        if not active and rotated is None:
            continue
        keys.append(
            AccessKeyInfo(
                account_id=user.account_id,
                user_name=user.name,
                user_arn=user.arn,
                slot=slot,
                active=active,
                last_rotated=rotated,
                last_used=_cell_time(row.get(prefix + "last_used_date")),
                last_used_service=_cell_text(row.get(prefix + "last_used_service")),
                last_used_region=_cell_text(row.get(prefix + "last_used_region")),
            )
        )
    return keys


def _flag(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _cell_text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text in _NO_VALUE else text


def _cell_time(value: Any) -> datetime | None:
    text = _cell_text(value)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None
