"""Slack surface for alerts: the alert message, its buttons, the actor's DM, and the two jobs.

- ``poll_alerts`` (job): SQS and/or LookupEvents → ``bot.alerts.ingest`` → ``deliver_alerts``.
- ``deliver_alerts``: posts alerts recorded but not yet posted, and updates messages whose alert
  changed (repeat counter, acknowledgement, actor answer). Safe to call any time, from anywhere.
- ``escalate_unanswered`` (job): "Did you do this?" left unanswered past
  ``[alerts] actor_confirm_timeout`` escalates in the channel, mentioning the security team.

Tests call the job functions directly after moving a FrozenClock.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import alerts as alert_store
from bot.alert_sources import consume_queue, poll_lookup_events
from bot.alerts import Alert
from bot.jobs import job
from bot.services import Services
from handlers.background import ack_then
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
from handlers.commands import CommandIO, UserError, subcommand
from handlers.digest import disable_access_button, run_disable_access
from handlers.home import HOME_SECTIONS
from handlers.ids import ActionId
from handlers.models import BlockAction, SlashCommand

log = logging.getLogger(__name__)

_deliver_lock = threading.Lock()


def alerts_channel(services: Services) -> str | None:
    slack = services.config.slack
    return slack.alerts_channel or slack.security_channel


def _when(stamp: str | None) -> str:
    if not stamp:
        return "—"
    moment = datetime.fromisoformat(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------------------------
# Pure builders


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
        ("When", _when(alert.first_seen)),
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
    seen = f"seen {alert.count} times, last at {_when(alert.last_seen)}" if alert.count > 1 else "seen once"
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
            f":white_check_mark: Acknowledged by {mention(alert.acknowledged_by)} at {_when(alert.acknowledged_at)}"
        )
    actor = mention(alert.actor_user) if alert.actor_user else "the actor"
    if alert.actor_status == "asked":
        lines.append(
            f":speech_balloon: Asked {actor} whether they did this"
            + (f" (asked by {mention(alert.actor_asked_by)})" if alert.actor_asked_by else "")
            + f"; escalates at {_when(alert.actor_deadline)} without an answer."
        )
    elif alert.actor_status == "confirmed":
        lines.append(f":ok_hand: {actor} confirmed they did this ({_when(alert.actor_answered_at)}).")
    elif alert.actor_status == "denied":
        lines.append(f":warning: {actor} said they did *not* do this ({_when(alert.actor_answered_at)}).")
    elif alert.actor_status == "timed_out":
        lines.append(f":hourglass: {actor} did not answer by {_when(alert.actor_deadline)}.")
    if alert.escalated_at:
        lines.append(f":mega: Escalated to the security team at {_when(alert.escalated_at)}.")
    return lines


def actor_question(alert: Alert) -> Message:
    """The DM to the mapped member: "Did you do this?" with Yes / No."""
    facts = (
        f"*{escape(alert.title)}*\n"
        f"{code(alert.event_name)} by {code(alert.principal_arn or alert.principal_name or 'unknown')}\n"
        f"When: {_when(alert.first_seen)} · account {code(alert.account_id)} · "
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
                f"{code(alert.rule_id)} · {_when(alert.first_seen)} · account {code(alert.account_id)}"
                f"{seen} · alert #{alert.id}"
            )
        )
    if total > len(open_alerts):
        blocks.append(context(f"{total - len(open_alerts)} older open alert(s) not shown."))
    return Message(text=f"{total} open alert(s)", blocks=blocks)


def rules_message(services: Services) -> Message:
    """``/iam alerts rules``: the catalog with this deployment's overrides applied."""
    blocks: list[dict] = [header("Alert rules")]
    for rule in alert_store.rule_catalog(services.config):
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


@subcommand(
    "alerts",
    usage="alerts [rules]",
    summary="Open (unacknowledged) alerts, or the alert rules and their settings.",
    team_only=True,
)
def show_alerts(cmd: SlashCommand, io: CommandIO) -> Message:
    args = [a.lower() for a in cmd.args]
    if args == ["rules"]:
        return rules_message(io.services)
    if args:
        raise UserError(f"Usage: {code('/iam alerts')} or {code('/iam alerts rules')}")
    store = io.services.store
    total = store.db.execute("SELECT COUNT(*) FROM alerts WHERE state = 'open'").fetchone()[0]
    shown = alert_store.alerts(store, where="state = 'open'", newest_first=True, limit=OPEN_ALERTS_SHOWN)
    return open_alerts_message(shown, total)


