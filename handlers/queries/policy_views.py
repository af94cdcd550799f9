"""Pure Block Kit builders for policy questions: ``can``, ``who-can`` and the escalation ``paths``.
Domain objects in, blocks out, everything escaped inside.
"""

from __future__ import annotations

from typing import Any

from bot.findings import Finding, FindingStatus
from bot.identity import PrincipalRef
from bot.queries import PrincipalDecision, SnapshotInfo, WhoCan
from handlers.blocks import MAX_SECTION_TEXT, Message, code, context, escape, header, section, truncate
from handlers.queries.views import principal_label, snapshot_line

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
