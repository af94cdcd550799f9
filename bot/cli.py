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
import sys
from collections.abc import Callable, Sequence

from bot.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3

# Modules that declare CLI commands with @command (scan, checks, digest live with their features).
CLI_MODULES: tuple[str, ...] = ("handlers.digest", "bot.scan")

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
    try:
        from bot.demo import run_demo
    except ImportError as exc:
        raise SettingsError(
            f"the demo needs the dev extra (pip install 'iamwarden[dev]'): {exc.name} is missing"
        ) from None
    configure_logging("WARNING")
    return run_demo(interactive=False if args.tour else None)


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--since", help="only records at or after this ISO 8601 time")


@command("audit", "Export the audit log (JSON Lines or CSV) to standard output.", _audit_arguments)
def cmd_audit(args: argparse.Namespace) -> int:
    from bot.store import Store

    settings = _settings(args)
    store = Store(settings.db)
    rows = store.audit_rows(since=args.since)
    fields = ["id", "at", "actor", "action", "request_id", "role", "account_id", "reason", "detail"]
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    else:
        for row in rows:
            if row.get("detail"):
                row["detail"] = json.loads(row["detail"])
            sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
    return EXIT_OK


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    for module in CLI_MODULES:  # feature modules register their own CLI commands
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="iamwarden", description="Keep AWS IAM healthy from Slack.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, arguments, handler) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"iamwarden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # ``python -m bot.cli``: run through the imported module, so the @command registrations of the
    # CLI_MODULES land in the same registry that builds the parser (not in __main__'s copy).
    from bot.cli import main as _main

    sys.exit(_main())
