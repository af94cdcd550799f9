"""Pure Block Kit builders for the answers: a member's risks and keys, the findings report, a scan's
result and the member's part of the App Home. Domain objects (``bot.queries``) in, blocks out,
everything escaped inside; no client calls, no store access.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.findings import Finding, FindingStatus, Severity, is_open, open_count
from bot.identity import PrincipalRef
from bot.queries import AccessKeyInfo, FindingsReport, MemberKeys, MemberRisks, SnapshotInfo
from bot.scan import failure_text, summary_counts
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
from handlers.ids import ActionId

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


def finding_section(f: Finding) -> dict:
    """One finding in full: what, on which principal, why it matters, and the exact fix."""
    icon = SEVERITY_ICON[f.severity]
    status = " _(could not evaluate)_" if f.status == FindingStatus.UNKNOWN else ""
    who = f" on {code(f.principal_name)}" if f.principal_name else ""
    lines = [f"{icon} *{escape(f.title)}*{who} ({escape(f.account_id)}){_hops(f)}{status}"]
    if f.detail:
        lines.append(escape(f.detail))
    if f.risk:  # from the finding's check in the catalog (``Finding.risk``)
        lines.append(f"*Why it matters:* {escape(f.risk)}")
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


def with_suggestions(text: str, suggestions: list[str]) -> Message:
    hint = f" Did you mean {', '.join(code(s) for s in suggestions)}?" if suggestions else ""
    return Message(text=text + hint, blocks=[section(text + hint)])


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
