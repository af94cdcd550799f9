"""Answers to IAM questions in Slack: ``/iam whoami-risks``, ``keys``, ``findings``, ``risks``,
``can``, ``who-can``, ``scan`` and the member's part of the App Home.

Every answer comes from the latest stored snapshot (``bot.answers``), so personal answers go back
in the ack itself with no AWS call and no Web API call. Slow work (``who-can`` over every
principal, ``findings`` with its CSV file, a fresh ``scan``) is acked at once and answered through
``respond``. The builders below are pure: domain objects in, blocks out, everything escaped inside.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import answers
from bot.answers import (
    AccessKeyInfo,
    BadAction,
    BadFilter,
    FindingsReport,
    MemberKeys,
    MemberNotMapped,
    MemberRisks,
    PrincipalDecision,
    PrincipalNotFound,
    SnapshotInfo,
    WhoCan,
)
from bot.findings import Finding, FindingStatus, Severity, is_open, open_count
from bot.identity import PrincipalRef
from bot.services import Services
from handlers.background import ack_then
from handlers.blocks import (
    MAX_BLOCKS_VIEW,
    MAX_SECTION_TEXT,
    SEVERITY_ICON,
    Message,
    actions,
    button,
    code,
    context,
    divider,
    escape,
    header,
    section,
    truncate,
)
from handlers.commands import COMMANDS, CommandIO, subcommand
from handlers.home import HOME_SECTIONS
from handlers.ids import ActionId
from handlers.models import BlockAction, SlashCommand

log = logging.getLogger(__name__)

# Findings shown in full (why + fix) before the rest are listed one line each.
DETAILED_FINDINGS = 8
TOP_FINDINGS = 10
HOME_FINDINGS = 5


# --------------------------------------------------------------------------- small formatting


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "never"


def snapshot_line(snapshots: list[SnapshotInfo]) -> str:
    if not snapshots:
        return "No scan yet."
    parts = [f"{escape(s.label)} scanned {when(s.scanned_at)}" for s in snapshots[:5]]
    more = f" and {len(snapshots) - 5} more accounts" if len(snapshots) > 5 else ""
    return "From the latest scan: " + "; ".join(parts) + more + "."


def principal_label(ref: PrincipalRef, *, with_account: bool = True) -> str:
    account = f" in {escape(ref.account_id)}" if with_account else ""
    return f"{ref.kind} {code(ref.name)}{account}"


def counts_line(counts: dict[str, int]) -> str:
    parts = [
        f"{SEVERITY_ICON[s]} {counts.get(s.value, 0)} {s.value}" for s in Severity if counts.get(s.value)
    ]
    return "  ".join(parts) or "nothing open"


def _check(check_id: str) -> Any:
    from bot.checks.catalog import CHECKS

    return CHECKS.get(check_id)


def finding_section(f: Finding) -> dict:
    """One finding in full: what, on which principal, why it matters, and the exact fix."""
    icon = SEVERITY_ICON[f.severity]
    status = " _(could not evaluate)_" if f.status == FindingStatus.UNKNOWN else ""
    who = f" on {code(f.principal_name)}" if f.principal_name else ""
    lines = [f"{icon} *{escape(f.title)}*{who} ({escape(f.account_id)}){_hops(f)}{status}"]
    if f.detail:
        lines.append(escape(f.detail))
    meta = _check(f.check_id)
    if meta is not None and meta.risk:
        lines.append(f"*Why it matters:* {escape(meta.risk)}")
    if f.remediation:
        lines.append("*Fix:*\n" + _remediation(f.remediation))
    lines.append(f"_{escape(f.check_id)} · {escape(f.severity.value)}_")
    return section(truncate("\n".join(lines), MAX_SECTION_TEXT))


def _remediation(text: str) -> str:
    # "Console: …" and "CLI: …" lines; the CLI command goes in code so it can be copied as is.
    out = []
    for line in text.splitlines():
        if line.startswith("CLI: "):
            out.append("CLI: " + code(line[5:]))
        else:
            out.append(escape(line))
    return "\n".join(out)


def _hops(f: Finding) -> str:
    """`` · 2 hops`` for an escalation finding (its route's length), else nothing."""
    count = f.extra.get("hop_count")
    return f" · {count} hop{'' if count == 1 else 's'}" if isinstance(count, int) else ""


def finding_line(f: Finding) -> str:
    who = f" {code(f.principal_name)}" if f.principal_name else ""
    unknown = " (could not evaluate)" if f.status == FindingStatus.UNKNOWN else ""
    return f"{SEVERITY_ICON[f.severity]} {escape(f.title)}{who} ({escape(f.account_id)}){_hops(f)}{unknown}"


def finding_blocks(findings: list[Finding], *, detailed: int = DETAILED_FINDINGS) -> list[dict]:
    """The first ``detailed`` findings in full, the rest one line each in sections that fit."""
    blocks = [finding_section(f) for f in findings[:detailed]]
    rest = [finding_line(f) for f in findings[detailed:]]
    chunk: list[str] = []
    for line in rest:
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION_TEXT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return blocks


# --------------------------------------------------------------------------- builders: states


def no_snapshot_message(next_scan: datetime | None) -> Message:
    nxt = f"The next scheduled scan runs {when(next_scan)}." if next_scan else "No scan is scheduled."
    text = (
        f"There is no scan yet, so I have nothing to go on. {nxt} The security team can run `/iam scan` now."
    )
    return Message(text=text, blocks=[section(text)])


def unmapped_text(tag_key: str, *, who: str = "You are", email: str | None = None) -> str:
    """Says what the bot looked for (the member's Slack email, the tag key), so they can fix it."""
    if email:
        looked = (
            f"I looked for an IAM user tagged {code(tag_key)} = {code(email)} (the Slack email) in the "
            "latest scan and found none, and `[identity] map` does not name this member."
        )
        value = escape(email)
    else:
        looked = (
            f"Slack gave me no email address for this member (the directory may not be cached yet, or "
            f"the app lacks `users:read.email`), so no {code(tag_key)} tag can match, and "
            "`[identity] map` does not name them."
        )
        value = "you@example.com"
    return (
        f"{who} not linked to any IAM user or role yet. {looked} To get linked, tag the IAM user with "
        f"{code(tag_key)} = the Slack email address (`aws iam tag-user --user-name NAME --tags "
        f"Key={escape(tag_key)},Value={value}`), or ask the security team to add the member to "
        "`[identity] map` in the bot's config. A new tag is read by the next scan; a change in Slack "
        "or in `[identity] map` shows on the next answer, without a scan."
    )


def not_found_message(query: str, suggestions: list[str], what: str = "principal") -> Message:
    hint = f" Closest names: {', '.join(code(s) for s in suggestions)}." if suggestions else ""
    text = f"No {what} {code(query)} in the latest scan.{hint}"
    return Message(text=text, blocks=[section(text)])


def not_mapped_message(user_id: str, tag_key: str) -> Message:
    # Named by id in code, not as a mention: an answer must never ping the person asked about.
    text = unmapped_text(tag_key, who=f"Member {code(user_id)} is")
    return Message(text=text, blocks=[section(text)])


# --------------------------------------------------------------------------- builders: risks


def risks_message(risks: MemberRisks, *, title: str = "Your IAM risks", subject: str = "you") -> Message:
    """``/iam whoami-risks`` (and, with another title, ``/iam risks``)."""
    if risks.status == "no-snapshot":
        return no_snapshot_message(risks.next_scan)
    if risks.status == "unmapped":
        text = unmapped_text(risks.tag_key, email=risks.email)
        return Message(text=text, blocks=[header(title), section(text)])
    principals = ", ".join(principal_label(p) for p in risks.principals)
    if not risks.findings:
        text = f"Nothing to fix for {subject}: no open findings on {principals}."
        return Message(
            text=text,
            blocks=[
                header(title),
                section(":white_check_mark: " + text),
                context(snapshot_line(risks.snapshots)),
            ],
        )
    n = risks.open_count
    summary = f"{n} open finding{'s' if n != 1 else ''} on {principals}: {counts_line(risks.counts)}"
    summary += unknown_tail(risks.unknown)
    blocks = [header(title), section(summary), divider(), *finding_blocks(risks.findings)]
    blocks.append(context(snapshot_line(risks.snapshots)))
    fallback = f"{n} open IAM finding{'s' if n != 1 else ''} for {escape(subject)}: " + ", ".join(
        f"{c} {s}" for s, c in risks.counts.items()
    )
    return Message(text=fallback, blocks=blocks)


# --------------------------------------------------------------------------- builders: keys


def key_line(key: AccessKeyInfo, now: datetime, *, rotation_days: int, unused_days: int) -> str:
    age = key.age_days(now)
    status = "active" if key.active else "inactive"
    flags = []
    if key.active and age is not None and age > rotation_days:
        flags.append(f":warning: older than {rotation_days} days: rotate it")
    if key.last_used is None:
        used = "never used"
        if key.active:
            flags.append(":warning: active but never used: delete it if nothing needs it")
    else:
        where = ", ".join(escape(x) for x in (key.last_used_service, key.last_used_region) if x)
        used = f"last used {day(key.last_used)}" + (f" ({where})" if where else "")
        idle = key.unused_days(now)
        if key.active and idle is not None and idle > unused_days:
            flags.append(f":warning: unused for {idle} days: deactivate it")
    created = (
        f"created {day(key.last_rotated)} ({age} days ago)" if age is not None else "creation date unknown"
    )
    line = f"*{code(key.user_name)} key {key.slot}* ({escape(key.account_id)}): {status}, {created}, {used}"
    return line + ("\n" + "\n".join(flags) if flags else "")


def rotation_steps(user_name: str) -> str:
    u = user_name.replace("`", "'")
    return "\n".join(
        [
            "*How to rotate safely* (you may have two keys, so there is no gap):",
            f"1. Create the new key: {code(f'aws iam create-access-key --user-name {u}')}",
            "2. Put it where the old one was used (CI secrets, `~/.aws/credentials`), then check it works: "
            + code("aws sts get-caller-identity"),
            f"3. Deactivate the old key (reversible): {code(f'aws iam update-access-key --user-name {u} --access-key-id OLD_KEY_ID --status Inactive')}",
            "4. Wait a few days, watch that nothing breaks (its *last used* date stays put), then delete it: "
            + code(f"aws iam delete-access-key --user-name {u} --access-key-id OLD_KEY_ID"),
            f"Console: IAM → Users → {escape(u)} → Security credentials → Access keys. "
            f"`aws iam list-access-keys --user-name {escape(u)}` shows the key ids.",
        ]
    )


def keys_message(keys: MemberKeys, now: datetime) -> Message:
    """``/iam keys``: both key slots of each of the member's IAM users, from the credential report."""
    title = "Your access keys"
    if keys.status == "no-snapshot":
        return no_snapshot_message(keys.next_scan)
    if keys.status == "unmapped":
        text = unmapped_text(keys.tag_key, email=keys.email)
        return Message(text=text, blocks=[header(title), section(text)])
    if not keys.users:
        text = "You are linked only to roles, which have no long-lived access keys. Nothing to rotate."
        return Message(
            text=text, blocks=[header(title), section(text), context(snapshot_line(keys.snapshots))]
        )
    if not keys.keys:
        names = ", ".join(code(u.name) for u in keys.users)
        text = f"No access keys on {names}. Nothing to rotate."
        return Message(
            text=text,
            blocks=[
                header(title),
                section(":white_check_mark: " + text),
                context(snapshot_line(keys.snapshots)),
            ],
        )
    blocks = [header(title)]
    for key in keys.keys:
        blocks.append(
            section(key_line(key, now, rotation_days=keys.rotation_days, unused_days=keys.unused_days))
        )
    for user_name in dict.fromkeys(k.user_name for k in keys.keys):
        blocks.append(section(rotation_steps(user_name)))
    blocks.append(
        context(
            "The credential report has no key ids, so keys are shown by slot (key 1, key 2). "
            + snapshot_line(keys.snapshots)
        )
    )
    active = sum(1 for k in keys.keys if k.active)
    return Message(text=f"You have {len(keys.keys)} access key(s), {active} active.", blocks=blocks)


# --------------------------------------------------------------------------- builders: can / who-can


DECISION_ICON = {"allowed": ":white_check_mark:", "explicit-deny": ":no_entry:", "implicit-deny": ":x:"}


def decision_text(result: PrincipalDecision) -> str:
    ref = result.principal
    if result.error or result.decision is None:
        return f":grey_question: {principal_label(ref)}: could not evaluate, {escape(result.error or 'unknown error')}."
    d = result.decision
    if d.decision == "explicit-deny":
        head = f"{DECISION_ICON[d.decision]} {principal_label(ref)} *cannot*: explicitly denied by"
    elif d.decision == "implicit-deny":
        head = f"{DECISION_ICON[d.decision]} {principal_label(ref)} *cannot*: no statement allows it"
    else:
        head = f"{DECISION_ICON['allowed']} {principal_label(ref)} *can*" + (
            ", under conditions I could not evaluate," if d.conditional else ""
        )
        head += " through"
    lines = [head]
    lines += [f"• {escape(s.describe())}" for s in d.deciding[:10]]
    if len(d.deciding) > 10:
        lines.append(f"• and {len(d.deciding) - 10} more statements")
    for s in getattr(d, "conditional_denies", [])[:5]:
        lines.append(f"• a Deny may apply, depending on its conditions: {escape(s.describe())}")
    for s in getattr(d, "partial_denies", [])[:5]:
        lines.append(f"• a narrower Deny covers some resources: {escape(s.describe())}")
    for note in getattr(d, "notes", [])[:3]:
        lines.append(f"_{escape(note)}_")
    relevant = relevant_unknowns(d.unknown, d.action)
    if relevant:
        lines.append("_Could not resolve: " + escape(", ".join(relevant[:5])) + "_")
    return truncate("\n".join(lines), MAX_SECTION_TEXT)


def relevant_unknowns(unknown: list[str], action: str) -> list[str]:
    """Unresolvable patterns that could bear on ``action``: its own service's, or a bare wildcard.
    (``codestar:Get*`` in ReadOnlyAccess cannot change whether ``iam:CreateUser`` is allowed.)"""
    service = action.split(":", 1)[0].lower()
    return [u for u in unknown if ":" not in u or u.split(":", 1)[0].lower() in (service, "*")]


SCOPE_NOTE = (
    "Identity policies only (inline, managed, group, permissions boundary), from the latest scan; "
    "resource policies, SCPs and trust policies are not considered."
)


def can_message(
    query: str, action: str, resource: str, results: list[PrincipalDecision], snapshots: list[SnapshotInfo]
) -> Message:
    on = f" on {code(resource)}" if resource != "*" else ""
    blocks = [section(f"*Can {code(query)} call {code(action)}{on}?*")]
    blocks += [section(decision_text(r)) for r in results[:40]]
    if len(results) > 40:
        blocks.append(
            context(f"{len(results) - 40} more principals not shown; ask about one of them by ARN.")
        )
    blocks.append(context(SCOPE_NOTE + " " + snapshot_line(snapshots)))
    verdicts = {r.principal.name: (r.decision.decision if r.decision else "unknown") for r in results}
    fallback = escape(f"{action}{' on ' + resource if resource != '*' else ''}: ") + ", ".join(
        f"{escape(n)} {v}" for n, v in verdicts.items()
    )
    return Message(text=fallback, blocks=blocks)


def who_can_message(result: WhoCan) -> Message:
    on = f" on {code(result.resource)}" if result.resource != "*" else ""
    n = len(result.allowed)
    head = f"*Who can call {code(result.action)}{on}?* {n} of {result.evaluated} users and roles."
    blocks = [section(head)]
    lines = []
    for r in result.allowed:
        d = r.decision
        through = "; ".join(escape(s.describe()) for s in d.deciding[:3])
        more = f" (+{len(d.deciding) - 3})" if len(d.deciding) > 3 else ""
        cond = " _(conditional)_" if d.conditional else ""
        lines.append(f"• {principal_label(r.principal)}{cond}: {through}{more}")
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION_TEXT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(truncate(line, 600))
    if chunk:
        blocks.append(section("\n".join(chunk)))
    if result.errors:
        names = ", ".join(code(e.principal.name) for e in result.errors[:10])
        blocks.append(
            section(f":grey_question: Could not evaluate {len(result.errors)} principal(s): {names}.")
        )
    if not n and not result.errors:
        blocks.append(section("Nobody: no user or role in the latest scan is allowed this."))
    blocks.append(context(SCOPE_NOTE + " " + snapshot_line(result.snapshots)))
    fallback = escape(f"{n} principal(s) can call {result.action}" + (f" on {result.resource}" if on else ""))
    return Message(text=fallback, blocks=blocks)


# --------------------------------------------------------------------------- builders: findings, scan


def findings_message(report: FindingsReport, *, file_note: str | None) -> Message:
    flt = report.filter.describe()
    failing = [f for f in report.findings if is_open(f)]
    total = open_count(report.findings)  # the same count the scan reports
    title = "IAM findings" + (f" ({flt})" if flt != "all" else "")
    if not report.snapshots:
        return no_snapshot_message(report.next_scan)
    if not total and not report.unknown:
        text = f"No open findings ({escape(flt)})."
        if report.suppressed:
            text += f" {report.suppressed} suppressed."
        return Message(
            text=text,
            blocks=[
                header(title),
                section(":white_check_mark: " + text),
                context(snapshot_line(report.snapshots)),
            ],
        )
    summary = f"*{total} open finding{'s' if total != 1 else ''}*: {counts_line(report.counts)}"
    if report.unknown:
        summary += f"\n:grey_question: {report.unknown} check(s) could not evaluate; they are not passes."
    if report.suppressed:
        summary += f"\n{report.suppressed} suppressed finding(s) not counted."
    by_check: dict[str, int] = {}
    for f in report.findings:
        by_check[f.check_id] = by_check.get(f.check_id, 0) + 1
    top_checks = sorted(by_check.items(), key=lambda kv: -kv[1])[:10]
    summary += "\n*By check:* " + ", ".join(f"{code(c)} {n}" for c, n in top_checks)
    if len(by_check) > 10:
        summary += f" and {len(by_check) - 10} more checks"
    # A check that could not run is never ranked as a finding: it is listed apart, as such.
    top = failing[:TOP_FINDINGS]
    unknown = [f for f in report.findings if f.status == FindingStatus.UNKNOWN]
    blocks = [header(title), section(summary), divider()]
    if top:
        blocks.append(section(f"*Top {len(top)}:*\n" + "\n".join(finding_line(f) for f in top)))
    if unknown:
        shown = unknown[:TOP_FINDINGS]
        more = f"\n… and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else ""
        blocks.append(
            section(
                "*Could not evaluate:*\n"
                + "\n".join(
                    f":grey_question: {code(f.check_id)} {escape(f.title)} ({escape(f.account_id)})"
                    for f in shown
                )
                + more
            )
        )
    if file_note:
        blocks.append(section(file_note))
    blocks.append(context(snapshot_line(report.snapshots)))
    return Message(text=escape(f"{total} open IAM findings ({flt})"), blocks=blocks)


def _scanned_account(scan: Any) -> str:
    """The account a scan result is about, as the member knows it (never "?")."""
    if scan.name and scan.account_id:
        return f"{scan.name} ({scan.account_id})"
    # No id: the scan failed before AWS said which account the bot's credentials belong to.
    return scan.name or scan.account_id or "the bot's own AWS account"


def scan_result_message(scans: list[Any]) -> Message:
    """``/iam scan`` finished: per account (``bot.scan.AccountScan``), what was found or what failed.
    A scan that failed says so first, naming the account, never "0 open findings"."""
    from bot.scan import failure_text, summary_counts

    lines = []
    total = 0
    failed = [_scanned_account(scan) for scan in scans if scan.error]
    for scan in scans:
        account = escape(_scanned_account(scan))
        if scan.error:
            lines.append(f":x: {account}: could not be scanned: {escape(failure_text(scan))}")
            continue
        counts = summary_counts(scan.findings)
        n = open_count(scan.findings)
        total += n
        tail = ""
        if counts["unknown"]:
            tail += f", {counts['unknown']} check(s) could not evaluate"
        if counts["suppressed"]:
            tail += f", {counts['suppressed']} suppressed"
        lines.append(
            f":white_check_mark: {account}: {n} open findings ({counts_line(counts)}){tail}, "
            f"{scan.api_calls} AWS API calls"
        )
    if not lines:
        lines.append("No accounts are configured to scan.")
    if failed and len(failed) == len(scans):
        headline = f"Scan failed: {', '.join(failed)} could not be scanned."
    elif failed:
        headline = (
            f"Scan finished with failures: {', '.join(failed)} could not be scanned; "
            f"{total} open findings in the others."
        )
    else:
        headline = f"Scan finished: {total} open findings in all."
    title = headline.split(":", 1)[0]
    body = truncate(f"*{title}.*\n" + "\n".join(lines), MAX_SECTION_TEXT)
    blocks = [section(body), context("`/iam findings` shows the details.")]
    return Message(text=truncate(escape(headline), MAX_SECTION_TEXT), blocks=blocks)


# --------------------------------------------------------------------------- delivering files


def send_file_to_dm(
    io: CommandIO, user_id: str, *, filename: str, content: str, title: str, comment: str
) -> str | None:
    """Upload a file into the member's DM with the bot (never a shared channel: findings are
    sensitive). Returns None on success, else Slack's error name."""
    try:
        dm = io.client.conversations_open(users=user_id)["channel"]["id"]
        io.client.files_upload_v2(
            channel=dm, content=content, filename=filename, title=title, initial_comment=comment
        )
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        log.warning("could not send %s to %s: %s", filename, user_id, error)
        return str(error)
    return None


def deliver(message: Message, io: CommandIO, user_id: str, *, filename: str) -> Message:
    """The message within Slack's limits; what did not fit is sent as a file to the member's DM
    and the message says so (or says the file could not be sent): never cut silently."""
    checked = message.checked(overflow_name=filename)
    if checked.attachment is None:
        return checked
    error = send_file_to_dm(
        io,
        user_id,
        filename=checked.attachment.filename,
        content=checked.attachment.content,
        title=checked.attachment.title or filename,
        comment="The rest of the answer that did not fit in one message.",
    )
    note = (
        "More did not fit in this message: I sent the rest to you as a file in our DM."
        if error is None
        else f"More did not fit in this message, and sending it as a file failed ({escape(error)}). Ask with a narrower question."
    )
    checked.blocks[-1] = context(note)
    return checked


# --------------------------------------------------------------------------- subcommands


def _usage(name: str, problem: str | None = None) -> Message:
    sub = COMMANDS.get(name)
    assert sub is not None
    return sub.usage_message(problem)


def _with_suggestions(text: str, suggestions: list[str]) -> Message:
    hint = f" Did you mean {', '.join(code(s) for s in suggestions)}?" if suggestions else ""
    return Message(text=text + hint, blocks=[section(text + hint)])


@subcommand("whoami-risks", summary="Your own IAM findings, most severe first, with the exact fix.")
def whoami_risks(cmd: SlashCommand, io: CommandIO) -> Message:
    if cmd.args:
        return _usage("whoami-risks", "This command takes no arguments.")
    risks = answers.member_risks(io.services, cmd.user_id)
    return deliver(risks_message(risks), io, cmd.user_id, filename="my-iam-risks.txt")


@subcommand("keys", summary="Your access keys: status, age, last use, and how to rotate them.")
def my_keys(cmd: SlashCommand, io: CommandIO) -> Message:
    if cmd.args:
        return _usage("keys", "This command takes no arguments.")
    keys = answers.member_keys(io.services, cmd.user_id)
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
    from bot.checks.catalog import CHECKS

    book = answers.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(answers.next_scan_at(io.services))
    try:
        flt = answers.parse_findings_filter(
            cmd.args, book, answers.known_check_ids(io.services, book, CHECKS)
        )
    except BadFilter as exc:
        usage = _usage("findings", str(exc))
        return _with_suggestions(usage.text, exc.suggestions) if exc.suggestions else usage
    report = answers.findings_report(io.services, flt, book=book)
    file_note = None
    if len(report.findings) > TOP_FINDINGS:
        stamp = io.services.clock.now().strftime("%Y%m%d-%H%M")
        filename = f"iamwarden-findings-{stamp}.csv"
        error = send_file_to_dm(
            io,
            cmd.user_id,
            filename=filename,
            content=answers.findings_csv(report.findings),
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


def _resolve(book, query: str, io: CommandIO):  # noqa: ANN001, ANN202 - answers' own types
    """The principals a typed name, ARN or @member means, or the message saying why there are none."""
    try:
        return answers.resolve_principal(book, query)
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
    book = answers.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(answers.next_scan_at(io.services))
    refs = _resolve(book, target, io)
    if isinstance(refs, Message):
        return refs
    findings = answers.principal_findings(io.services, book, refs)
    risks = MemberRisks(
        user_id=cmd.user_id, status="ok", principals=refs, findings=findings, snapshots=book.snapshots
    )
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
        action = answers.check_action(action)
    except BadAction as exc:
        return _with_suggestions(str(exc), exc.suggestions)
    book = answers.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(answers.next_scan_at(io.services))
    refs = _resolve(book, who, io)
    if isinstance(refs, Message):
        return refs
    results = answers.can(book, refs, action, resource)
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
        action = answers.check_action(action)
    except BadAction as exc:
        return _with_suggestions(str(exc), exc.suggestions)
    book = answers.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(answers.next_scan_at(io.services))
    result = answers.who_can(book, action, resource)
    return deliver(who_can_message(result), io, cmd.user_id, filename="who-can.txt")


# --------------------------------------------------------------------------- builders: paths

PATHS_SHOWN = 10  # routes shown in full; more go to the DM file by ``deliver``
ESCALATION_CHECK = "PRIVILEGE_ESCALATION"


def _short(arn: str) -> str:
    """``arn:aws:iam::1:role/path/name`` → ``role/name`` (what a person recognises)."""
    resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else arn
    kind, _, rest = resource.partition("/")
    return f"{kind}/{rest.rsplit('/', 1)[-1]}" if rest else resource


def hop_line(index: int, hop: dict[str, Any]) -> str:
    """One hop of a route, escaped: who → whom, how, and the statements that allow it."""
    actions = ", ".join(hop.get("actions") or [])
    via = "; ".join(hop.get("statements") or []) or "the target's trust policy"
    line = (
        f"{index}. {code(_short(hop.get('from', '')))} → {code(_short(hop.get('to', '')))}: "
        f"{escape(hop.get('title', ''))} ({escape(actions)}), allowed by {escape(via)}"
    )
    if hop.get("note"):
        line += f" _({escape(hop['note'])})_"
    if hop.get("conditional"):
        keys = ", ".join(hop.get("condition_keys") or [])
        line += " · under conditions" + (f": {escape(keys)}" if keys else "")
    if hop.get("possible_denies"):
        line += " · a Deny may apply: " + escape("; ".join(hop["possible_denies"]))
    return line


def route_section(f: Finding) -> dict:
    """One escalation route in full: hop count, where it ends, each hop with its statement."""
    hops = f.extra.get("hops") or []
    count = f.extra.get("hop_count", len(hops))
    plural = "hop" if count == 1 else "hops"
    cond = " _(under conditions we could not evaluate)_" if f.extra.get("conditional") else ""
    admin = f.extra.get("admin") or ""
    head = (
        f"*{count} {plural}* to administrator {code(_short(admin))}{cond}" if admin else f"*{count} {plural}*"
    )
    lines = [head, *(hop_line(i, h) for i, h in enumerate(hops, 1))]
    return section(truncate("\n".join(lines), MAX_SECTION_TEXT))


def paths_message(
    principals: list[PrincipalRef], findings: list[Finding], snapshots: list[SnapshotInfo]
) -> Message:
    """``/iam paths PRINCIPAL``: the principal's escalation routes as in its findings, shortest first."""
    names = ", ".join(dict.fromkeys(p.name for p in principals))
    title = truncate(f"Escalation paths of {names}", 140)
    labels = ", ".join(principal_label(p) for p in principals)
    routes = sorted(
        (f for f in findings if f.check_id == ESCALATION_CHECK and f.status == FindingStatus.FAIL),
        key=lambda f: (f.extra.get("hop_count", 99), f.detail_key),
    )
    unknown = [f for f in findings if f.check_id == ESCALATION_CHECK and f.status == FindingStatus.UNKNOWN]
    blocks: list[dict] = [header(title)]
    if routes:
        shortest = routes[0].extra.get("hop_count", "?")
        text = (
            f"{len(routes)} way(s) for {names} to become administrator; the shortest takes {shortest} hop(s)."
        )
        blocks.append(
            section(
                f"{labels} can become administrator: {len(routes)} way(s), the shortest in {shortest} hop(s)."
            )
        )
        blocks.extend(route_section(f) for f in routes)
    elif unknown:
        text = f"Could not evaluate the escalation paths of {names}."
        blocks.append(section(f"I could not evaluate the escalation paths of {labels}:"))
    else:
        text = f"No escalation path for {names} in the latest scan."
        blocks.append(section(f"No escalation path for {labels} in the latest scan."))
    for f in unknown:
        blocks.append(section(truncate(escape(f.detail), MAX_SECTION_TEXT)))
    blocks.append(context(snapshot_line(snapshots)))
    return Message(text=text, blocks=blocks)


@subcommand(
    "paths",
    usage="paths @MEMBER|IAM-USER|ROLE-ARN",
    summary="How a user or role could become administrator: each escalation path, hop by hop.",
    team_only=True,
)
def escalation_paths(cmd: SlashCommand, io: CommandIO) -> Message:
    if len(cmd.args) != 1:
        return _usage("paths")
    book = answers.current_book(io.services)
    if not book.snapshots:
        return no_snapshot_message(answers.next_scan_at(io.services))
    refs = _resolve(book, cmd.args[0], io)
    if isinstance(refs, Message):
        return refs
    findings = answers.principal_findings(io.services, book, refs)
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
    from bot.scan import scan_accounts

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


# --------------------------------------------------------------------------- App Home


def unknown_tail(unknown: int) -> str:
    """How many checks could not evaluate, said beside (never inside) the open count."""
    return f"; {unknown} check{'s' if unknown != 1 else ''} could not evaluate" if unknown else ""


def home_blocks(risks: MemberRisks, keys: MemberKeys, now: datetime) -> list[dict]:
    """The member's risks and keys for the App Home, with buttons for the next steps."""
    blocks: list[dict] = [header("Your IAM risks")]
    if risks.status == "no-snapshot":
        return blocks + no_snapshot_message(risks.next_scan).blocks
    if risks.status == "unmapped":
        return blocks + [section(unmapped_text(risks.tag_key, email=risks.email))]
    if not risks.findings:
        blocks.append(
            section(":white_check_mark: Nothing to fix: no open findings on your IAM users and roles.")
        )
    else:
        n = risks.open_count
        summary = f"{n} open finding{'s' if n != 1 else ''}: {counts_line(risks.counts)}"
        blocks.append(section(summary + unknown_tail(risks.unknown)))
        lines = [finding_line(f) for f in risks.findings[:HOME_FINDINGS]]
        if len(risks.findings) > HOME_FINDINGS:
            lines.append(f"…and {len(risks.findings) - HOME_FINDINGS} more.")
        blocks.append(section("\n".join(lines)))
    blocks.append(header("Your access keys"))
    if keys.keys:
        lines = [
            key_line(k, now, rotation_days=keys.rotation_days, unused_days=keys.unused_days)
            for k in keys.keys[:6]
        ]
        blocks.append(section(truncate("\n".join(lines), MAX_SECTION_TEXT)))
    else:
        blocks.append(section("No access keys. Nothing to rotate."))
    buttons = []
    if risks.findings:
        buttons.append(
            button("See my risks and fixes", ActionId.QUERIES_SHOW_RISKS, "risks", style="primary")
        )
    if keys.keys:
        buttons.append(button("How to rotate my keys", ActionId.QUERIES_SHOW_KEYS, "keys"))
    if buttons:
        blocks.append(actions(*buttons))
    blocks.append(context(snapshot_line(risks.snapshots)))
    return blocks


def home_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    book = answers.current_book(services)
    return home_blocks(
        answers.member_risks(services, user_id, book=book),
        answers.member_keys(services, user_id, book=book),
        services.clock.now(),
    )


def modal(title: str, message: Message) -> dict:
    checked = message.checked(max_blocks=MAX_BLOCKS_VIEW)
    blocks = checked.blocks
    if checked.attachment is not None:
        blocks[-1] = context("More did not fit here: type `/iam whoami-risks` for the full list.")
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": truncate(title, 24)},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
    }


def _open_modal(client: WebClient, trigger_id: str, view: dict) -> None:
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:  # an expired trigger: nothing else to do but log it
        log.warning(
            "could not open the modal: %s", exc.response.get("error") if exc.response is not None else exc
        )


def register(app: App, services: Services) -> None:
    """The App Home section and its buttons (the subcommands register themselves on import)."""
    if home_section not in HOME_SECTIONS:
        HOME_SECTIONS.append(home_section)

    @app.action(ActionId.QUERIES_SHOW_RISKS.value)
    @ack_then(services)
    def on_show_risks(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        # Always the clicking member's own answer: the button's value is never trusted.
        risks = answers.member_risks(services, action.user.id)
        _open_modal(client, action.trigger_id, modal("Your IAM risks", risks_message(risks)))

    @app.action(ActionId.QUERIES_SHOW_KEYS.value)
    @ack_then(services)
    def on_show_keys(body: dict, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        keys = answers.member_keys(services, action.user.id)
        _open_modal(
            client, action.trigger_id, modal("Your access keys", keys_message(keys, services.clock.now()))
        )


# --------------------------------------------------------------------------- the demo's tour


def demo_tour(s: Any) -> None:
    """The demo (``bot.demo.TOUR``): Ada's own risks, Carlos's keys, ``can`` and ``who-can``."""
    from bot.findings import latest_snapshots
    from bot.identity import directory_refreshed_at

    s.say("\nAsking the bot: every answer comes from the latest scan, in the ack, with no AWS call.")
    if directory_refreshed_at(s.services.store) is None:
        from handlers.identity import refresh_directory

        count = refresh_directory(s.services, s.app.client)
        s.say(f"  (the directory job cached {count} Slack members with users.list)")
    if not latest_snapshots(s.services.store):
        done = len(s.slack.calls_to("response_url")) + 1
        s.command("/iam scan", user="U0SAM")
        s.slack.wait_for("response_url", count=done, timeout=180)  # the scan answers after the ack
        s.settle()
    s.command("/iam whoami-risks", user="U0ADA")
    s.command("/iam keys", user="U0CARLOS")
    s.command("/iam can carlos iam:PassRole", user="U0ADA")
    s.command("/iam can bob iam:CreateUser", user="U0ADA")
    s.command("/iam who-can iam:CreateUser", user="U0ADA")
    s.command("/iam findings critical", user="U0ADA")  # not on the security team: refused politely
