"""Offboarding in Slack: the ``user_change`` event, the security channel's one alert per departed
member (with **Disable access** on each IAM user they still hold) and the sweep that finishes what a
crash or a Slack outage interrupted. The decisions live in ``bot.offboarding``.

``user_change`` needs only the ``users:read`` scope. Bolt acknowledges events before the listener
runs, so the 3-second budget holds whatever AWS and Slack do afterwards.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import offboarding
from bot.identity import store_member
from bot.jobs import job
from bot.offboarding import OffboardingReport
from bot.services import Services
from handlers.background import ack_then
from handlers.blocks import (
    Message,
    button,
    code,
    confirm_dialog,
    context,
    escape,
    header,
    mention,
    section,
    truncate,
)
from handlers.commands import CommandIO
from handlers.ids import ActionId

log = logging.getLogger(__name__)

_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")  # used with fullmatch: no trailing newline slips through
# Each held IAM user is one block with its own button; the rest go to the overflow file.
MAX_USERS_SHOWN = 20


def disable_value(offboarding_id: int, account_id: str, user_name: str) -> str:
    return f"{offboarding_id}|{account_id}|{user_name}"


def alert_message(report: OffboardingReport) -> Message:
    """The one offboarding alert: who left, what was just ended, and what they still hold."""
    who = f"{mention(report.user_id)} ({escape(report.name)}" + (
        f", {escape(report.email)})" if report.email else ")"
    )
    how = "Slack's user_change event" if report.source == "user_change" else "a directory refresh"
    blocks: list[dict] = [
        header(truncate(f"Offboarding: {report.name} left the workspace", 150)),
        section(f":wave: {who} was deactivated in Slack (seen through {how}).", block_id="offboarding:who"),
    ]
    revoked = report.ended.revoked
    if revoked:
        lines = []
        for item in revoked[:15]:
            state = (
                "live sessions denied"
                if item.get("policy_written")
                else f"*could not deny live sessions*: {escape(item.get('problem') or 'unknown error')}"
            )
            lines.append(f"• {code(item['request_id'])} {code(item['role'])}: revoked, {state}")
        if len(revoked) > 15:
            lines.append(f"• … and {len(revoked) - 15} more (see the audit log)")
        blocks.append(section("*Just revoked (just-in-time access)*\n" + "\n".join(lines)))
    withdrawn = report.ended.withdrawn
    if withdrawn:
        lines = [
            f"• {code(w['request_id'])} {code(w['role'])} ({escape(w.get('kind') or 'request')})"
            for w in withdrawn[:15]
        ]
        if len(withdrawn) > 15:
            lines.append(f"• … and {len(withdrawn) - 15} more")
        blocks.append(section("*Withdrawn (pending requests and extensions)*\n" + "\n".join(lines)))
    if not revoked and not withdrawn:
        blocks.append(section("They held no just-in-time access; nothing needed revoking."))
    if report.users:
        blocks.append(section("*Still holds: IAM users linked to them with working credentials*"))
        for user in report.users[:MAX_USERS_SHOWN]:
            text = f"{code(user.user_name)} in {code(user.account_id)}: {escape(', '.join(user.credentials))}"
            blocks.append(
                section(
                    text,
                    block_id=f"offboarding:user:{report.offboarding_id}:{user.account_id}:{user.user_name}"[
                        :255
                    ],
                    accessory=button(
                        "Disable access",
                        ActionId.OFFBOARDING_DISABLE_ACCESS,
                        disable_value(report.offboarding_id, user.account_id, user.user_name),
                        style="danger",
                        confirm=confirm_dialog(
                            "Disable access?",
                            f"Deactivate every access key of IAM user {escape(user.user_name)} in "
                            f"{escape(user.account_id)} and delete its console password. Keys are kept "
                            "(inactive) so this can be undone.",
                            confirm="Disable access",
                        ),
                    ),
                )
            )
        if len(report.users) > MAX_USERS_SHOWN:
            blocks.append(
                context(f"{len(report.users) - MAX_USERS_SHOWN} more IAM users: see `/iam findings`.")
            )
    if report.roles:
        roles = ", ".join(code(arn) for arn in report.roles[:20])
        blocks.append(
            section(f"*Roles mapped to them* ([identity] map): {roles}. Review who else can assume them.")
        )
    if not report.users and not report.roles:
        blocks.append(section("No IAM user with working credentials and no role is linked to them."))
    seen = f"as of the scan at {report.snapshot_at}" if report.snapshot_at else "no scan has run yet"
    blocks.append(context(f"IAM holdings {seen}. Offboarding {report.offboarding_id} · audit: offboarding.*"))
    held = len(report.users)
    text = (
        f"Offboarding: {report.name} ({report.user_id}) left; {len(revoked)} grant(s) revoked, "
        f"{len(withdrawn)} request(s) withdrawn, {held} IAM user(s) still with credentials."
    )
    return Message(text=text, blocks=blocks, ephemeral=False)


@dataclass
class SlackOffboardingNotifier:
    """``bot.offboarding.OffboardingNotifier`` over the Web API."""

    services: Services
    client: WebClient

    def access_changed(self, request_ids: list[str]) -> None:
        from handlers.access import refresh_with_extensions

        for request_id in request_ids:
            refresh_with_extensions(self.services, self.client, request_id)

    def offboarding_alert(self, report: OffboardingReport) -> tuple[str, str]:
        slack = self.services.config.slack
        channel = slack.security_channel or slack.alerts_channel or slack.approvals_channel
        if not channel:
            raise RuntimeError("no security channel is configured ([slack] security_channel)")
        message = alert_message(report).checked(overflow_name="offboarding.txt")
        result = self.client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
        return result.get("channel") or channel, result["ts"]


def sweep_offboardings(services: Services, client: WebClient) -> int:
    return offboarding.sweep(services, SlackOffboardingNotifier(services, client))


@job("offboarding-sweep", every_seconds=lambda s: 60.0)
def offboarding_sweep_job(services: Services, client: Any) -> None:
    sweep_offboardings(services, client)


def handle_user_change(services: Services, client: WebClient, body: dict[str, Any]) -> str:
    """One ``user_change`` event: cache the member, then offboard or close their offboarding.
    Returns what happened, for the log."""
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    user = event.get("user")
    if (
        not isinstance(user, dict)
        or not isinstance(user.get("id"), str)
        or not _MEMBER_ID.fullmatch(user["id"])
    ):
        log.warning("user_change without a usable user object; ignored")
        return "ignored"
    user_id = user["id"]
    changes = store_member(services.store, user, services.clock.now())
    if user.get("deleted"):
        # claim() dedupes: the same event retried (X-Slack-Retry-Num), two instances, or an event and a
        # directory refresh, all act once.
        report = offboarding.offboard(
            services,
            user_id,
            SlackOffboardingNotifier(services, client),
            source="user_change",
            event_id=body.get("event_id") if isinstance(body.get("event_id"), str) else None,
        )
        # None: another delivery (or instance) claimed it first, or the alert waits for the sweep.
        return "offboarded" if report is not None else "claimed elsewhere or alert pending"
    if changes.reactivated or offboarding.is_offboarded(services, user_id):
        offboarding.reactivated(services, user_id, source="user_change")
        return "reactivated"
    return "updated"


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners."""

    @app.event("user_change")
    @ack_then(services)
    def on_user_change(body: dict, client: WebClient) -> None:
        # Acked at once; revocation (AWS, Web API) runs on SlowWork, never on Bolt's ack threads.
        # claim() dedupes, so a run the outbox repeats finds the offboarding already taken.
        outcome = handle_user_change(services, client, body)
        log.info("user_change: %s", outcome)

    @app.action(ActionId.OFFBOARDING_DISABLE_ACCESS.value)
    @ack_then(services)
    def on_disable_access(body: dict, client: WebClient) -> None:
        from handlers.models import BlockAction

        action = BlockAction.from_body(body)
        disable_from_alert(services, client, action, body)


