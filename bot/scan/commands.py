"""``iamwarden scan`` and ``iamwarden checks`` (``@command``), and the demo's tour of the scan."""

from __future__ import annotations

import argparse
import csv
import gc
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from bot.checks.catalog import iter_checks
from bot.commands import EXIT_AWS, EXIT_FINDINGS, EXIT_OK, command, slack_client
from bot.findings import FindingStatus, Severity
from bot.scan.accounts import Progress
from bot.scan.orchestration import scan_accounts
from bot.scan.report import failure_text, public_findings, scan_document, write_csv, write_table
from bot.services import Services
from bot.settings import load_settings


def _stderr_progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None
    lock = threading.Lock()

    def show(account: str, phase: str) -> None:
        with lock:
            sys.stderr.write(f"\r\x1b[2K[{account}] {phase}")
            if phase.startswith(("done", "failed")):
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


@contextmanager
def _no_full_collections(enabled: bool) -> Iterator[None]:
    """No full garbage collections while one account is scanned in this process (young ones stay).

    A one-account CLI scan's heap is nearly all live data (the inventory being parsed, then its
    findings), and CPython runs a full collection each time the long-lived heap grows by a quarter:
    at 2,000 users it traversed that heap 8 times, 0.7 s of a 4 s scan, and freed almost nothing.
    An organization's scan keeps them: its accounts' botocore clients are cyclic garbage."""
    if not enabled:
        yield
        return
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        metavar="SEVERITY",
        help="exit 1 when an open finding is at or above this severity (critical, high, medium, low)",
    )


@command(
    "scan",
    "Scan the configured AWS account(s) and print the findings (no Slack settings needed).",
    _scan_arguments,
)
def cmd_scan(args: argparse.Namespace) -> int:
    settings = load_settings()
    # Checked before the database is opened: a scan that cannot start leaves nothing behind.
    if boto3.session.Session(region_name=settings.aws_region).get_credentials() is None:
        print(
            "iamwarden: no AWS credentials found (environment, AWS_PROFILE, container or instance role);"
            " nothing was scanned",
            file=sys.stderr,
        )
        return EXIT_AWS
    config = settings.config
    one_account = not config.organizations.enabled and len(config.accounts) <= 1
    with _no_full_collections(one_account):
        services = Services.from_settings(settings)
        try:
            return _scan(args, services, one_account=one_account)
        finally:
            services.store.close()  # done with it: the database is whole on disk (no -wal left)


def _scan(args: argparse.Namespace, services: Services, *, one_account: bool) -> int:
    directory = slack_client(services)  # the Slack directory, only with a token (see bot.commands)
    # One account's stored rows are kept for the output (not read back and re-modelled); an
    # organization's are read back account by account, as the bot's scans do.
    scans = scan_accounts(services, progress=_stderr_progress(), directory=directory, keep_rows=one_account)
    scanned_at = services.clock.now()
    if args.format == "json":
        # One string, one write: json.dump wrote each of ~3 million fragments of a 10,000-user
        # account's document to stdout on its own (a third of the scan's time after the checks).
        sys.stdout.write(json.dumps(scan_document(scans, scanned_at), indent=2) + "\n")
    elif args.format == "csv":
        write_csv(scans, sys.stdout)
    else:
        write_table(scans, sys.stdout)
    for s in scans:
        if s.error:
            print(
                f"iamwarden: {s.name or s.account_id or 'this account'}: {failure_text(s)}", file=sys.stderr
            )
    note = next((s.directory_note for s in scans if s.directory_note), None)
    if note:  # once per scan, not once per account
        print(f"iamwarden: {note}", file=sys.stderr)
    if args.fail_on:
        threshold = Severity(args.fail_on)
        if any(
            f["status"] == FindingStatus.FAIL
            and not f["suppressed"]
            and Severity(f["severity"]).at_least(threshold)
            for s in scans
            for f in public_findings(s)
        ):
            return EXIT_FINDINGS
    if any(s.error for s in scans):
        return EXIT_AWS
    return EXIT_OK


def _checks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


@command(
    "checks",
    "List the catalog of checks (id, severity, CIS controls, title) without running them.",
    _checks_arguments,
)
def cmd_checks(args: argparse.Namespace) -> int:
    checks = list(iter_checks())
    if args.format == "json":
        json.dump([c.describe() for c in checks], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if args.format == "csv":
        fields = [
            "id",
            "severity",
            "cis",
            "title",
            "theme",
            "needs",
            "risk",
            "remediation_console",
            "remediation_cli",
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for c in checks:
            row = c.describe()
            remediation = row.pop("remediation")
            row.update(remediation_console=remediation["console"], remediation_cli=remediation["cli"])
            writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})
        return EXIT_OK
    width = max(len(c.id) for c in checks)
    sys.stdout.write(f"{'CHECK'.ljust(width)}  SEVERITY  CIS        TITLE\n")
    for c in checks:
        cis = ",".join(c.cis) or "-"
        sys.stdout.write(f"{c.id.ljust(width)}  {c.severity.value.ljust(8)}  {cis.ljust(9)}  {c.title}\n")
    return EXIT_OK
