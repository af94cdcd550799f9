"""Answers to IAM questions, from the latest stored snapshots only (never a live AWS call).

Everything here reads what the scan stored (``bot.findings``): a member's findings across the IAM
principals mapped to them (``bot.identity``), their access keys from the credential report rows,
and offline ``can`` / ``who-can`` evaluation with the policy engine (``bot.policy``). The Slack
surface (``handlers/queries.py``) only renders these objects.

Parsing a large inventory takes far longer than Slack's 3-second budget allows per request, so the
parsed snapshots, the identity map and each principal's statements are kept in a ``SnapshotBook``
that is rebuilt only when a new snapshot is stored. Who is who (``bot.identity``) is joined to it at
answer time, cached per directory version, so a directory change shows on the next answer.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.findings import (
    Finding,
    FindingStatus,
    Severity,
    findings_of,
    is_open,
    latest_snapshots,
    open_count,
    snapshot_inventory,
)
from bot.identity import IdentityMap, PrincipalRef, identity_for
from bot.services import Services
from bot.settings import Config
from bot.store import Store

log = logging.getLogger(__name__)

# Values the credential report uses for "no value" (moto also writes not_supported for last-used
# region/service); they must never be parsed as dates.
_NO_VALUE = frozenset({"", "N/A", "not_supported", "no_information", "None"})


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    account_id: str
    account_name: str
    scanned_at: datetime

    @property
    def label(self) -> str:
        return f"{self.account_name} ({self.account_id})" if self.account_name else self.account_id


@dataclass
class SnapshotBook:
    """The newest successful snapshot of every account, parsed once, with its identity map."""

    snapshots: list[SnapshotInfo]
    inventories: dict[str, dict[str, Any]]
    identity: IdentityMap
    principals: list[PrincipalRef] = field(default_factory=list)
    _credential_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    _indexes: dict[str, Any] = field(default_factory=dict)  # account id -> bot.inventory.PolicyIndex
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, config: Config, store: Store, rows: list[dict[str, Any]]) -> SnapshotBook:
        snapshots: list[SnapshotInfo] = []
        inventories: dict[str, dict[str, Any]] = {}
        for row in rows:
            inventory = snapshot_inventory(store, row["id"])
            if inventory is None:
                continue
            snapshots.append(
                SnapshotInfo(
                    row["id"], row["account_id"], row["account_name"] or "", _parse_time(row["scanned_at"])
                )
            )
            inventories[row["account_id"]] = inventory
        identity = identity_for(config, store, [row["id"] for row in rows], inventories)
        book = cls(snapshots=snapshots, inventories=inventories, identity=identity)
        for account_id, inventory in inventories.items():
            for user in inventory.get("users") or []:
                book.principals.append(PrincipalRef(account_id, user["Arn"], user["UserName"], "user"))
            for role in inventory.get("roles") or []:
                book.principals.append(PrincipalRef(account_id, role["Arn"], role["RoleName"], "role"))
            for row in inventory.get("credential_report") or []:
                if row.get("arn"):
                    book._credential_rows[row["arn"]] = row
        return book

    @property
    def snapshot_ids(self) -> list[int]:
        return [s.id for s in self.snapshots]

    def snapshot_of(self, account_id: str) -> SnapshotInfo | None:
        return next((s for s in self.snapshots if s.account_id == account_id), None)

    def credential_row(self, arn: str) -> dict[str, str] | None:
        return self._credential_rows.get(arn)

    def statements(self, ref: PrincipalRef) -> list:
        """The principal's identity-policy statements. Each account's policies are parsed once and
        shared by every principal (a stored inventory never changes). Raises KeyError when the
        principal is not in the snapshot."""
        from bot.inventory import PolicyIndex, principal_statements

        with self._lock:  # PolicyIndex caches without locks of its own
            index = self._indexes.get(ref.account_id)
            if index is None:
                index = self._indexes[ref.account_id] = PolicyIndex(self.inventories[ref.account_id])
            return principal_statements(index, ref.arn)


# The parsed snapshots are the bot's biggest objects, so only the current book of each database is
# kept (a new snapshot replaces the old book instead of sitting beside it), and at most
# MAX_BOOKS databases (tests and the demo run several bots in one process). Memory stays flat
# however many snapshots are taken.
MAX_BOOKS = 4
_BOOKS: OrderedDict[tuple, tuple[tuple, SnapshotBook]] = OrderedDict()
_BOOKS_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()


def _cached_book(owner: tuple, key: tuple) -> SnapshotBook | None:
    with _BOOKS_LOCK:
        entry = _BOOKS.get(owner)
        if entry is None or entry[0] != key:
            return None
        _BOOKS.move_to_end(owner)
        return entry[1]


def current_book(services: Services) -> SnapshotBook:
    """The book for the newest snapshots, with who is who as the directory is now; cheap when
    nothing changed (three small queries)."""
    store = services.store
    rows = latest_snapshots(store)
    owner = (id(services.config), str(store.path))
    # Who is who is joined at answer time (_with_current_identity), so only the snapshots key the book.
    key = (tuple(r["id"] for r in rows),)
    hit = _cached_book(owner, key)
    if hit is not None:
        return _with_current_identity(services, hit, key[0])
    # One thread parses a new snapshot; requests arriving meanwhile wait for it instead of each
    # parsing the same inventory.
    with _BUILD_LOCK:
        hit = _cached_book(owner, key)
        if hit is not None:
            return _with_current_identity(services, hit, key[0])
        with _BOOKS_LOCK:
            _BOOKS.pop(owner, None)  # let the superseded book go before parsing the new one
        book = SnapshotBook.build(services.config, store, rows)
        with _BOOKS_LOCK:
            _BOOKS[owner] = (key, book)
            while len(_BOOKS) > MAX_BOOKS:
                _BOOKS.popitem(last=False)
    return _with_current_identity(services, book, key[0])


def _with_current_identity(services: Services, book: SnapshotBook, snapshot_ids: tuple) -> SnapshotBook:
    """The book joined with the identity map of the directory as it is now (a cached look-up;
    the parsed snapshots, indexes and locks are shared, never copied)."""
    identity = identity_for(services.config, services.store, snapshot_ids, book.inventories)
    return book if identity is book.identity else dataclasses.replace(book, identity=identity)


def cached_book_count() -> int:
    """How many parsed books are held (for tests and the memory benchmark)."""
    with _BOOKS_LOCK:
        return len(_BOOKS)


def next_scan_at(services: Services) -> datetime | None:
    """When the scheduled scan runs next (``[schedule] scan_cron``), or None if it is not scheduled."""
    schedule = services.config.schedule
    if not schedule.scan_cron:
        return None
    from bot.jobs import crontab_trigger

    try:
        trigger = crontab_trigger(schedule.scan_cron, schedule.timezone)
    except ValueError:
        return None
    return trigger.get_next_fire_time(None, services.clock.now())


# --------------------------------------------------------------------------- a member's risks


@dataclass
class MemberRisks:
    """``status``: ``no-snapshot`` (nothing scanned yet), ``unmapped`` (no IAM principal linked to
    the member) or ``ok`` (``findings`` may be empty: the member is clean)."""

    user_id: str
    status: str
    principals: list[PrincipalRef]
    findings: list[Finding]
    snapshots: list[SnapshotInfo]
    next_scan: datetime | None = None
    tag_key: str = "email"
    email: str | None = None  # the member's Slack email: what an IAM user's tag must say to link

    @property
    def counts(self) -> Counter[str]:
        """Open findings by severity (a check that could not evaluate is not one of them)."""
        return Counter(f.severity.value for f in self.findings if is_open(f))

    @property
    def open_count(self) -> int:
        """The member's open findings, counted as every surface counts them."""
        return open_count(self.findings)

    @property
    def unknown(self) -> int:
        """Checks on the member's principals that could not evaluate (shown, never counted as open)."""
        return sum(1 for f in self.findings if f.status == FindingStatus.UNKNOWN)


