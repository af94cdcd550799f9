"""The ``iamwarden`` command line: builds the parser from every feature's ``@command`` and runs
the chosen one (``run`` and ``demo`` are declared here; see bot/commands.py for the API).

Exit codes: 0 ok; 1 ``scan --fail-on`` found findings at or above the threshold; 2 a setting or an
argument is wrong (one line on stderr, never a traceback); 3 AWS refused or could not be reached.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from bot.access.redaction import SCRUBBER
from bot.commands import (
    _COMMANDS,
    EXIT_AWS,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    _settings,
    command,
    provide_slack_client,
)
from bot.settings import Settings, SettingsError, load_settings
from iamwarden.features import CLI_COMMANDS

__all__ = ["CLI_COMMANDS", "EXIT_AWS", "EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "main", "run"]

# Command name -> the module that declares it with @command (each feature's ``commands`` in
# bot/features.py). The CLI imports only the chosen command's module, so `iamwarden scan` loads no
# Slack library, scheduler or web server; `iamwarden --help` imports them all to list every command.
CLI_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m in CLI_COMMANDS.values() if m != __name__))


def _slack_client(services: object) -> object:
    from handlers.client import build_client  # lazy: slack_sdk only for a command that has a token

    return build_client(services)


provide_slack_client(_slack_client)


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
        # Every record, from any logger (a filter on the logger "bot.access" does not see records of
        # its children such as "bot.access.grant"), tracebacks included: the live session secrets
        # the bot issued, then the patterns below.
        text = SCRUBBER.scrub(super().format(record))
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


@command("run", "Run the bot (Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on IAMWARDEN_PORT).")
def cmd_run(args: argparse.Namespace) -> int:
    # Lazy: only this command loads the Bolt app, so other commands start light (see CLI_COMMANDS).
    from bot.services import Services  # lazy: boto3 and the store, for this command only
    from iamwarden.app import run  # lazy: the Bolt app and the web server, for this command only

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

    # The sandbox (top-level ``sandbox/``) and moto come with the demo extra, not with the product:
    # look for them first (the image's runtime-only install has neither, and must say so in one
    # line, not a traceback).
    missing = next((m for m in ("sandbox", "moto", "flask") if find_spec(m) is None), None)
    if missing:
        raise SettingsError(
            f"the demo needs the demo extra (pip install 'iamwarden[demo]'): {missing} is missing"
        )
    from sandbox.demo import run_demo  # lazy: only the demo loads the sandbox (and moto)

    configure_logging("WARNING")
    return run_demo(interactive=False if args.tour else None)


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
    # In the order of bot/features.py (run, demo, audit, policy, scan, …), whatever the import order.
    order = {name: i for i, name in enumerate(CLI_COMMANDS)}
    for name, (help_text, arguments, handler) in sorted(_COMMANDS.items(), key=lambda c: order.get(c[0], 99)):
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


def run() -> None:
    """The ``iamwarden`` program: ``main`` on the command line, then exit with its code. The heap is
    frozen first: the interpreter's collections at exit traversed all of it (0.2 s after a 2,000-user
    scan) only to free what the process's end frees anyway."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    # ``python -m iamwarden.cli``: run through the imported module, so the @command registrations
    # land in the same registry that builds the parser (not in __main__'s copy).
    from iamwarden.cli import run as _run  # the imported module, not __main__ (see above)

    _run()
