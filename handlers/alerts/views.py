"""Alert views: pure Block Kit builders over stored alerts and rules (escaping inside)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot import alerts as alert_store
from bot.alerts import Alert, Rule
from handlers.blocks import (
    SEVERITY_ICON,
    Message,
    actions,
    button,
    code,
    confirm_dialog,
    context,
    escape,
    fields_section,
    header,
    mention,
    section,
    truncate,
)
from handlers.digest import disable_access_button
from handlers.ids import ActionId


def when(stamp: str | None) -> str:
    if not stamp:
        return "—"
    moment = datetime.fromisoformat(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_message(alert: Alert) -> Message:
    """The channel message for one alert: what, who, when, where, JIT request, status and buttons."""
    sev = alert.severity
    title = f"{SEVERITY_ICON.get(sev, '')} {sev.value.upper()}: {alert.title}".strip()
    who = code(alert.principal_arn or alert.principal_name or "unknown")
    if alert.principal_type:
        who += f" ({escape(alert.principal_type)})"
    what = f"{code(alert.event_name)}"
    if alert.event_source:
        what += f" on {escape(alert.event_source)}"
    pairs: list[tuple[str, str]] = [
        ("What", what),
        ("Who", who),
        ("Slack member", mention(alert.owner) if alert.owner else "_not mapped_"),
        ("Source IP", code(alert.source_ip) if alert.source_ip else "—"),
        ("User agent", escape(truncate(alert.user_agent or "—", 300))),
        ("When", when(alert.first_seen)),
        ("Account", code(alert.account_id or "unknown")),
        ("Region", escape(alert.region or "—")),
    ]
    if alert.jit_request_id:
        requester = f" by {mention(alert.jit_requester)}" if alert.jit_requester else ""
        pairs.append(("JIT request", f"{code(alert.jit_request_id)}{requester}"))
    blocks: list[dict] = [header(title), fields_section(pairs)]
    details = [
        f"{escape(k.replace('_', ' '))}: {code(v)}"
        for k, v in alert.context.items()
        if k not in ("severity",) and v not in (None, "")
    ]
    if details:
        blocks.append(context(truncate(" · ".join(details), 2900)))
    seen = f"seen {alert.count} times, last at {when(alert.last_seen)}" if alert.count > 1 else "seen once"
    blocks.append(context(f"Rule {code(alert.rule_id)} · severity {sev.value} · {seen} · alert #{alert.id}"))
    status = _status_lines(alert)
    if status:
        blocks.append(section("\n".join(status)))
    buttons = []
    if alert.state == "open":
        buttons.append(button("Acknowledge", ActionId.ALERT_ACKNOWLEDGE, str(alert.id), style="primary"))
    if not alert.actor_status:
        buttons.append(
            button(
                "Ask the actor",
                ActionId.ALERT_ASK_ACTOR,
                str(alert.id),
                confirm=confirm_dialog(
                    "Ask the actor?",
                    "I will DM the mapped Slack member and ask whether they did this.",
                    confirm="Ask",
                ),
            )
        )
    quarantined_user = quarantined_user_of(alert)
    if quarantined_user:
        buttons.append(
            disable_access_button(
                ActionId.ALERT_DISABLE_ACCESS,
                str(alert.id),
                user_name=quarantined_user,
                account_id=alert.account_id,
            )
        )
    if buttons:
        blocks.append(actions(*buttons))
    where = f"account {alert.account_id}" + (f", {alert.region}" if alert.region else "")
    text = f"[{sev.value.upper()}] {escape(alert.title)} ({escape(where)})"
    if alert.count > 1:
        text += f" ×{alert.count}"
    return Message(text=text, blocks=blocks, ephemeral=False)


def quarantined_user_of(alert: Alert) -> str | None:
    """The IAM user whose exposed key AWS quarantined (KEY_QUARANTINED alerts), for Disable access."""
    if alert.rule_id != alert_store.KEY_QUARANTINED:
        return None
    user = alert.context.get("user")
    return str(user) if user else None


def _status_lines(alert: Alert) -> list[str]:
    lines: list[str] = []
    if alert.state == "acknowledged" and alert.acknowledged_by:
        lines.append(
            f":white_check_mark: Acknowledged by {mention(alert.acknowledged_by)} at {when(alert.acknowledged_at)}"
        )
    actor = mention(alert.actor_user) if alert.actor_user else "the actor"
    if alert.actor_status == "asked":
        lines.append(
            f":speech_balloon: Asked {actor} whether they did this"
            + (f" (asked by {mention(alert.actor_asked_by)})" if alert.actor_asked_by else "")
            + f"; escalates at {when(alert.actor_deadline)} without an answer."
        )
    elif alert.actor_status == "confirmed":
        lines.append(f":ok_hand: {actor} confirmed they did this ({when(alert.actor_answered_at)}).")
    elif alert.actor_status == "denied":
        lines.append(f":warning: {actor} said they did *not* do this ({when(alert.actor_answered_at)}).")
    elif alert.actor_status == "timed_out":
        lines.append(f":hourglass: {actor} did not answer by {when(alert.actor_deadline)}.")
    if alert.escalated_at:
        lines.append(f":mega: Escalated to the security team at {when(alert.escalated_at)}.")
    return lines


def actor_question(alert: Alert) -> Message:
    """The DM to the mapped member: "Did you do this?" with Yes / No."""
    facts = (
        f"*{escape(alert.title)}*\n"
        f"{code(alert.event_name)} by {code(alert.principal_arn or alert.principal_name or 'unknown')}\n"
        f"When: {when(alert.first_seen)} · account {code(alert.account_id)} · "
        f"source IP {code(alert.source_ip or '—')}"
    )
    blocks = [
        section(":wave: The security team would like to know: *did you do this?*"),
        section(facts),
        actions(
            button("Yes, it was me", ActionId.ALERT_ACTOR_YES, str(alert.id), style="primary"),
            button("No, it wasn't me", ActionId.ALERT_ACTOR_NO, str(alert.id), style="danger"),
        ),
    ]
    return Message(text=f"Did you do this? {escape(alert.title)}", blocks=blocks, ephemeral=False)


def actor_answered(alert: Alert, confirmed: bool) -> Message:
    if confirmed:
        text = f"Thanks, recorded that you did this: {escape(alert.title)}."
    else:
        text = (
            f"Thanks. You said you did *not* do this: {escape(alert.title)}. "
            "The security team has been told and will follow up."
        )
    return Message(text=text, blocks=[section(text)], ephemeral=False)


def escalation_message(alert: Alert, team: list[str], *, reason: str) -> Message:
    """``reason`` is mrkdwn the bot composed (mentions it resolved itself), never user text."""
    who = " ".join(team) if team else "Security team"
    text = f"{who}: alert #{alert.id} needs attention: {reason}"
    return Message(
        text=text,
        blocks=[
            section(f":mega: {who}: *{escape(alert.title)}* (alert #{alert.id}) needs attention. {reason}")
        ],
        ephemeral=False,
    )


OPEN_ALERTS_SHOWN = 15


def open_alerts_message(open_alerts: list[Alert], total: int) -> Message:
    """``/iam alerts``: unacknowledged alerts, newest first."""
    if not open_alerts:
        text = "No open alerts: every alert has been acknowledged."
        return Message(text=text, blocks=[section(text)])
    blocks: list[dict] = [header(f"Open alerts ({total})")]
    for alert in open_alerts:
        seen = f" · seen {alert.count} times" if alert.count > 1 else ""
        blocks.append(
            section(
                f"{SEVERITY_ICON.get(alert.severity, '')} *{escape(alert.title)}*\n"
                f"{code(alert.rule_id)} · {when(alert.first_seen)} · account {code(alert.account_id)}"
                f"{seen} · alert #{alert.id}"
            )
        )
    if total > len(open_alerts):
        blocks.append(context(f"{total - len(open_alerts)} older open alert(s) not shown."))
    return Message(text=f"{total} open alert(s)", blocks=blocks)


def rules_message(rules: Iterable[Rule]) -> Message:
    """``/iam alerts rules``: the catalog with this deployment's overrides applied."""
    blocks: list[dict] = [header("Alert rules")]
    for rule in rules:
        limits = []
        if rule.threshold is not None:
            limits.append(f"threshold {rule.threshold}")
        if rule.window is not None:
            limits.append(f"window {alert_store.human_duration(rule.window)}")
        limits.append(f"dedupe {alert_store.human_duration(rule.dedupe_window)}")
        state = "" if rule.enabled else " _(disabled)_"
        blocks.append(
            section(
                f"{code(rule.id)} · {rule.severity.value}{state}\n{escape(rule.description)}\n"
                f"_{escape(', '.join(limits))}_"
            )
        )
    return Message(text="Alert rules", blocks=blocks)