def member_risks(services: Services, user_id: str, *, book: SnapshotBook | None = None) -> MemberRisks:
    """The member's open findings across every principal mapped to them, most severe first."""
    book = book or current_book(services)
    base = dict(
        user_id=user_id,
        snapshots=book.snapshots,
        tag_key=services.config.identity.tag_key,
        email=book.identity.email_of(user_id),
    )
    if not book.snapshots:
        return MemberRisks(
            status="no-snapshot", principals=[], findings=[], next_scan=next_scan_at(services), **base
        )
    principals = book.identity.principals_of(user_id)
    if not principals:
        return MemberRisks(status="unmapped", principals=[], findings=[], **base)
    return MemberRisks(
        status="ok", principals=principals, findings=principal_findings(services, book, principals), **base
    )


def principal_findings(
    services: Services, book: SnapshotBook, principals: Iterable[PrincipalRef]
) -> list[Finding]:
    """Open (unsuppressed) findings of these principals in the latest snapshots."""
    arns = [p.arn for p in principals]
    found = findings_of(services.store, book.snapshot_ids, principal_arns=arns)
    return [f for f in found if not f.suppressed]


# --------------------------------------------------------------------------- access keys


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
        return _parse_time(text)
    except ValueError:
        return None


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- principal look-up


class PrincipalNotFound(LookupError):
    """Nothing in the snapshots matches what was typed; ``suggestions`` are the closest names."""

    def __init__(self, query: str, suggestions: list[str]):
        super().__init__(query)
        self.query = query
        self.suggestions = suggestions


