"""``iamwarden check``, the Slack half and the command: the bot token (``auth.test``) and the bot's
membership of every configured channel, then the AWS and local checks of ``bot.readiness``, as one
readiness table. Exit 0 only when ready; nothing is posted, written or changed."""

from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.aws import AwsFactory
from bot.commands import EXIT_FINDINGS, EXIT_OK, command
from bot.readiness import Row, Status, aws_rows, config_rows, database_row, format_table, ready
from bot.settings import Settings, load_settings
from handlers.client import build_client
from handlers.identity import DirectoryError, usergroup_members


def slack_rows(settings: Settings) -> list[Row]:
    if settings.slack_bot_token is None:
        return [Row("slack", "token", Status.FAIL, "SLACK_BOT_TOKEN is not set")]
    # build_client reads only .settings: a check opens no database.
    client = build_client(SimpleNamespace(settings=settings))
    try:
        auth = client.auth_test()
    except (SlackApiError, SlackClientError) as exc:
        return [Row("slack", "token", Status.FAIL, f"auth.test failed: {_slack_error(exc)}")]
    rows = [Row("slack", "token", Status.OK, f"bot @{auth.get('user')} in {auth.get('team')}")]
    cfg = settings.config.slack
    channels: dict[str, list[str]] = {}
    for key in ("approvals_channel", "security_channel", "digest_channel", "alerts_channel"):
        if getattr(cfg, key):
            channels.setdefault(getattr(cfg, key), []).append(key)
    for channel, keys in channels.items():
        label = f"{channel} ({', '.join(keys)})"
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error == "missing_scope":
                rows.append(
                    Row(
                        "slack",
                        label,
                        Status.WARN,
                        "membership not verified: the app lacks channels:read / groups:read",
                    )
                )
            else:
                rows.append(Row("slack", label, Status.FAIL, f"conversations.info: {error}"))
            continue
        except SlackClientError as exc:
            rows.append(Row("slack", label, Status.FAIL, f"conversations.info: {_slack_error(exc)}"))
            continue
        if info.get("is_archived"):
            rows.append(Row("slack", label, Status.FAIL, "the channel is archived"))
        elif not info.get("is_member", False) and not info.get("is_im"):
            rows.append(
                Row(
                    "slack", label, Status.FAIL, f"the bot is not a member: /invite @{auth.get('user')} in it"
                )
            )
        else:
            rows.append(Row("slack", label, Status.OK, "the bot is a member"))
    rows += approver_rows(settings, client)
    return rows


def approver_rows(settings: Settings, client: object) -> list[Row]:
    """Each role's approvers as Slack resolves them (groups expanded): enough people to give
    ``approvals_required`` approvals, and every @group exists. The security team's groups too."""
    cache_key = SimpleNamespace()  # usergroup_members caches per object: one per check run
    rows: list[Row] = []

    def people(entries: list[str], label: str) -> set[str] | None:
        found: set[str] = set()
        for entry in entries:
            if entry.startswith(("@", "S")):
                try:
                    found |= usergroup_members(client, cache_key, entry, strict=True)
                except DirectoryError as exc:
                    rows.append(Row("slack", label, Status.FAIL, str(exc)))
                    return None
            else:
                found.add(entry)
        return found

    team = people(settings.config.slack.security_team, "security_team")
    if team is not None and settings.config.slack.security_team:
        rows.append(Row("slack", "security_team", Status.OK, f"{len(team)} member(s)"))
    for i, role in enumerate(settings.config.roles):
        label = f"roles.{i} ({role.name}) approvers"
        approvers = people(role.approvers, label)
        if approvers is None or not role.approvers:
            continue
        if role.approvals_required > len(approvers):
            rows.append(
                Row(
                    "slack",
                    label,
                    Status.FAIL,
                    f"approvals_required = {role.approvals_required} but only {len(approvers)} people can approve",
                )
            )
        else:
            rows.append(Row("slack", label, Status.OK, f"{len(approvers)} people can approve"))
    return rows


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error") or type(exc).__name__)
    return type(exc).__name__


def readiness(settings: Settings) -> list[Row]:
    rows = config_rows(settings)
    rows.append(database_row(settings.db))
    rows += slack_rows(settings)
    rows += aws_rows(settings, AwsFactory(region=settings.aws_region))
    return rows


@command(
    "check",
    "Verify this deployment end to end without changing anything (config, database, Slack, AWS, "
    "each feature's permissions); exit 0 only when ready.",
)
def cmd_check(args: argparse.Namespace) -> int:
    started = time.monotonic()
    rows = readiness(load_settings())
    sys.stdout.write(format_table(rows))
    verdict = "ready" if ready(rows) else "NOT READY"
    failed = sum(r.status == Status.FAIL for r in rows)
    sys.stdout.write(
        f"\n{verdict}: {failed} failed, {sum(r.status == Status.WARN for r in rows)} warnings"
        f" · checked in {time.monotonic() - started:.1f} s\n"
    )
    return EXIT_OK if ready(rows) else EXIT_FINDINGS
