"""The ``/iam`` subcommands that answer questions: ``whoami-risks``, ``keys``, ``findings``, ``risks``,
``can``, ``who-can``, ``paths`` and ``scan``. Each translates: the typed words -> one question to
``bot.queries`` -> the view of its answer. They register with the ``/iam`` command on import.

Personal answers go back in the ack itself, with no AWS call and no Web API call; slow ones
(``who-can`` over every principal, ``findings`` with its CSV file, a fresh ``scan``) are acked at once
and answered through ``respond`` (``slow=True``).
"""

from __future__ import annotations

import threading

from bot import queries
from bot.identity import PrincipalRef
from bot.queries import BadAction, BadFilter, MemberNotMapped, PrincipalNotFound, SnapshotBook
from bot.scan import scan_accounts
from bot.services import Services
from handlers.blocks import Message, code, escape, section, truncate
from handlers.commands import COMMANDS, CommandIO, subcommand
from handlers.models import SlashCommand
from handlers.queries.delivery import deliver, send_file_to_dm
from handlers.queries.policy_views import can_message, paths_message, who_can_message
from handlers.queries.views import (
    TOP_FINDINGS,
    findings_message,
    keys_message,
    no_snapshot_message,
    not_found_message,
    not_mapped_message,
    risks_message,
    scan_result_message,
    with_suggestions,
)


def _usage(name: str, problem: str | None = None) -> Message:
    sub = COMMANDS.get(name)
    assert sub is not None
    return sub.usage_message(problem)


@subcommand("whoami-risks", summary="Your own IAM findings, most severe first, with the exact fix.")
def whoami_risks(cmd: SlashCommand, io: CommandIO) -> Message:
    if cmd.args:
        return _usage("whoami-risks", "This command takes no arguments.")
    risks = queries.member_risks(io.services, cmd.user_id)
    return deliver(risks_message(risks), io, cmd.user_id, filename="my-iam-risks.txt")


@subcommand("keys", summary="Your access keys: status, age, last use, and how to rotate them.")
def my_keys(cmd: SlashCommand, io: CommandIO) -> Message:
    if cmd.args:
        return _usage("keys", "This command takes no arguments.")
    keys = queries.member_keys(io.services, cmd.user_id)
    return deliver(
        keys_message(keys, io.services.clock.now()), io, cmd.user_id, filename="my-access-keys.txt"
    )


@subcommand(
    "findings",
    usage="findings [SEVERITY|CHECK-ID|ACCOUNT]",
    summary="Open findings: counts, the top ones, and the full list as a CSV file.",
    team_only=True,
    slow=True,
    working_text="Gathering the findings…",
)
def all_findings(cmd: SlashCommand, io: CommandIO) -> Message:
    book = queries.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(queries.next_scan_at(io.services))
    try:
        flt = queries.parse_findings_filter(cmd.args, book, queries.known_check_ids(io.services, book))
    except BadFilter as exc:
        usage = _usage("findings", str(exc))
        return with_suggestions(usage.text, exc.suggestions) if exc.suggestions else usage
    report = queries.findings_report(io.services, flt, book=book)
    file_note = None
    if len(report.findings) > TOP_FINDINGS:
        stamp = io.services.clock.now().strftime("%Y%m%d-%H%M")
        filename = f"iamwarden-findings-{stamp}.csv"
        error = send_file_to_dm(
            io,
            cmd.user_id,
            filename=filename,
            content=queries.findings_csv(report.findings),
            title=f"IAM findings ({report.filter.describe()})",
            comment=f"All {len(report.findings)} open findings ({report.filter.describe()}).",
        )
        file_note = (
            f"All {len(report.findings)} are in {code(filename)}, sent to you in our DM."
            if error is None
            else f"Only the top {TOP_FINDINGS} are shown: sending the full CSV failed ({escape(error)}). "
            "Narrow the list with a severity, check id or account."
        )
    return findings_message(report, file_note=file_note)


def _resolve(book: SnapshotBook, query: str, io: CommandIO) -> list[PrincipalRef] | Message:
    """The principals a typed name, ARN or @member means, or the message saying why there are none."""
    try:
        return queries.resolve_principal(book, query)
    except PrincipalNotFound as exc:
        return not_found_message(exc.query, exc.suggestions)
    except MemberNotMapped as exc:
        return not_mapped_message(exc.user_id, io.services.config.identity.tag_key)