class MemberNotMapped(LookupError):
    """A Slack member was named, but no IAM principal is linked to them."""

    def __init__(self, user_id: str):
        super().__init__(user_id)
        self.user_id = user_id


_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def resolve_principal(book: SnapshotBook, text: str) -> list[PrincipalRef]:
    """IAM principals named by ``text``: a member mention (``<@U…>``), ``@name``, an ARN or an IAM
    user/role name (case-insensitive, as IAM names are). Several when a member owns several, or a
    name exists in several accounts.

    Raises PrincipalNotFound (with the closest names) or MemberNotMapped.
    """
    query = text.strip()
    mention = _MENTION.match(query)
    if mention:
        return _member_principals(book, mention.group(1))
    if query.startswith("@"):
        handle = query[1:].lower()
        members = book.identity.members
        for uid, member in members.items():
            if handle in ((member.get("name") or "").lower(), (member.get("real_name") or "").lower()):
                return _member_principals(book, uid)
        names = [m.get("name") or "" for m in members.values() if m.get("name")]
        raise PrincipalNotFound(
            query, ["@" + n for n in difflib.get_close_matches(handle, names, n=3, cutoff=0.5)]
        )
    if query.startswith("arn:"):
        found = [p for p in book.principals if p.arn == query]
        if found:
            return found
        return _not_found(book, query, query.rsplit("/", 1)[-1])
    found = [p for p in book.principals if p.name.lower() == query.lower()]
    if found:
        return found
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", query) and query in book.identity.members:
        return _member_principals(book, query)
    return _not_found(book, query, query)


def _member_principals(book: SnapshotBook, user_id: str) -> list[PrincipalRef]:
    refs = book.identity.principals_of(user_id)
    if not refs:
        raise MemberNotMapped(user_id)
    return refs


def _not_found(book: SnapshotBook, query: str, name: str) -> list[PrincipalRef]:
    by_lower: dict[str, str] = {}
    for p in book.principals:
        by_lower.setdefault(p.name.lower(), p.name)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
    raise PrincipalNotFound(query, [by_lower[c] for c in close])


# --------------------------------------------------------------------------- can / who-can


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
    from bot.policy import ActionCatalog

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
    decision: Any | None  # bot.policy.Decision; None when the principal's policies could not be read
    error: str | None = None


def can(
    book: SnapshotBook, principals: list[PrincipalRef], action: str, resource: str = "*"
) -> list[PrincipalDecision]:
    """Evaluate ``action`` on ``resource`` for each principal, offline, over the snapshot."""
    from bot.policy import evaluate

    return [_decide(book, ref, action, resource, evaluate) for ref in principals]


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
    from bot.policy import evaluate

    allowed, errors = [], []
    for ref in book.principals:
        result = _decide(book, ref, action, resource, evaluate)
        if result.error:
            errors.append(result)
        elif result.decision.allowed:
            allowed.append(result)
    allowed.sort(key=lambda r: (r.principal.kind, r.principal.name.lower(), r.principal.account_id))
    return WhoCan(action, resource, allowed, len(book.principals), errors, book.snapshots)


def _decide(
    book: SnapshotBook, ref: PrincipalRef, action: str, resource: str, evaluate: Any
) -> PrincipalDecision:
    try:
        statements = book.statements(ref)
    except Exception as exc:  # a malformed stored policy: say so, never report "not allowed"
        log.warning("could not read the policies of %s: %s", ref.arn, exc)
        return PrincipalDecision(ref, None, error=f"could not read its policies ({type(exc).__name__})")
    return PrincipalDecision(ref, evaluate(statements, action, resource))


# --------------------------------------------------------------------------- findings report