def _tell(client: WebClient, channel: str | None, user: str, text: str) -> None:
    try:
        if channel and not channel.startswith("D"):
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("could not answer %s: %s", user, exc.response.get("error"))


def disable_from_alert(services: Services, client: WebClient, action: Any, body: dict) -> None:
    """**Disable access** on an offboarding alert: security team only, and only for an IAM user
    that the stored offboarding's member is linked to (the button's value is never trusted alone)."""
    from bot.offboarding import OffboardingError, disable_access, factory_for_account, holdings

    user = action.user.id
    if not CommandIO(services=services, client=client).is_security_team(user):
        _tell(client, action.channel_id, user, "Disable access is for the security team.")
        return
    parts = (action.value or "").split("|")
    row = None
    if len(parts) == 3 and parts[0].isdigit():
        row = offboarding.open_offboarding(services, int(parts[0]))
    if row is None:
        _tell(client, action.channel_id, user, "That offboarding is no longer stored; nothing was changed.")
        return
    _, account_id, user_name = parts
    linked = {(h.account_id, h.user_name) for h in holdings(services, row["user_id"])[0]}
    if (account_id, user_name) not in linked:
        _tell(
            client,
            action.channel_id,
            user,
            f"IAM user {code(user_name)} is no longer linked to {mention(row['user_id'])} with working "
            "credentials in the latest scan; nothing was changed.",
        )
        return
    thread = (body.get("message") or {}).get("ts")
    try:
        result = disable_access(
            factory_for_account(services, account_id),
            services.store,
            account_id=account_id,
            user_name=user_name,
            actor=user,
            at=services.clock.now(),
            reason=f"offboarding {row['id']} of {row['user_id']}",
        )
        text = f"{mention(user)} used Disable access. {escape(result.describe())}"
    except OffboardingError as exc:
        text = f"{mention(user)} tried Disable access: {escape(exc)}"
    except Exception as exc:  # AWS unreachable, role not assumable…
        log.exception("disable access for %s failed", user_name)
        text = f"Disable access on {code(user_name)} failed ({escape(type(exc).__name__)}); nothing is confirmed changed."
    if action.channel_id and not action.channel_id.startswith("D"):
        try:
            client.chat_postMessage(
                channel=action.channel_id, thread_ts=thread, text=text, blocks=[section(text)]
            )
            return
        except SlackApiError as exc:
            log.warning("could not post in the offboarding thread: %s", exc.response.get("error"))
    _tell(client, action.channel_id, user, text)


# --------------------------------------------------------------------------- the demo


def demo_cache_directory(session: Any) -> None:
    """The demo chat caches the directory itself, as ``iamwarden run`` does before it serves."""
    from handlers.directory import refresh_directory

    count = refresh_directory(session.services, session.app.client)
    session.say(f"  (cached {count} Slack members with users.list, as `iamwarden run` does at start-up)")


def demo_deactivate(session: Any, name: str) -> None:
    """``deactivate NAME`` in the demo chat: Slack deactivates the person and sends user_change."""
    from sandbox.demo_account import PEOPLE

    person = next((p for p in PEOPLE if name.lower() in (p.name, p.slack_id.lower())), None)
    if person is None:
        session.say("unknown person; try " + ", ".join(p.name for p in PEOPLE))
        return
    session.slack.deactivate_user(person.slack_id)
    session.say(f"\n── Slack deactivates {person.real_name}; Slack sends the bot a user_change event ──")
    session.sender.event({"type": "user_change", "user": session.slack.user(person.slack_id)})
    session.settle(quiet_for=1.0, limit=30.0)
