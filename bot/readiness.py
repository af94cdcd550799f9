"""``iamwarden check``, the AWS and local half: is this deployment ready, proven without changing
anything? Configuration, the database, the bot's AWS identity, every configured account, and each
enabled feature's permissions, probed by calling the read APIs that feature uses.

Probes are read-only. Where a feature's only calls are writes (revocation, offboarding), the probe
is a read on the same resource scope that needs the same policy document: e.g. ``ListAccessKeys``
for a user that does not exist answers NoSuchEntity when allowed and AccessDenied when not.
The Slack half (token, channel membership) is ``handlers.readiness``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.access import REVOCATION_POLICY_NAME
from bot.alerts.sources import queue_region
from bot.aws import RETRY_CONFIG, AwsFactory, describe_aws_error, error_code, is_access_denied
from bot.inventory import OPTIONAL_RETRIES
from bot.permissions import enabled_features
from bot.settings import Settings


class Status(StrEnum):
    OK = "ok"
    FAIL = "FAIL"  # not ready: the feature will not work
    WARN = "warn"  # works, but something is missing or could not be verified
    SKIP = "skip"  # not configured


@dataclass(frozen=True)
class Row:
    area: str
    item: str
    status: Status
    detail: str


def ready(rows: list[Row]) -> bool:
    return not any(r.status == Status.FAIL for r in rows)


def format_table(rows: list[Row]) -> str:
    header = ("AREA", "ITEM", "STATUS", "DETAIL")
    cells = [header, *((r.area, r.item, r.status.value, r.detail) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    return "".join("  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] + "\n" for c in cells)


# --------------------------------------------------------------------------- local


def config_rows(settings: Settings) -> list[Row]:
    source = str(settings.config_file) if settings.config_file else "defaults (IAMWARDEN_CONFIG unset)"
    rows = [Row("config", "settings", Status.OK, f"valid: {source}")]
    rows += [Row("config", "usefulness", Status.WARN, warning) for warning in settings.config.warnings()]
    return rows


def database_row(path: Path) -> Row:
    """Writable without writing: an exclusive write lock taken and released with nothing changed."""
    if not path.exists():
        parent = path.expanduser().parent
        if os.access(parent, os.W_OK):
            return Row("database", str(path), Status.OK, f"will be created in {parent} (writable)")
        return Row("database", str(path), Status.FAIL, f"{parent} is not writable")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return Row("database", str(path), Status.FAIL, f"not writable: {exc}")
    return Row("database", str(path), Status.OK, "writable")


# --------------------------------------------------------------------------- AWS

Probe = Callable[[], Any]


def _probe(
    area: str,
    item: str,
    probe: Probe,
    *,
    allowed_errors: tuple[str, ...] = (),
    missing: str | None = None,
    what: str,
) -> Row:
    """Run one read; ok when it answers (or answers an error that proves permission, e.g. NoSuchEntity).
    ``missing``: what to say when AWS answers NoSuchEntity for something that must exist."""
    try:
        probe()
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        if code in allowed_errors:
            return Row(area, item, Status.OK, f"allowed ({code}: nothing to read, as expected)")
        if missing and code in ("NoSuchEntity", "NoSuchEntityException"):
            return Row(area, item, Status.FAIL, missing)
        if is_access_denied(exc):
            return Row(area, item, Status.FAIL, describe_aws_error(exc, what))
        return Row(area, item, Status.WARN, "could not verify: " + describe_aws_error(exc, what))
    return Row(area, item, Status.OK, "allowed")


def _scan_probes(iam: Any, analyzer: Any) -> list[tuple[str, Probe, tuple[str, ...]]]:
    return [
        ("iam:GetAccountAuthorizationDetails", lambda: iam.get_account_authorization_details(MaxItems=1), ()),
        (
            "iam:GetCredentialReport",
            iam.get_credential_report,
            ("ReportNotPresent", "ReportExpired", "ReportInProgress"),
        ),
        ("iam:ListRoles", lambda: iam.list_roles(MaxItems=1), ()),
        ("iam:ListPolicies", lambda: iam.list_policies(Scope="AWS", OnlyAttached=True, MaxItems=1), ()),
        ("iam:GetAccountSummary", iam.get_account_summary, ()),
        ("iam:GetAccountPasswordPolicy", iam.get_account_password_policy, ("NoSuchEntity",)),
        ("iam:ListVirtualMFADevices", lambda: iam.list_virtual_mfa_devices(MaxItems=1), ()),
        ("access-analyzer:ListAnalyzers", lambda: analyzer.list_analyzers(maxResults=1), ()),
    ]


def aws_rows(settings: Settings, aws: AwsFactory) -> list[Row]:
    """Identity, accounts and each enabled feature's permissions, as read-only probes."""
    config = settings.config
    try:
        identity = aws.client("sts").get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        return [Row("aws", "identity", Status.FAIL, describe_aws_error(exc, "GetCallerIdentity"))]
    rows = [Row("aws", "identity", Status.OK, f"{identity['Arn']} in {identity['Account']}")]
    features = enabled_features(config)
    iam = aws.client("iam")
    # Optional source: as in the scan, a few retries and then "could not verify", not a stall.
    analyzer = aws.session.client(
        "accessanalyzer", region_name=aws.region, config=RETRY_CONFIG.merge(OPTIONAL_RETRIES)
    )
    for action, probe, allowed in _scan_probes(iam, analyzer):
        row = _probe("scan", action, probe, allowed_errors=allowed, what=action)
        if action.startswith("access-analyzer") and row.status == Status.FAIL:
            row = Row(
                row.area, row.item, Status.WARN, row.detail + " (optional: its checks say could not evaluate)"
            )
        rows.append(row)
    if "jit" in features:
        for role in config.roles:
            name = role.arn.rsplit("/", 1)[-1]
            target = iam if role.account_id in ("", identity["Account"]) else None
            if target is None:
                rows.append(
                    Row(
                        "jit",
                        role.name,
                        Status.SKIP,
                        f"in account {role.account_id}: checked through its reader role",
                    )
                )
                continue
            rows.append(
                _probe(
                    "jit",
                    f"{role.name}: iam:GetRole",
                    lambda n=name: iam.get_role(RoleName=n),
                    missing=f"role {role.arn} does not exist",
                    what="iam:GetRole",
                )
            )
            rows.append(
                _probe(
                    "jit",
                    f"{role.name}: iam:GetRolePolicy",
                    lambda n=name: iam.get_role_policy(RoleName=n, PolicyName=REVOCATION_POLICY_NAME),
                    allowed_errors=("NoSuchEntity",),
                    what="iam:GetRolePolicy (revocation)",
                )
            )
    offboarding = _probe(
        "offboarding",
        "iam:ListAccessKeys",
        lambda: iam.list_access_keys(UserName="iamwarden-readiness-probe"),
        allowed_errors=("NoSuchEntity",),
        what="iam:ListAccessKeys",
    )
    if offboarding.status == Status.FAIL:  # opt-in: without it "Disable access" says AWS denied it
        offboarding = Row(offboarding.area, offboarding.item, Status.WARN, offboarding.detail + " (opt-in)")
    rows.append(offboarding)
    if "alerts" in features:
        if config.alerts.queue_url:
            region = queue_region(config.alerts.queue_url) or aws.region
            sqs = AwsFactory(region=region, session=aws.session).client("sqs")
            rows.append(
                _probe(
                    "alerts",
                    "sqs:GetQueueAttributes",
                    lambda: sqs.get_queue_attributes(
                        QueueUrl=config.alerts.queue_url, AttributeNames=["QueueArn"]
                    ),
                    what="sqs:GetQueueAttributes on the alerts queue",
                )
            )
        if config.alerts.lookup_events:
            trail = AwsFactory(region=config.alerts.lookup_region, session=aws.session).client("cloudtrail")
            rows.append(
                _probe(
                    "alerts",
                    "cloudtrail:LookupEvents",
                    lambda: trail.lookup_events(MaxResults=1),
                    what="cloudtrail:LookupEvents",
                )
            )
    rows += account_rows(settings, aws, identity["Account"])
    return rows


def account_rows(settings: Settings, aws: AwsFactory, own_account: str) -> list[Row]:
    config = settings.config
    rows: list[Row] = []
    targets = [(a.id, a.name, a.role_arn, a.external_id) for a in config.accounts]
    if config.organizations.enabled:
        org = aws.client("organizations")
        try:
            accounts = [a for page in org.get_paginator("list_accounts").paginate() for a in page["Accounts"]]
        except (ClientError, BotoCoreError) as exc:
            rows.append(
                Row(
                    "accounts",
                    "organization",
                    Status.FAIL,
                    describe_aws_error(exc, "organizations:ListAccounts"),
                )
            )
            accounts = []
        else:
            rows.append(Row("accounts", "organization", Status.OK, f"{len(accounts)} accounts listed"))
        for account in accounts:
            if account.get("Status", "ACTIVE") != "ACTIVE" or account["Id"] in config.organizations.exclude:
                continue
            if account["Id"] == own_account or any(t[0] == account["Id"] for t in targets):
                continue
            role = f"arn:aws:iam::{account['Id']}:role/{config.organizations.audit_role_name}"
            targets.append((account["Id"], account.get("Name", ""), role, None))
    for account_id, name, role_arn, external_id in targets:
        label = f"{account_id}" + (f" ({name})" if name else "")
        if not role_arn or account_id == own_account:
            rows.append(Row("accounts", label, Status.OK, "read with the bot's own credentials"))
            continue
        try:
            reader = aws.for_role(role_arn, session_name="iamwarden-check", external_id=external_id)
            seen = reader.client("sts").get_caller_identity()["Account"]
            reader.client("iam").get_account_summary()
        except (ClientError, BotoCoreError) as exc:
            rows.append(Row("accounts", label, Status.FAIL, describe_aws_error(exc, f"assuming {role_arn}")))
            continue
        if seen != account_id:
            rows.append(
                Row("accounts", label, Status.FAIL, f"{role_arn} is in account {seen}, not {account_id}")
            )
        else:
            rows.append(Row("accounts", label, Status.OK, f"reachable through {role_arn}"))
    return rows
