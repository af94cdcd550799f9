"""Offboarding in Block Kit: the security channel's one alert per departed member (with **Disable
access** on each IAM user they still hold) and what a click on it came to. Pure builders over
``bot.identity`` objects; escaping happens here.
"""

from __future__ import annotations

from bot.identity import DisableOutcome, OffboardingReport
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
from handlers.ids import ActionId

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


def disable_outcome_text(outcome: DisableOutcome, actor: str) -> str:
    """The one line the security channel (or the clicker alone, for a refusal) reads after a
    **Disable access** click."""
    if outcome.status == "not_stored":
        return "That offboarding is no longer stored; nothing was changed."
    if outcome.status == "not_linked":
        return (
            f"IAM user {code(outcome.user_name)} is no longer linked to {mention(outcome.member or '')} with working "
            "credentials in the latest scan; nothing was changed."
        )
    if outcome.status == "disabled" and outcome.result is not None:
        return f"{mention(actor)} used Disable access. {escape(outcome.result.describe())}"
    if outcome.status == "refused":
        return f"{mention(actor)} tried Disable access: {escape(outcome.error)}"
    return (
        f"Disable access on {code(outcome.user_name)} failed ({escape(outcome.error)}); "
        "nothing is confirmed changed."
    )
