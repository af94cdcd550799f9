"""The command line's API for features, and the domain's own commands (audit, policy).

A feature declares a command with ``@command(name, help, arguments)`` in its module and names the
module in its feature's ``commands`` (bot/features.py); ``iamwarden.cli`` builds the parser.
Exit codes: 0 ok; 1 ``scan --fail-on`` found findings at or above the threshold; 2 a setting or an
argument is wrong (one line on stderr, never a traceback); 3 AWS refused or could not be reached.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.settings import Settings, SettingsError, load_settings, parse_duration

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3

log = logging.getLogger(__name__)

# The Slack Web API client a command may read the directory or post with (when a bot token is set),
# built from the Services. The wiring provides it (iamwarden.cli), so the domain never imports the
# Slack layer and a command without a token never loads slack_sdk.
_slack_client: Callable[[Any], Any] | None = None


def provide_slack_client(factory: Callable[[Any], Any]) -> None:
    global _slack_client
    _slack_client = factory


def slack_client(services: Any) -> Any | None:
    """The Slack client for ``services`` if a bot token is set and the wiring provided one."""
    if services.settings.slack_bot_token is None:
        return None
    if _slack_client is None:
        log.warning("SLACK_BOT_TOKEN is set but no Slack client was provided (not run as iamwarden)")
        return None
    return _slack_client(services)


# Subcommand name -> (help, add_arguments, handler). Feature modules may add entries via `command`.
_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {}


def command(name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    def register_command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = (help_text, arguments or (lambda p: None), fn)
        return fn

    return register_command


def _settings(args: argparse.Namespace, *, require: tuple[str, ...] = ()) -> Settings:
    return load_settings(require=require)


def parse_instant(text: str, *, now: datetime, flag: str) -> datetime:
    """An ISO 8601 instant (a date means its midnight UTC; no offset means UTC) or a duration back
    from now (``24h``, ``7d``, ``90m``). Anything else is a SettingsError naming the flag."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None:
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if raw and not raw.isdigit():  # a bare number is ambiguous (seconds? a year?): refuse it
        try:
            return now - parse_duration(raw)
        except (ValueError, OverflowError):
            pass
    raise SettingsError(
        f"{flag}: '{text}' is neither an ISO 8601 time (2026-11-29, 2026-11-29T12:00:00+01:00) nor a duration (24h, 7d)"
    )


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--since", help="records at or after: an ISO 8601 time or a duration ago (24h, 7d)")
    parser.add_argument("--until", help="records before: an ISO 8601 time or a duration ago (24h, 7d)")


@command("audit", "Export the audit log (JSON Lines or CSV) to standard output.", _audit_arguments)
def cmd_audit(args: argparse.Namespace) -> int:
    # Lazy: only this command loads it, so other commands start light (see CLI_COMMANDS).
    from bot.store import Store

    now = datetime.now(UTC)
    since = parse_instant(args.since, now=now, flag="--since") if args.since is not None else None
    until = parse_instant(args.until, now=now, flag="--until") if args.until is not None else None
    settings = _settings(args)
    if not settings.db.exists():
        raise SettingsError(f"IAMWARDEN_DB: {settings.db} does not exist (no audit log to export)")
    store = Store(settings.db)

    def in_range(row: dict) -> bool:
        # Compared as instants, not strings: "+01:00" and "Z" spell the same moment differently.
        at = datetime.fromisoformat(str(row["at"]).replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return (since is None or at >= since) and (until is None or at < until)

    rows = (row for row in store.audit_rows() if in_range(row))
    fields = ["id", "at", "actor", "action", "request_id", "role", "account_id", "reason", "detail"]
    if args.format == "csv":
        # Lazy: the findings CSV's formula defusing, for the same reason (bot.queries is heavy).
        from bot.queries import csv_cell

        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            # Reasons and tickets are typed by requesters: a cell starting = + - @ must stay text.
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    else:
        for row in rows:
            if row.get("detail"):
                row["detail"] = json.loads(row["detail"])
            sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
    return EXIT_OK


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    # Lazy: only this command loads it, so other commands start light (see CLI_COMMANDS).
    from bot.permissions import FEATURE_POLICIES

    parser.add_argument(
        "features",
        nargs="*",
        metavar="FEATURE",
        help=f"one or more of {', '.join(FEATURE_POLICIES)} (default: what the config uses)",
    )
    parser.add_argument("--shipped", action="store_true", help="the policies/*.json files as shipped")
    parser.add_argument("--cloudformation", action="store_true", help="the CloudFormation template")


@command(
    "policy",
    "Print the bot's IAM policy documents this configuration needs (placeholders filled in).",
    _policy_arguments,
)
def cmd_policy(args: argparse.Namespace) -> int:
    # Lazy: only this command loads it, so other commands start light (see CLI_COMMANDS).
    from bot.permissions import FEATURE_POLICIES, cloudformation_json, enabled_features, render_policy

    if args.cloudformation:
        sys.stdout.write(cloudformation_json())
        return EXIT_OK
    unknown = [f for f in args.features if f not in FEATURE_POLICIES]
    if unknown:
        raise SettingsError(f"policy: unknown feature {unknown[0]!r}; known: {', '.join(FEATURE_POLICIES)}")
    settings = _settings(args)
    features = args.features or enabled_features(settings.config)
    documents = {
        FEATURE_POLICIES[f].file: (
            FEATURE_POLICIES[f].document() if args.shipped else render_policy(f, settings.config)
        )
        for f in features
    }
    json.dump(documents, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK
