"""The hygiene scan: collect each account's snapshot, run the catalog, store snapshot and findings.

``scan_accounts`` reads every configured account concurrently (a bounded pool); one account that
cannot be read is reported (a failed snapshot row and ``AccountScan.error``) while the others
complete. ``run_checks`` is the AWS-free half: inventory in, findings out (suppressions applied,
owners set). The CLI commands ``iamwarden scan`` and ``iamwarden checks`` live here too.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFactory, CallCounter, describe_aws_error, is_access_denied
from bot.checks.catalog import CheckContext, Owners, clear_scan_memo, iter_checks
from bot.cli import EXIT_AWS, EXIT_FINDINGS, EXIT_OK, command
from bot.findings import Finding, FindingStatus, Severity, apply_retention, save_snapshot, sort_findings
from bot.inventory import CLIENT_LOCK, CollectError, Inventory, collect
from bot.permissions import suppress_own_principal
from bot.settings import AccountConfig, Config, SuppressionConfig
from bot.store import iso

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (account id or name, phase)


@dataclass
class AccountTarget:
    """One account to read: its id (None = whoever the credentials belong to) and how to reach it."""

    account_id: str | None
    name: str = ""
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.account_id or "this account"


@dataclass
class AccountScan:
    account_id: str
    snapshot_id: int | None
    findings: list[Finding]
    api_calls: int
    error: str | None = None
    name: str = ""
    scanned_at: datetime | None = None
    inventory: Inventory | None = field(default=None, repr=False)
    # What the scan says once about the Slack directory (why ownership could not be evaluated).
    directory_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- checks without AWS


def _suppression_expired(rule: SuppressionConfig, now: datetime) -> bool:
    if not rule.expires:
        return False
    try:
        expires = datetime.fromisoformat(rule.expires.replace("Z", "+00:00"))
    except ValueError:
        return True  # an unreadable expiry never hides a finding
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=now.tzinfo)
    return expires <= now


def _suppression_matches(rule: SuppressionConfig, finding: Finding) -> bool:
    if rule.fingerprint:
        return rule.fingerprint == finding.fingerprint
    if not rule.check_id or rule.check_id != finding.check_id:
        return False
    if rule.principal is None or rule.principal == "*":
        return True
    return rule.principal in (finding.principal_arn, finding.principal_name)


def apply_suppressions(
    findings: Iterable[Finding], rules: Iterable[SuppressionConfig], *, now: datetime
) -> list[Finding]:
    """Mark findings matched by an unexpired rule as suppressed (listed, never hidden)."""
    live = [r for r in rules if not _suppression_expired(r, now)]
    out = []
    for finding in findings:
        rule = next((r for r in live if _suppression_matches(r, finding)), None)
        if rule is not None:
            until = f" (until {rule.expires})" if rule.expires else ""
            finding = finding.model_copy(
                update={"suppressed": True, "suppression_reason": rule.reason + until}
            )
        out.append(finding)
    return out


def run_checks(
    inventory: Mapping[str, Any],
    config: Config,
    *,
    now: datetime,
    owners: Owners | None = None,
    known_accounts: Iterable[str] = (),
) -> list[Finding]:
    """Every check of the catalog over one snapshot; suppressions applied, owners set when known.

    ``known_accounts`` are account ids that are ours besides ``[[accounts]]`` (the organization's
    members found by the scan): a role trusting one of them is not trusting an outside account.
    """
    known = frozenset(known_accounts) | {a.id for a in config.accounts}
    ctx = CheckContext(inventory=inventory, config=config, now=now, owners=owners, known_accounts=known)
    findings: list[Finding] = []
    for check in iter_checks():
        findings.extend(check.run(ctx))
    return sort_findings(apply_suppressions(findings, config.suppressions, now=now))


# --------------------------------------------------------------------------- accounts


def _organization_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    org = aws.client("organizations")
    management = org.describe_organization()["Organization"].get("MasterAccountId")
    targets = []
    for page in org.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts") or []:
            if account.get("Status", "ACTIVE") != "ACTIVE" or account["Id"] in config.organizations.exclude:
                continue
            role = (
                None
                if account["Id"] == management
                else f"arn:aws:iam::{account['Id']}:role/{config.organizations.audit_role_name}"
            )
            targets.append(AccountTarget(account["Id"], account.get("Name", ""), role))
    return targets


def account_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    """Accounts to scan: ``[[accounts]]``, plus AWS Organizations members when enabled; else our own."""
    targets: dict[str, AccountTarget] = {}
    if config.organizations.enabled:
        for target in _organization_targets(aws, config):
            targets[target.account_id or ""] = target
    for account in config.accounts:
        targets[account.id] = _target_of(account)
    return list(targets.values()) or [AccountTarget(None)]


def _target_of(account: AccountConfig) -> AccountTarget:
    return AccountTarget(account.id, account.name, account.role_arn, account.external_id)


def _collect_one(
    base: AwsFactory,
    target: AccountTarget,
    *,
    clock: Any,
    progress: Progress | None,
    sleep: Callable[[float], None] | None,
) -> tuple[AccountTarget, Inventory | None, int, str | None]:
    counter = CallCounter()
    aws = base.with_counter(counter)
    say = (lambda phase: progress(target.label, phase)) if progress else None
    try:
        if target.role_arn:
            if say:
                say("assuming " + target.role_arn)
            with CLIENT_LOCK:  # for_role makes an STS client from a session other threads share
                aws = aws.for_role(target.role_arn, external_id=target.external_id)
        kwargs: dict[str, Any] = {"account_id": target.account_id, "clock": clock, "progress": say}
        if sleep is not None:
            kwargs["sleep"] = sleep
        inventory = collect(aws, **kwargs)
        inventory["api_calls"] = counter.total  # the assume-role call counts too
        inventory["api_calls_by_operation"] = dict(counter.by_operation)
        return target, inventory, counter.total, None
    except CollectError as exc:
        return target, None, counter.total, str(exc)
    except (ClientError, BotoCoreError) as exc:
        what = f"assuming {target.role_arn}" if target.role_arn else "reading the account"
        message = describe_aws_error(exc, what)
        if target.role_arn and is_access_denied(exc):
            # AssumeRole needs both halves: our permission and the member role's trust. The trust
            # policy is the usual culprit (a role made before the bot, or by another stack).
            message += (
                f" Most often the member role's trust policy does not admit the bot's role: "
                f"add the bot's role ARN as a Principal of {target.role_arn}'s trust policy."
            )
        return target, None, counter.total, message
    except Exception as exc:  # one broken account must not stop the others
        log.exception("scanning %s failed", target.label)
        return target, None, counter.total, f"scanning failed: {type(exc).__name__}"


def _identity_map(
    services: Any, inventories: dict[str, Inventory], unavailable: str | None = None
) -> Owners | None:
    """``bot.identity.IdentityMap`` when that module exists and someone is known; else None."""
    try:
        identity = importlib.import_module("bot.identity")
    except ModuleNotFoundError:
        return None
    try:
        owners = identity.IdentityMap.build(services.config, services.store, inventories)
        owners.unavailable = unavailable
        return owners
    except Exception:  # owners are a nicety: a broken directory must not fail the scan
        log.exception("building the identity map failed; findings will have no owner")
        return None


def _own_principal(aws: AwsFactory) -> list[str]:
    """The bot's own ARN, so its findings are recognised as by design (none when unknown)."""
    try:
        return [aws.client("sts", counter=CallCounter()).get_caller_identity()["Arn"]]
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "could not tell the bot's own principal: %s", describe_aws_error(exc, "GetCallerIdentity")
        )
        return []


def _directory_for_scan(services: Any, directory: Any) -> Any:
    """Refresh a stale Slack directory first (``bot.identity.directory_for_scan``); None if absent."""
    try:
        identity = importlib.import_module("bot.identity")
        return identity.directory_for_scan(services, directory)
    except ModuleNotFoundError:
        return None
    except Exception:  # a broken directory must not fail the scan; the checks say "could not evaluate"
        log.exception("preparing the Slack directory failed")
        return None


def scan_accounts(
    services: Any,
    *,
    progress: Progress | None = None,
    targets: list[AccountTarget] | None = None,
    sleep: Callable[[float], None] | None = None,
    directory: Any = None,
) -> list[AccountScan]:
    """Scan every configured account concurrently; store each snapshot; return one result per account.

    A failed account is stored as a snapshot with status "failed" and its error, and returned with
    ``error`` set; the others complete. Findings carry owners when ``bot.identity`` can tell.
    ``directory`` reads Slack's ``users.list`` (the bot's WebClient): a stale directory is refreshed
    before the checks run; without one the cached directory is used, and ``directory_note`` says why
    ownership could not be evaluated when it could not.
    """
    try:
        scans = _scan_accounts(services, progress=progress, targets=targets, sleep=sleep, directory=directory)
        apply_retention(services.store, services.config.scan, now=services.clock.now())
        return scans
    finally:
        clear_scan_memo()  # memory stays flat across the scans of a long-running bot


def _scan_accounts(
    services: Any,
    *,
    progress: Progress | None,
    targets: list[AccountTarget] | None,
    sleep: Callable[[float], None] | None,
    directory: Any,
) -> list[AccountScan]:
    config: Config = services.config
    now = services.clock.now()
    if targets is None:
        try:
            targets = account_targets(services.aws, config)
        except (ClientError, BotoCoreError) as exc:
            error = describe_aws_error(exc, "listing the organization's accounts")
            return [AccountScan(account_id="", snapshot_id=None, findings=[], api_calls=0, error=error)]
    workers = max(1, min(config.scan.max_workers, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        collected = list(
            pool.map(
                lambda t: _collect_one(services.aws, t, clock=services.clock, progress=progress, sleep=sleep),
                targets,
            )
        )
    inventories = {inv["account_id"]: inv for _, inv, _, _ in collected if inv is not None}
    own = _own_principal(services.aws) if inventories else []
    known_accounts = {t.account_id for t in targets if t.account_id} | set(inventories)
    prepared = _directory_for_scan(services, directory)
    owners = _identity_map(services, inventories, prepared.unavailable if prepared else None)
    note = prepared.note if prepared else None
    results: list[AccountScan] = []
    for target, inventory, calls, error in collected:
        account_id = inventory["account_id"] if inventory else (target.account_id or "")
        if inventory is None:
            if progress:
                progress(target.label, "failed: " + (error or ""))
            snapshot_id = save_snapshot(
                services.store,
                account_id=account_id,
                account_name=target.name,
                scanned_at=now,
                api_calls=calls,
                inventory=None,
                findings=[],
                status="failed",
                error=error,
            )
            results.append(
                AccountScan(account_id, snapshot_id, [], calls, error, target.name, now, directory_note=note)
            )
            continue
        if progress:
            progress(target.label, "checks")
        findings = run_checks(inventory, config, now=now, owners=owners, known_accounts=known_accounts)
        findings = suppress_own_principal(findings, [*own, *([target.role_arn] if target.role_arn else [])])
        snapshot_id = save_snapshot(
            services.store,
            account_id=account_id,
            account_name=target.name,
            scanned_at=now,
            api_calls=calls,
            inventory=inventory,
            findings=findings,
        )
        if progress:
            progress(target.label, f"done: {len(findings)} findings, {calls} API calls")
        results.append(
            AccountScan(
                account_id,
                snapshot_id,
                findings,
                calls,
                None,
                target.name,
                now,
                inventory,
                directory_note=note,
            )
        )
    return results


# --------------------------------------------------------------------------- report


def summary_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Open (failed, unsuppressed) findings per severity, plus "unknown" and "suppressed"."""
    counts = {s.value: 0 for s in Severity} | {"unknown": 0, "suppressed": 0}
    for f in findings:
        if f.suppressed:
            counts["suppressed"] += 1
        elif f.status == FindingStatus.UNKNOWN:
            counts["unknown"] += 1
        else:
            counts[f.severity.value] += 1
    return counts


def summary_line(scan: AccountScan) -> str:
    if scan.error:
        return f"{scan.name or scan.account_id or 'this account'}: could not be scanned: {scan.error}"
    c = summary_counts(scan.findings)
    parts = [f"{c[s.value]} {s.value}" for s in Severity if c[s.value]]
    tail = []
    if c["unknown"]:
        tail.append(f"{c['unknown']} could not evaluate")
    if c["suppressed"]:
        tail.append(f"{c['suppressed']} suppressed")
    head = ", ".join(parts) if parts else "no open findings"
    label = f"{scan.account_id}" + (f" ({scan.name})" if scan.name else "")
    return f"{label}: {head}" + (f"; {', '.join(tail)}" if tail else "") + f" · {scan.api_calls} API calls"


def _requests_by_operation(scan: AccountScan) -> dict[str, int]:
    return dict((scan.inventory or {}).get("api_calls_by_operation") or {})


def scan_document(scans: list[AccountScan], scanned_at: datetime) -> dict[str, Any]:
    """The findings JSON document (DESIGN.md): accounts, scanned_at, api_calls, findings.

    ``api_calls`` counts HTTP requests sent, retries included; ``api_requests_by_operation``
    breaks them down (``"iam:GetAccountAuthorizationDetails": 3``)."""
    by_operation: dict[str, int] = {}
    for s in scans:
        for operation, count in _requests_by_operation(s).items():
            by_operation[operation] = by_operation.get(operation, 0) + count
    doc: dict[str, Any] = {
        "scanned_at": iso(scanned_at),
        "api_calls": sum(s.api_calls for s in scans),
        "api_requests_by_operation": dict(sorted(by_operation.items())),
        "accounts": [
            {
                "account_id": s.account_id,
                "name": s.name,
                "snapshot_id": s.snapshot_id,
                "api_calls": s.api_calls,
                "api_requests_by_operation": dict(sorted(_requests_by_operation(s).items())),
                "status": "ok" if s.ok else "failed",
                "error": s.error,
            }
            for s in scans
        ],
        "findings": [f.public() for s in scans for f in s.findings],
    }
    if len(scans) == 1:
        doc["account_id"] = scans[0].account_id
    return doc


CSV_FIELDS = [
    "account_id",
    "check_id",
    "severity",
    "status",
    "principal_arn",
    "principal_name",
    "title",
    "detail",
    "cis",
    "owner",
    "fingerprint",
    "suppressed",
    "suppression_reason",
    "remediation",
]


def _write_csv(scans: list[AccountScan], out: Any) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for s in scans:
        for f in s.findings:
            row = f.public()
            row["cis"] = " ".join(row["cis"])
            writer.writerow(row)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_table(scans: list[AccountScan], out: Any) -> None:
    rows = []
    for s in scans:
        for f in s.findings:
            mark = (
                "suppressed"
                if f.suppressed
                else ("?unknown" if f.status == FindingStatus.UNKNOWN else f.severity.value)
            )
            rows.append(
                (mark, f.check_id, f.account_id, _clip(f.principal_name or "-", 28), _clip(f.detail, 90))
            )
    header = ("SEVERITY", "CHECK", "ACCOUNT", "PRINCIPAL", "DETAIL")
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for r in [header, *rows]:
            out.write("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] + "\n")
        out.write("\n")
    for s in scans:
        out.write(summary_line(s) + "\n")


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
    from bot.services import Services
    from bot.settings import load_settings

    settings = load_settings()
    import boto3

    # Checked before the database is opened: a scan that cannot start leaves nothing behind.
    if boto3.session.Session(region_name=settings.aws_region).get_credentials() is None:
        print(
            "iamwarden: no AWS credentials found (environment, AWS_PROFILE, container or instance role);"
            " nothing was scanned",
            file=sys.stderr,
        )
        return EXIT_AWS
    services = Services.from_settings(settings)
    directory = None
    if settings.slack_bot_token is not None:
        from bot.app import build_client  # wiring: the Slack Web API client, only with a token

        directory = build_client(services)
    scans = scan_accounts(services, progress=_stderr_progress(), directory=directory)
    scanned_at = services.clock.now()
    if args.format == "json":
        json.dump(scan_document(scans, scanned_at), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "csv":
        _write_csv(scans, sys.stdout)
    else:
        _write_table(scans, sys.stdout)
    for s in scans:
        if s.error:
            print(f"iamwarden: {s.name or s.account_id or 'this account'}: {s.error}", file=sys.stderr)
    note = next((s.directory_note for s in scans if s.directory_note), None)
    if note:  # once per scan, not once per account
        print(f"iamwarden: {note}", file=sys.stderr)
    if args.fail_on:
        threshold = Severity(args.fail_on)
        if any(
            f.status == FindingStatus.FAIL and not f.suppressed and f.severity.at_least(threshold)
            for s in scans
            for f in s.findings
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


# --------------------------------------------------------------------------- the demo's tour


def demo_tour(session: Any) -> None:
    """The demo (``bot.demo.TOUR``): ``iamwarden scan`` of the demo account, as the terminal shows it."""
    session.say("\n── The hygiene scan: `iamwarden scan` reads the demo account in a few bulk calls ──")
    [scan] = scan_accounts(session.services)
    if scan.error:
        session.say(f"  {summary_line(scan)}")
        return
    out = io.StringIO()
    _write_table([scan], out)
    lines = out.getvalue().splitlines()
    shown = [line for line in lines if line.strip()]
    for line in shown[:-1][:14]:
        session.say("  " + line)
    if len(shown) - 1 > 14:
        session.say(f"  … {len(shown) - 15} more (iamwarden scan --format json|csv has them all)")
    session.say("  " + shown[-1])
    session.say(
        f"  Stored as snapshot {scan.snapshot_id}: answers, digests and alerts read it, never AWS live."
    )
