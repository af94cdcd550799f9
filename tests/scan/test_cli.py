"""``iamwarden scan`` / ``iamwarden checks`` as a CI job would run them (a subprocess each)."""

from __future__ import annotations

import csv
import gc
import io
import json
import re

import boto3
import pytest

from bot.scan.commands import _no_full_collections
from sandbox.aws import RootAccount
from tests.scan.support import ROOT, SELF_TRUST, create_organization, run_cli, seed_small
from tests.scan_helpers import ACCOUNT_ID, allow, days_ago, doc

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


def test_cli_scan_json_document_needs_no_slack_settings(aws, clock, tmp_path):
    seed_small(aws, clock)
    result = run_cli(tmp_path, "scan", "--format", "json")
    assert result.returncode == 0, result.stderr
    # The program exits with its heap frozen, but the store is closed first: the database is whole.
    assert (tmp_path / "cli.db").exists() and not (tmp_path / "cli.db-wal").exists()
    document = json.loads(result.stdout)
    assert document["account_id"] == ACCOUNT_ID
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", document["scanned_at"])
    assert 0 < document["api_calls"] <= 25
    assert sum(document["api_requests_by_operation"].values()) == document["api_calls"]
    assert document["api_requests_by_operation"]["iam:GetAccountAuthorizationDetails"] >= 1
    assert [a["status"] for a in document["accounts"]] == ["ok"]
    got = {(f["check_id"], f["principal_name"]) for f in document["findings"] if f["status"] == "fail"}
    assert {("USER_CONSOLE_NO_MFA", "bob"), ("ROLE_TRUST_PUBLIC", "open")} <= got
    finding = next(f for f in document["findings"] if f["check_id"] == "USER_CONSOLE_NO_MFA")
    for key in (
        "check_id",
        "severity",
        "principal_arn",
        "principal_name",
        "title",
        "detail",
        "remediation",
        "cis",
        "owner",
    ):
        assert key in finding
    assert finding["cis"] == ["1.10"] and finding["severity"] == "high" and finding["owner"] is None
    assert "testing" not in result.stdout + result.stderr  # never a credential


def test_cli_scan_csv_and_table(aws, clock, tmp_path):
    seed_small(aws, clock)
    rows = list(csv.DictReader(io.StringIO(run_cli(tmp_path, "scan", "--format", "csv").stdout)))
    assert ("ROLE_TRUST_PUBLIC", "open", "critical") in {
        (r["check_id"], r["principal_name"], r["severity"]) for r in rows
    }
    table = run_cli(tmp_path, "scan")
    assert table.returncode == 0
    assert re.search(r"critical\s+ROLE_TRUST_PUBLIC\s+123456789012\s+open", table.stdout)
    assert f"{ACCOUNT_ID}: 1 critical, 1 high" in table.stdout


def test_cli_fail_on_exits_1_at_or_above_the_threshold_only(aws, clock, tmp_path, access_analyzer):
    iam = boto3.client("iam")
    aws.set_root(RootAccount(mfa_active=True))
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)
    access_analyzer.add_analyzer("account")
    iam.create_role(RoleName="support", AssumeRolePolicyDocument=SELF_TRUST)
    iam.attach_role_policy(RoleName="support", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    aws.set_role_last_used("support", days_ago(clock, 1))
    iam.create_user(UserName="direct")
    iam.put_user_policy(UserName="direct", PolicyName="p", PolicyDocument=doc(allow("s3:GetObject")))  # low
    assert run_cli(tmp_path, "scan", "--fail-on", "high").returncode == 0
    assert run_cli(tmp_path, "scan", "--fail-on", "low").returncode == 1
    # A suppressed finding does not fail the build.
    config = '[[suppressions]]\ncheck_id = "USER_DIRECT_POLICIES"\nprincipal = "direct"\nreason = "known"\n'
    assert run_cli(tmp_path, "scan", "--fail-on", "low", config=config).returncode == 0
    bad = run_cli(tmp_path, "scan", "--fail-on", "urgent")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cli_checks_lists_the_catalog(tmp_path):
    from bot.checks.catalog import CHECKS

    result = run_cli(tmp_path, "checks")
    assert result.returncode == 0
    for check_id in CHECKS:
        assert check_id in result.stdout
    catalog = json.loads(run_cli(tmp_path, "checks", "--format", "json").stdout)
    root = next(c for c in catalog if c["id"] == "ROOT_MFA_DISABLED")
    assert root["severity"] == "critical" and root["cis"] == ["1.5"] and root["remediation"]["console"]


def test_every_check_has_complete_metadata_and_is_in_the_readme():
    from bot.checks.catalog import CHECKS

    readme = (ROOT / "README.md").read_text()
    for check in CHECKS.values():
        assert check.title and check.risk and check.console, check.id
        assert re.fullmatch(r"[A-Z][A-Z_]+", check.id)
        assert f"`{check.id}`" in readme, f"README's hygiene scan section does not list {check.id}"


def test_cli_reports_an_unreachable_account_and_exits_3(aws, clock, tmp_path, sts_checks_roles):
    seed_small(aws, clock)
    config = (
        f'[[accounts]]\nid = "{ACCOUNT_ID}"\nname = "main"\n\n'
        '[[accounts]]\nid = "555566667777"\nname = "lost"\nrole_arn = "arn:aws:iam::555566667777:role/audit"\n'
    )
    result = run_cli(tmp_path, "scan", "--format", "json", config=config)
    assert result.returncode == 3
    document = json.loads(result.stdout)
    assert {a["account_id"]: a["status"] for a in document["accounts"]} == {
        ACCOUNT_ID: "ok",
        "555566667777": "failed",
    }
    assert any(f["account_id"] == ACCOUNT_ID for f in document["findings"])
    assert result.stderr.startswith(
        "iamwarden: lost: AWS denied assuming arn:aws:iam::555566667777:role/audit"
    )
    assert "Traceback" not in result.stderr


def test_cli_scan_exits_promptly_with_a_stalled_account(aws, clock, tmp_path, stalling_proxy):
    members = create_organization(2)
    stalling_proxy.stall(members[0], "iam")
    config = '[organizations]\nenabled = true\n\n[scan]\naccount_timeout = "2s"\n'
    result = run_cli(tmp_path, "scan", "--format", "json", config=config)  # its own timeout: 120 s
    assert stalling_proxy.held.is_set()
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    status = {a["account_id"]: a["status"] for a in document["accounts"]}
    assert status == {ACCOUNT_ID: "ok", members[0]: "failed", members[1]: "ok"}
    assert "timed out after 2 s reading " in result.stderr and "(no earlier snapshot)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_one_account_cli_scan_runs_without_full_collections_and_restores_them():
    before = gc.get_threshold()
    with _no_full_collections(True):
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 1_000_000
    assert gc.get_threshold() == before
    with _no_full_collections(False):  # an organization's scan: its clients' cycles are collected
        assert gc.get_threshold() == before