@subcommand(
    "risks",
    usage="risks @MEMBER|IAM-USER|ROLE-ARN",
    summary="Another member's or principal's findings.",
    team_only=True,
)
def someone_risks(cmd: SlashCommand, io: CommandIO) -> Message:
    if len(cmd.args) != 1:
        return _usage("risks")
    target = cmd.args[0]
    book = queries.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(queries.next_scan_at(io.services))
    refs = _resolve(book, target, io)
    if isinstance(refs, Message):
        return refs
    risks = queries.principal_risks(io.services, book, refs, asked_by=cmd.user_id)
    # Named from the snapshot, not from what was typed (a header is plain text: nothing to escape).
    names = ", ".join(dict.fromkeys(r.name for r in refs))
    message = risks_message(risks, title=truncate(f"IAM risks of {names}", 140), subject=names)
    return deliver(message, io, cmd.user_id, filename="iam-risks.txt")


@subcommand(
    "can",
    usage="can PRINCIPAL ACTION [RESOURCE]",
    summary="Can this user, role or member call an action? Evaluated offline, with the deciding statement.",
)
def can_call(cmd: SlashCommand, io: CommandIO) -> Message:
    if len(cmd.args) not in (2, 3):
        return _usage("can")
    who, action = cmd.args[0], cmd.args[1]
    resource = cmd.args[2] if len(cmd.args) == 3 else "*"
    try:
        action = queries.check_action(action)
    except BadAction as exc:
        return with_suggestions(str(exc), exc.suggestions)
    book = queries.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(queries.next_scan_at(io.services))
    refs = _resolve(book, who, io)
    if isinstance(refs, Message):
        return refs
    results = queries.can(book, refs, action, resource)
    return deliver(
        can_message(who, action, resource, results, book.snapshots), io, cmd.user_id, filename="can.txt"
    )


@subcommand(
    "who-can",
    usage="who-can ACTION [RESOURCE]",
    summary="Which users and roles can call an action, and through which policy.",
    slow=True,
    working_text="Checking every user and role in the latest scan…",
)
def who_can_call(cmd: SlashCommand, io: CommandIO) -> Message:
    if len(cmd.args) not in (1, 2):
        return _usage("who-can")
    action = cmd.args[0]
    resource = cmd.args[1] if len(cmd.args) == 2 else "*"
    try:
        action = queries.check_action(action)
    except BadAction as exc:
        return with_suggestions(str(exc), exc.suggestions)
    book = queries.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(queries.next_scan_at(io.services))
    result = queries.who_can(book, action, resource)
    return deliver(who_can_message(result), io, cmd.user_id, filename="who-can.txt")


@subcommand(
    "paths",
    usage="paths @MEMBER|IAM-USER|ROLE-ARN",
    summary="How a user or role could become administrator: each escalation path, hop by hop.",
    team_only=True,
)
def escalation_paths(cmd: SlashCommand, io: CommandIO) -> Message:
    if len(cmd.args) != 1:
        return _usage("paths")
    book = queries.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(queries.next_scan_at(io.services))
    refs = _resolve(book, cmd.args[0], io)
    if isinstance(refs, Message):
        return refs
    findings = queries.principal_findings(io.services, book, refs)
    return deliver(
        paths_message(refs, findings, book.snapshots), io, cmd.user_id, filename="escalation-paths.txt"
    )


_SCAN_LOCKS: dict[int, threading.Lock] = {}
_SCAN_LOCKS_GUARD = threading.Lock()


def _scan_lock(services: Services) -> threading.Lock:
    with _SCAN_LOCKS_GUARD:
        return _SCAN_LOCKS.setdefault(id(services), threading.Lock())


@subcommand(
    "scan",
    summary="Scan the AWS accounts now; the result is posted here when done.",
    team_only=True,
    slow=True,
    working_text="Starting a scan of the AWS accounts…",
)
def scan_now(cmd: SlashCommand, io: CommandIO) -> Message:
    if cmd.args:
        return _usage("scan", "This command takes no arguments; nothing was started.")
    lock = _scan_lock(io.services)
    if not lock.acquire(blocking=False):
        text = "A scan is already running; its result will be posted when it finishes."
        return Message(text=text, blocks=[section(text)])
    try:
        io.services.store.audit("scan.requested", actor=cmd.user_id, at=io.services.clock.now())
        scans = scan_accounts(io.services, directory=io.client)  # a stale directory is refreshed first
    finally:
        lock.release()
    return scan_result_message(scans)