def home_alerts(services: Services, client: WebClient, user_id: str) -> list[dict]:
    """App Home contribution: the newest open alerts, for the security team only."""
    if not CommandIO(services=services, client=client).is_security_team(user_id):
        return []
    store = services.store
    total = store.db.execute("SELECT COUNT(*) FROM alerts WHERE state = 'open'").fetchone()[0]
    if not total:
        return [section(":white_check_mark: *Alerts*: none open.")]
    shown = alert_store.alerts(store, where="state = 'open'", newest_first=True, limit=5)
    lines = [
        f"{SEVERITY_ICON.get(a.severity, '')} {escape(truncate(a.title, 150))} · {_when(a.first_seen)} · #{a.id}"
        for a in shown
    ]
    more = f"\n_{total - len(shown)} more: `/iam alerts`_" if total > len(shown) else ""
    return [section(f"*Open alerts ({total})*\n" + "\n".join(lines) + more)]


HOME_SECTIONS.append(home_alerts)


# ---------------------------------------------------------------------------------------------
# Posting


def _post(client: WebClient, channel: str, message: Message, **extra: Any) -> dict:
    return client.chat_postMessage(channel=channel, **message.as_kwargs(), **extra).data


def deliver_alerts(services: Services, client: WebClient) -> int:
    """Post new alerts and update changed ones; returns how many messages were posted or updated."""
    channel = alerts_channel(services)
    if channel is None:
        pending = alert_store.pending_delivery(services.store)
        if pending:
            log.warning(
                "%d alert(s) recorded but no [slack] alerts_channel/security_channel set", len(pending)
            )
        return 0
    done = 0
    with _deliver_lock:
        for alert in alert_store.pending_delivery(services.store):
            try:
                done += _deliver_one(services, client, alert, channel)
            except SlackApiError as exc:
                # Stays dirty: the next poll tries again.
                log.warning("alert #%s: Slack refused the message (%s)", alert.id, exc.response.get("error"))
    return done


def _deliver_one(services: Services, client: WebClient, alert: Alert, channel: str) -> bool:
    """Post or update one alert's message; False when another deliverer holds the post claim."""
    message = alert_message(alert)
    if alert.ts and alert.channel:
        try:
            client.chat_update(channel=alert.channel, ts=alert.ts, **message.as_kwargs())
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                raise
            # Someone deleted the alert message: post it again rather than retrying forever.
            posted = _post(client, channel, message)
            alert_store.mark_delivered(services.store, alert, channel=posted["channel"], ts=posted["ts"])
            return True
        alert_store.mark_delivered(services.store, alert, channel=alert.channel, ts=alert.ts)
        return True
    else:
        # Another instance may be posting this very alert: only the claim holder posts. A crash
        # between the post and recording its ts would post once more after the claim lapses:
        # the one window where a repeat is possible, kept as small as a single call.
        if not alert_store.claim_first_post(services.store, alert.id, services.clock.now()):
            return False
        try:
            posted = _post(client, channel, message)
        except Exception:
            alert_store.release_post_claim(services.store, alert.id)
            raise
        alert_store.mark_delivered(services.store, alert, channel=posted["channel"], ts=posted["ts"])
        return True


def _team_mentions(services: Services, client: WebClient) -> list[str]:
    """Mentions for the configured security team: members as <@U…>, user groups as <!subteam^S…>."""
    out: list[str] = []
    groups: list[dict] | None = None
    for entry in services.config.slack.security_team:
        if entry.startswith("@"):
            if groups is None:
                try:
                    groups = client.usergroups_list()["usergroups"]
                except SlackApiError:
                    groups = []
            match = next((g for g in groups if g.get("handle") == entry[1:]), None)
            out.append(f"<!subteam^{match['id']}>" if match else escape(entry))
        elif entry.startswith("S"):
            out.append(f"<!subteam^{entry}>")
        else:
            out.append(mention(entry))
    return out


def escalate(services: Services, client: WebClient, alert: Alert, *, reason: str) -> bool:
    """Post the escalation in the alert's thread (broadcast to the channel) once per alert."""
    if not alert_store.claim_escalation(services.store, alert.id, services.clock.now()):
        return False
    channel = alert.channel or alerts_channel(services)
    if channel:
        extra: dict[str, Any] = {"thread_ts": alert.ts, "reply_broadcast": True} if alert.ts else {}
        _post(
            client,
            channel,
            escalation_message(alert, _team_mentions(services, client), reason=reason),
            **extra,
        )
    deliver_alerts(services, client)
    return True


# ---------------------------------------------------------------------------------------------
# Jobs