@dataclass
class FindingsFilter:
    severity: Severity | None = None
    check_ids: set[str] = field(default_factory=set)
    account_ids: set[str] = field(default_factory=set)

    def describe(self) -> str:
        parts = []
        if self.severity:
            parts.append(f"severity {self.severity.value} or worse")
        if self.check_ids:
            parts.append("check " + ", ".join(sorted(self.check_ids)))
        if self.account_ids:
            parts.append("account " + ", ".join(sorted(self.account_ids)))
        return "; ".join(parts) or "all"

    def matches(self, finding: Finding) -> bool:
        if self.severity and not finding.severity.at_least(self.severity):
            return False
        if self.check_ids and finding.check_id.lower() not in self.check_ids:
            return False
        return not (self.account_ids and finding.account_id not in self.account_ids)


class BadFilter(ValueError):
    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


def known_check_ids(services: Services, book: SnapshotBook, catalog: Iterable[str] = ()) -> set[str]:
    """Check ids a filter may name: the catalog's and any in the latest snapshots."""
    ids = set(catalog)
    if book.snapshot_ids:
        marks = ",".join("?" * len(book.snapshot_ids))
        sql = f"SELECT DISTINCT check_id FROM findings WHERE snapshot_id IN ({marks})"  # noqa: S608
        ids |= {row[0] for row in services.store.execute(sql, book.snapshot_ids).fetchall()}
    return ids


def parse_findings_filter(
    words: list[str], book: SnapshotBook, known_check_ids: Iterable[str]
) -> FindingsFilter:
    """Each word is a severity, a check id or an account (id or name). Raises BadFilter."""
    checks = {c.lower() for c in known_check_ids}
    accounts = {s.account_id: s.account_id for s in book.snapshots}
    accounts.update({s.account_name.lower(): s.account_id for s in book.snapshots if s.account_name})
    result = FindingsFilter()
    for word in words:
        lower = word.lower()
        if lower in {s.value for s in Severity}:
            result.severity = Severity(lower)
        elif lower in checks:
            result.check_ids.add(lower)
        elif lower in accounts:
            result.account_ids.add(accounts[lower])
        elif re.fullmatch(r"\d{12}", word):
            result.account_ids.add(word)  # an account with no snapshot: an honest empty answer
        else:
            options = [s.value for s in Severity] + sorted(checks) + sorted(accounts)
            close = difflib.get_close_matches(lower, options, n=3, cutoff=0.5)
            raise BadFilter(f"`{word}` is not a severity, a check id or an account I know.", close)
    return result


@dataclass
class FindingsReport:
    filter: FindingsFilter
    findings: list[Finding]  # open, matching, most severe first
    suppressed: int
    snapshots: list[SnapshotInfo]
    next_scan: datetime | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(f.severity.value for f in self.findings if f.status == FindingStatus.FAIL)

    @property
    def unknown(self) -> int:
        return sum(1 for f in self.findings if f.status == FindingStatus.UNKNOWN)


def findings_report(
    services: Services, flt: FindingsFilter, *, book: SnapshotBook | None = None
) -> FindingsReport:
    book = book or current_book(services)
    every = [f for f in findings_of(services.store, book.snapshot_ids) if flt.matches(f)]
    open_findings = [f for f in every if not f.suppressed]
    return FindingsReport(
        filter=flt,
        findings=open_findings,
        suppressed=len(every) - len(open_findings),
        snapshots=book.snapshots,
        next_scan=None if book.snapshots else next_scan_at(services),
    )


CSV_COLUMNS = (
    "account_id",
    "severity",
    "status",
    "check_id",
    "principal_name",
    "principal_arn",
    "title",
    "detail",
    "remediation",
    "cis",
    "owner",
    "fingerprint",
)


def findings_csv(findings: Iterable[Finding]) -> str:
    """The findings as CSV (the findings JSON fields); cells that a spreadsheet would run as a
    formula are prefixed with ``'`` (IAM names and tags are attacker-controlled text)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for f in findings:
        data = f.public()
        writer.writerow([_csv_cell(";".join(data[c]) if c == "cis" else data.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- the Slack directory


def refresh_directory(services: Services, client: Any, *, page_size: int = 200) -> int:
    """Cache the workspace's members (``users.list``, paginated); returns how many.

    Kept for callers of the old name: the directory lives in ``bot.identity`` (and the refresh job,
    which also offboards members it finds deactivated, in ``handlers.directory``)."""
    from bot.identity import refresh_directory as refresh

    return refresh(services, client, page_size=page_size).stored


def directory_is_stale(services: Services) -> bool:
    from bot.identity import directory_is_stale as stale

    return stale(services)
