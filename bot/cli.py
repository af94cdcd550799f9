"""The ``iamwarden`` command line: run, scan, digest, demo, checks, audit.

Exit codes: 0 ok; 1 ``scan --fail-on`` found findings at or above the threshold; 2 a setting or an
argument is wrong (one line on stderr, never a traceback); 3 AWS refused or could not be reached.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.settings import Settings, SettingsError, load_settings, parse_duration

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3

# Command name -> the module that declares it with @command (scan, checks, digest live with their
# features). The CLI imports only the chosen command's module, so `iamwarden scan` loads no Slack
# library, scheduler or web server; `iamwarden --help` imports them all to list every command.
CLI_COMMANDS: dict[str, str] = {
    "run": "bot.cli",
    "demo": "bot.cli",
    "audit": "bot.cli",
    "policy": "bot.cli",
    "scan": "bot.scan.commands",
    "checks": "bot.scan.commands",
    "digest": "handlers.digest",
    "check": "handlers.readiness",
}
CLI_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m in CLI_COMMANDS.values() if m != "bot.cli"))

# Subcommand name -> (help, add_arguments, handler). Feature modules may add entries via `command`.
_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {}


def command(name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    def register_command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = (help_text, arguments or (lambda p: None), fn)
        return fn

    return register_command


class _RedactingFormatter(logging.Formatter):
    """Last line of defence: tokens and AWS secrets never reach a log line."""

    import re as _re

    _PATTERNS = (
        _re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
        _re.compile(r"xapp-[A-Za-z0-9-]+"),
        _re.compile(
            r"(?i)(aws_secret_access_key|secretaccesskey|sessiontoken|aws_session_token)(['\"=:\s]+)[^\s'\",]+"
        ),
    )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for pattern in self._PATTERNS:
            text = pattern.sub(
                lambda m: (m.group(1) + m.group(2) + "[redacted]") if m.lastindex else "[redacted]", text
            )
        return text


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "werkzeug", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _settings(args: argparse.Namespace, *, require: tuple[str, ...] = ()) -> Settings:
    return load_settings(require=require)


@command("run", "Run the bot (Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on IAMWARDEN_PORT).")
def cmd_run(args: argparse.Namespace) -> int:
    # Lazy: only this command loads it, so other commands start light (see CLI_COMMANDS).
    from bot.app import run
    from bot.services import Services

    settings = _settings(args, require=("slack_bot_token",))
    configure_logging(settings.log_level)
    run(Services.from_settings(settings))
    return EXIT_OK


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tour", action="store_true", help="run the scripted tour even on a terminal")


@command(
    "demo",
    "Run the bot on its embedded default: a demo AWS account (moto) and a terminal stand-in for Slack.",
    _demo_arguments,
)
def cmd_demo(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    # moto is imported only once the demo starts its sandbox: look for it first (the image's
    # runtime-only install has no moto, and must say so in one line, not a traceback).
    missing = next((m for m in ("moto", "flask") if find_spec(m) is None), None)
    if missing:
        raise SettingsError(
            f"the demo needs the dev extra (pip install 'iamwarden[dev]'): {missing} is missing"
        )
    # Lazy: only this command loads it, so other commands start light (see CLI_COMMANDS).
    from bot.demo import run_demo

    configure_logging("WARNING")
    return run_demo(interactive=False if args.tour else None)


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
        from bot.answers import _csv_cell  # the findings CSV's formula defusing, for the same reason

        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            # Reasons and tickets are typed by requesters: a cell starting = + - @ must stay text.
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
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


def _chosen_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = ()) -> argparse.ArgumentParser:
    chosen = CLI_COMMANDS.get(_chosen_command(argv) or "")
    # Feature modules register their own CLI commands: load only the chosen one's (all for --help).
    for module in [chosen] if chosen else CLI_MODULES:
        importlib.import_module(module)
    parser = _Parser(prog="iamwarden", description="Keep AWS IAM healthy from Slack.")
    parser.add_argument("--version", action="version", version=f"iamwarden {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, arguments, handler) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(handler=handler)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iamwarden")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Commands that do not read this deployment's settings (the demo brings its own).
NO_SETTINGS = frozenset({"demo", "checks"})
# Commands for which a config that cannot post or approve anything is worth a warning.
WARN_USELESS = frozenset({"run"})  # `check` shows them in its table
# Settings a command cannot start without, checked with the rest (a missing one is the error shown).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {"run": ("slack_bot_token",)}


def check_configuration(command_name: str) -> Settings:
    """Load and validate the whole configuration (environment and TOML) before any command runs;
    print each warning (a valid config that cannot do anything useful) as one line on stderr."""
    settings = load_settings(require=REQUIRED_SETTINGS.get(command_name, ()))
    if command_name in WARN_USELESS:
        for warning in settings.config.warnings():
            print(f"iamwarden: warning: {warning}", file=sys.stderr)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command not in NO_SETTINGS and not getattr(args, "cloudformation", False):
            check_configuration(args.command)
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except SettingsError as exc:
        print(f"iamwarden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`iamwarden checks --format json | head`): stop quietly. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # ``python -m bot.cli``: run through the imported module, so the @command registrations of the
    # CLI_MODULES land in the same registry that builds the parser (not in __main__'s copy).
    from bot.cli import main as _main

    sys.exit(_main())