def _poll_every(services: Services) -> float | None:
    cfg = services.config.alerts
    return cfg.poll_interval.total_seconds() if (cfg.queue_url or cfg.lookup_events) else None


@job("alerts-poll", every_seconds=_poll_every)
def poll_alerts(services: Services, client: WebClient) -> None:
    """Read the configured sources, record alerts, and post them."""
    cfg = services.config.alerts
    if cfg.queue_url:
        consume_queue(services)
    if cfg.lookup_events:
        poll_lookup_events(services)
    deliver_alerts(services, client)
    now = services.clock.now()
    last = services.extras.get("alerts.pruned_at")
    if last is None or (now - last).total_seconds() > 86400:
        alert_store.prune(services.store, now)
        services.extras["alerts.pruned_at"] = now


@job("alerts-actor-timeouts", every_seconds=lambda services: 60.0)
def escalate_unanswered(services: Services, client: WebClient) -> int:
    """Escalate every "Did you do this?" left unanswered past its deadline; returns how many."""
    now = services.clock.now()
    count = 0
    for alert in alert_store.timed_out_asks(services.store, now):
        if not alert_store.expire_ask(services.store, alert.id, now):
            continue
        who = mention(alert.actor_user) if alert.actor_user else "The actor"
        if escalate(services, client, alert, reason=f'{who} did not answer "Did you do this?" in time.'):
            count += 1
    # Also catch up on anything not yet posted (e.g. Slack was down during the last poll).
    deliver_alerts(services, client)
    return count


# ---------------------------------------------------------------------------------------------
# Listeners


def _say_privately(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners."""

    def load(action: BlockAction, respond: Respond) -> Alert | None:
        # Alert ids are SQLite integers: anything else (or too big for one) names no alert.
        if not (action.value.isascii() and action.value.isdigit() and len(action.value) <= 18):
            log.info("ignored alert button value %r from %s", action.value[:40], action.user.id)
            _say_privately(respond, "I can't find that alert any more.")
            return None
        alert = alert_store.get_alert(services.store, action.value)
        if alert is None:
            _say_privately(respond, "I can't find that alert any more.")
        return alert

    @app.action(ActionId.ALERT_ACKNOWLEDGE.value)
    @ack_then(services)
    def on_acknowledge(body: dict, respond: Respond, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        alert = load(action, respond)
        if alert is None:
            return
        if not CommandIO(services=services, client=client).is_security_team(action.user.id):
            _say_privately(respond, "Only the security team can acknowledge alerts.")
            return
        if not alert_store.acknowledge(services.store, alert.id, action.user.id, services.clock.now()):
            current = alert_store.get_alert(services.store, alert.id)
            by = mention(current.acknowledged_by) if current and current.acknowledged_by else "someone"
            _say_privately(respond, f"Already acknowledged by {by}.")
            return
        deliver_alerts(services, client)

    @app.action(ActionId.ALERT_ASK_ACTOR.value)
    @ack_then(services)
    def on_ask_actor(body: dict, respond: Respond, client: WebClient) -> None:
        action = BlockAction.from_body(body)
        alert = load(action, respond)
        if alert is None:
            return
        if not CommandIO(services=services, client=client).is_security_team(action.user.id):
            _say_privately(respond, "Only the security team can ask the actor.")
            return
        if not alert.owner:
            _say_privately(
                respond,
                f"No Slack member is mapped to {code(alert.principal_arn or alert.principal_name or 'this principal')}, "
                "so there is nobody to ask. Map them under `[identity] map` or tag the IAM user with their email.",
            )
            return
        now = services.clock.now()
        timeout = services.config.alerts.actor_confirm_timeout
        if not alert_store.ask_actor(
            services.store, alert.id, actor=alert.owner, asked_by=action.user.id, at=now, timeout=timeout
        ):
            _say_privately(respond, "The actor has already been asked about this alert.")
            return
        asked = alert_store.get_alert(services.store, alert.id)
        try:
            dm = client.conversations_open(users=alert.owner)["channel"]["id"]
            posted = _post(client, dm, actor_question(asked))
        except SlackApiError as exc:
            # Still "asked": without an answer it escalates at the deadline like any other.
            _say_privately(
                respond,
                f"I could not DM {mention(alert.owner)} ({escape(exc.response.get('error', 'error'))}); "
                "without an answer this escalates at the deadline.",
            )
        else:
            alert_store.set_actor_dm(services.store, alert.id, posted["channel"], posted["ts"])
        deliver_alerts(services, client)

    @app.action(ActionId.ALERT_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, respond: Respond, client: WebClient) -> None:
        """KEY_QUARANTINED's one click: the digest's Disable access flow on the quarantined user."""
        action = BlockAction.from_body(body)
        alert = load(action, respond)
        if alert is None:
            return
        if not CommandIO(services=services, client=client).is_security_team(action.user.id):
            _say_privately(respond, "Disable access is for the security team.")
            return
        user_name = quarantined_user_of(alert)
        if not user_name:
            _say_privately(respond, "This alert is not about a quarantined IAM user's key.")
            return
        run_disable_access(
            services,
            client,
            action,
            body,
            account_id=alert.account_id,
            user_name=user_name,
            reason=f"alert {alert.id} {alert.rule_id}",
        )

    def on_answer(confirmed: bool):  # noqa: ANN202 - returns a Bolt listener
        @ack_then(services)
        def listener(body: dict, respond: Respond, client: WebClient) -> None:
            action = BlockAction.from_body(body)
            alert = load(action, respond)
            if alert is None:
                return
            now = services.clock.now()
            if not alert_store.answer_actor(
                services.store, alert.id, user_id=action.user.id, confirmed=confirmed, at=now
            ):
                if alert.actor_user != action.user.id:
                    _say_privately(respond, "This question was not addressed to you.")
                else:
                    _say_privately(respond, "Your answer was already recorded (or the question timed out).")
                return
            answered = alert_store.get_alert(services.store, alert.id)
            if answered.dm_channel and answered.dm_ts:
                client.chat_update(
                    channel=answered.dm_channel,
                    ts=answered.dm_ts,
                    **actor_answered(answered, confirmed).as_kwargs(),
                )
            if confirmed:
                deliver_alerts(services, client)
            else:
                escalate(
                    services,
                    client,
                    answered,
                    reason=f"{mention(action.user.id)} says they did not do this.",
                )

        return listener

    app.action(ActionId.ALERT_ACTOR_YES.value)(on_answer(True))
    app.action(ActionId.ALERT_ACTOR_NO.value)(on_answer(False))


# ---------------------------------------------------------------------------------------------
# The demo tour's step


def _demo_sign_in(account: str, identity: dict[str, Any], *, mfa: bool, at: datetime) -> dict[str, Any]:
    """A ConsoleLogin record shaped like CloudTrail's (as EventBridge delivers it in ``detail``)."""
    import uuid

    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa else "No",
        },
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def demo_tour(session: Any) -> None:
    """The tour's alerts step: an EventBridge rule → SQS queue on the sandbox AWS, the root user and
    then Ada signing in to the console, the bot's poll job posting alerts, Sam asking Ada, Ada answering."""
    import json

    from handlers.client import build_client

    services = session.services
    client = build_client(services)
    account = services.config.accounts[0].id if services.config.accounts else "123456789012"
    session.say("\n── Alerts: CloudTrail → EventBridge → SQS → the security channel ──")
    sqs = services.aws.client("sqs")
    queue = sqs.create_queue(QueueName="iamwarden-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = services.aws.client("events")
    pattern = {"detail-type": ["AWS Console Sign In via CloudTrail", "AWS API Call via CloudTrail"]}
    events.put_rule(Name="iamwarden-alerts", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="iamwarden-alerts", Targets=[{"Id": "iamwarden-alerts", "Arn": arn}])
    services.config.alerts.queue_url = queue
    services.config.alerts.sqs_wait_seconds = 0

    def sign_in(identity: dict[str, Any], *, mfa: bool) -> None:
        record = _demo_sign_in(account, identity, mfa=mfa, at=services.clock.now())
        events.put_events(
            Entries=[
                {
                    "Source": "aws.signin",
                    "DetailType": "AWS Console Sign In via CloudTrail",
                    "Detail": json.dumps(record),
                }
            ]
        )

    session.say("Someone signs in to the console as the root user (without MFA); the bot polls its queue:")
    sign_in(
        {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account},
        mfa=False,
    )
    poll_alerts(services, client)
    session.settle()
    session.say("\nSam acknowledges it:")
    session.click_label("Acknowledge", user="U0SAM")
    session.say("\nAda signs in without MFA. Sam asks her whether it was her:")
    sign_in(
        {
            "type": "IAMUser",
            "principalId": "AIDADEMOADA000000001",
            "arn": f"arn:aws:iam::{account}:user/ada",
            "accountId": account,
            "userName": "ada",
        },
        mfa=False,
    )
    poll_alerts(services, client)
    session.settle()
    if session.click_label("Ask the actor", user="U0SAM"):
        session.say("\nAda answers in her DM:")
        session.click_label("Yes, it was me", user="U0ADA")
