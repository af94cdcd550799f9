"""The scan end to end: a realistic account's exact findings, many accounts, suppressions, owners,
stored snapshots, and ``iamwarden scan`` / ``iamwarden checks`` as a CI job would run them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from bot.findings import latest_findings, latest_snapshots, snapshot_inventory
from bot.scan import run_checks, scan_accounts
from bot.services import Services
from bot.settings import Config, load_settings
from sandbox.aws import RootAccount
from tests.scan_helpers import ACCOUNT_ID, allow, days_ago, doc, failed, trust, unknown

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")
ROOT = Path(__file__).resolve().parents[1]
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
SELF_TRUST = trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"})
PASSWORD = "Passw0rd!Passw0rd"


def services_for(tmp_path: Path, clock, config: dict | None = None) -> Services:
    settings = load_settings(db=tmp_path / "scan.db", config=Config.model_validate(config or {}))
    return Services.from_settings(settings, clock=clock)


def enable_mfa(iam, user: str) -> None:
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )


def seed_mixed_account(aws, clock, access_analyzer) -> None:
    """A company with a bit of everything; each line says which finding it should (not) cause."""
    iam = boto3.client("iam")
    aws.set_root(RootAccount(mfa_active=True, password_last_used=days_ago(clock, 200)))  # nothing
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)  # nothing
    analyzer = access_analyzer.add_analyzer("org")
    access_analyzer.add_finding(analyzer, f"arn:aws:iam::{ACCOUNT_ID}:role/vendor")  # EXTERNAL_ACCESS vendor

    iam.create_group(GroupName="admins")
    iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)  # ADMIN_POLICY_ATTACHED admins
    iam.create_group(GroupName="developers")
    iam.attach_group_policy(GroupName="developers", PolicyArn=READ_ONLY)

    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
        iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": f"{name}@example.com"}])
    # alice: admin through a group, console with MFA, active: nothing on alice
    iam.add_user_to_group(GroupName="admins", UserName="alice")
    iam.create_login_profile(UserName="alice", Password=PASSWORD)
    enable_mfa(iam, "alice")
    aws.set_password_last_used("alice", days_ago(clock, 1))
    # bob: developer on the console without MFA -> USER_CONSOLE_NO_MFA
    iam.add_user_to_group(GroupName="developers", UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    aws.set_password_last_used("bob", days_ago(clock, 2))
    # carol: a key-only admin through her own inline policy -> ADMIN_NO_MFA, ADMIN_POLICY_ATTACHED,
    # USER_DIRECT_POLICIES
    iam.put_user_policy(UserName="carol", PolicyName="all", PolicyDocument=doc(allow("*")))
    iam.create_access_key(UserName="carol")
    aws.age_access_key("carol", created=days_ago(clock, 10), last_used=days_ago(clock, 1))
    # dave: an old key nobody uses -> ACCESS_KEY_NOT_ROTATED, ACCESS_KEY_UNUSED
    iam.add_user_to_group(GroupName="developers", UserName="dave")
    iam.create_access_key(UserName="dave")
    aws.age_access_key("dave", created=days_ago(clock, 200), last_used=days_ago(clock, 60))
    # erin: two live keys -> MULTIPLE_ACTIVE_KEYS
    iam.add_user_to_group(GroupName="developers", UserName="erin")
    for index in (0, 1):
        iam.create_access_key(UserName="erin")
        aws.age_access_key("erin", created=days_ago(clock, 5), last_used=days_ago(clock, 1), index=index)
    # frank: console with MFA, not used for 100 days -> PASSWORD_UNUSED
    iam.add_user_to_group(GroupName="developers", UserName="frank")
    iam.create_login_profile(UserName="frank", Password=PASSWORD)
    enable_mfa(iam, "frank")
    aws.set_password_last_used("frank", days_ago(clock, 100))
    # gina: can rewrite policies -> PRIVILEGE_ESCALATION, USER_DIRECT_POLICIES
    iam.put_user_policy(
        UserName="gina", PolicyName="policy-editor", PolicyDocument=doc(allow("iam:CreatePolicyVersion"))
    )
    # ... and holds a customer-managed policy she may rewrite into admin
    tools = iam.create_policy(PolicyName="gina-tools", PolicyDocument=doc(allow("s3:GetObject")))
    iam.attach_user_policy(UserName="gina", PolicyArn=tools["Policy"]["Arn"])

    roles = {
        "vendor": trust({"AWS": "arn:aws:iam::999988887777:root"}),  # ROLE_TRUST_EXTERNAL_NO_CONDITION
        "public": trust({"AWS": "*"}),  # ROLE_TRUST_PUBLIC
        "etl": SELF_TRUST,  # SERVICE_WILDCARD (s3:*)
        "old-batch": SELF_TRUST,  # ROLE_UNUSED
        "support": SELF_TRUST,  # the CIS support role: no SUPPORT_ROLE_MISSING
    }
    for name, trust_doc in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_doc)
        aws.set_role_last_used(name, days_ago(clock, 200 if name == "old-batch" else 3))
    iam.attach_role_policy(RoleName="vendor", PolicyArn=READ_ONLY)
    iam.put_role_policy(RoleName="etl", PolicyName="data", PolicyDocument=doc(allow("s3:*")))
    iam.attach_role_policy(RoleName="support", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    iam.create_policy(PolicyName="legacy-admin", PolicyDocument=doc(allow("*:*")))  # FULL_ADMIN_CUSTOM_POLICY


MIXED_EXPECTED = {
    ("ADMIN_POLICY_ATTACHED", "admins"),
    ("ADMIN_POLICY_ATTACHED", "carol"),
    ("ADMIN_NO_MFA", "carol"),
    ("USER_DIRECT_POLICIES", "carol"),
    ("USER_CONSOLE_NO_MFA", "bob"),
    ("ACCESS_KEY_NOT_ROTATED", "dave"),
    ("ACCESS_KEY_UNUSED", "dave"),
    ("MULTIPLE_ACTIVE_KEYS", "erin"),
    ("PASSWORD_UNUSED", "frank"),
    ("PRIVILEGE_ESCALATION", "gina"),
    ("USER_DIRECT_POLICIES", "gina"),
    ("ROLE_TRUST_EXTERNAL_NO_CONDITION", "vendor"),
    ("ROLE_TRUST_PUBLIC", "public"),
    ("SERVICE_WILDCARD", "etl"),
    ("ROLE_UNUSED", "old-batch"),
    ("FULL_ADMIN_CUSTOM_POLICY", "legacy-admin"),
    ("EXTERNAL_ACCESS", "vendor"),
}


def test_realistic_mixed_account_yields_exactly_the_expected_findings(aws, clock, access_analyzer, tmp_path):
    seed_mixed_account(aws, clock, access_analyzer)
    services = services_for(tmp_path, clock)
    [result] = scan_accounts(services, sleep=lambda s: None)
    assert result.error is None
    assert failed(result.findings) == MIXED_EXPECTED
    # Only the ownership checks could not evaluate: this scan has no Slack directory.
    assert {f.check_id for f in unknown(result.findings)} == {"OFFBOARDED_USER_ACTIVE", "UNOWNED_USER"}
    # Stored: the snapshot with its inventory, and the findings, so answers never call AWS.
    [snapshot] = latest_snapshots(services.store)
    assert snapshot["id"] == result.snapshot_id and snapshot["api_calls"] == result.api_calls
    assert snapshot["scanned_at"] == "2026-11-29T12:00:00+00:00"
    assert {u["UserName"] for u in snapshot_inventory(services.store, result.snapshot_id)["users"]} >= {
        "alice",
        "gina",
    }
    assert {
        (f.check_id, f.principal_name) for f in latest_findings(services.store) if f.status.value == "fail"
    } == MIXED_EXPECTED
    # Every fix names the real principal: no "{name}" or "{kind}" left for a person to decode.
    for finding in result.findings:
        assert "{" not in finding.remediation, (finding.check_id, finding.remediation)


def test_fingerprints_are_stable_across_scans(aws, clock, access_analyzer, tmp_path):
    seed_mixed_account(aws, clock, access_analyzer)
    services = services_for(tmp_path, clock)
    first = {f.fingerprint for f in scan_accounts(services, sleep=lambda s: None)[0].findings}
    clock.advance(days=1)
    second = {f.fingerprint for f in scan_accounts(services, sleep=lambda s: None)[0].findings}
    assert first == second and len(first) == len(MIXED_EXPECTED) + 2


def test_suppressions_are_listed_as_suppressed_not_hidden_and_expire(aws, clock, tmp_path):
    iam = boto3.client("iam")
    iam.create_user(UserName="legacy")
    iam.put_user_policy(UserName="legacy", PolicyName="p", PolicyDocument=doc(allow("s3:GetObject")))
    iam.create_role(RoleName="open", AssumeRolePolicyDocument=trust({"AWS": "*"}))
    from bot.aws import AwsFactory
    from bot.inventory import collect

    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    baseline = run_checks(inventory, Config(), now=clock.now())
    public = next(f for f in baseline if f.check_id == "ROLE_TRUST_PUBLIC")
    config = Config.model_validate(
        {
            "suppressions": [
                {"fingerprint": public.fingerprint, "reason": "demo bucket role", "expires": "2026-12-31"},
                {
                    "check_id": "USER_DIRECT_POLICIES",
                    "principal": "legacy",
                    "reason": "migrating",
                    "expires": "2026-11-01",
                },
            ]
        }
    )
    findings = run_checks(inventory, config, now=clock.now())
    suppressed = {f.check_id: f.suppression_reason for f in findings if f.suppressed}
    assert suppressed == {"ROLE_TRUST_PUBLIC": "demo bucket role (until 2026-12-31)"}  # the other expired
    assert ("USER_DIRECT_POLICIES", "legacy") in failed(findings)
    assert ("ROLE_TRUST_PUBLIC", "open") not in failed(findings)


def test_owners_come_from_the_identity_map_when_the_directory_is_cached(aws, clock, tmp_path):
    from bot.identity import store_directory

    iam = boto3.client("iam")
    iam.create_user(UserName="bob", Tags=[{"Key": "email", "Value": "bob@example.com"}])
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    iam.create_user(UserName="ghost")
    iam.create_access_key(UserName="ghost")
    services = services_for(tmp_path, clock)
    store_directory(
        services.store, [{"id": "U0BOB", "name": "bob", "profile": {"email": "bob@example.com"}}], clock.now()
    )
    [result] = scan_accounts(services, sleep=lambda s: None)
    owners = {(f.check_id, f.principal_name): f.owner for f in result.findings}
    assert owners[("USER_CONSOLE_NO_MFA", "bob")] == "U0BOB"
    assert owners[("UNOWNED_USER", "ghost")] is None


# -- many accounts --------------------------------------------------------------------------------


@pytest.fixture
def sts_checks_roles(monkeypatch):
    """moto's AssumeRole succeeds for roles that do not exist; AWS answers AccessDenied. Teach it."""
    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    original = STSBackend.assume_role

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
        if not any(r.name == name for r in iam_backends[account]["global"].roles.values()):
            raise STSClientError(
                "AccessDenied", f"Not authorized to perform sts:AssumeRole on resource {role_arn}"
            )
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    monkeypatch.setattr(STSBackend, "assume_role", assume_role)


def test_two_organization_accounts_are_scanned_and_an_unreachable_one_is_reported(
    aws, clock, tmp_path, sts_checks_roles
):
    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(Email="member@example.com", AccountName="member")["CreateAccountStatus"][
        "AccountId"
    ]
    boto3.client("iam").create_user(UserName="in-management")
    config = {
        "organizations": {"enabled": True},
        "accounts": [
            {"id": "555566667777", "name": "lost", "role_arn": "arn:aws:iam::555566667777:role/audit"}
        ],
    }
    services = services_for(tmp_path, clock, config)
    phases: list[tuple[str, str]] = []
    results = {
        r.account_id: r
        for r in scan_accounts(services, progress=lambda a, p: phases.append((a, p)), sleep=lambda s: None)
    }

    assert set(results) == {ACCOUNT_ID, member, "555566667777"}
    management, member_scan, lost = results[ACCOUNT_ID], results[member], results["555566667777"]
    assert management.error is None and member_scan.error is None
    assert {u["UserName"] for u in management.inventory["users"]} == {"in-management"}
    # The member account is read through its OrganizationAccountAccessRole, isolated from the management account.
    assert [r["RoleName"] for r in member_scan.inventory["roles"]] == ["OrganizationAccountAccessRole"]
    assert member_scan.inventory["users"] == []
    # Its role trusts the management account: one of ours, so not "an outside account".
    assert failed(member_scan.findings, "ROLE_TRUST_EXTERNAL_NO_CONDITION") == set()
    assert ("SUPPORT_ROLE_MISSING", None) in failed(member_scan.findings)
    assert lost.snapshot_id is not None and lost.findings == []
    assert "AccessDenied" in lost.error and "arn:aws:iam::555566667777:role/audit" in lost.error
    # Both halves of a denied AssumeRole are named: our permission and the member role's trust policy.
    assert "sts:AssumeRole" in lost.error and "trust policy does not admit the bot" in lost.error
    # The failure is stored too, and never becomes the account's latest good snapshot.
    rows = {s["account_id"]: s for s in latest_snapshots(services.store, status=None)}
    assert rows["555566667777"]["status"] == "failed"
    assert {s["account_id"] for s in latest_snapshots(services.store)} == {ACCOUNT_ID, member}
    assert ("lost", "failed: " + lost.error) in phases
    assert any(p.startswith("done") for a, p in phases if a == "member")


# -- the command line -----------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IAMWARDEN_"))}
    env["IAMWARDEN_DB"] = str(tmp_path / "cli.db")
    if config is not None:
        path = tmp_path / "iamwarden.toml"
        path.write_text(config)
        env["IAMWARDEN_CONFIG"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def _seed_small(aws, clock):
    iam = boto3.client("iam")
    aws.set_root(RootAccount(mfa_active=True))
    iam.create_user(UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    aws.set_password_last_used("bob", days_ago(clock, 1))
    iam.create_role(RoleName="open", AssumeRolePolicyDocument=trust({"AWS": "*"}))
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)


def test_cli_scan_json_document_needs_no_slack_settings(aws, clock, tmp_path):
    _seed_small(aws, clock)
    result = _cli(tmp_path, "scan", "--format", "json")
    assert result.returncode == 0, result.stderr
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
    _seed_small(aws, clock)
    rows = list(csv.DictReader(io.StringIO(_cli(tmp_path, "scan", "--format", "csv").stdout)))
    assert ("ROLE_TRUST_PUBLIC", "open", "critical") in {
        (r["check_id"], r["principal_name"], r["severity"]) for r in rows
    }
    table = _cli(tmp_path, "scan")
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
    assert _cli(tmp_path, "scan", "--fail-on", "high").returncode == 0
    assert _cli(tmp_path, "scan", "--fail-on", "low").returncode == 1
    # A suppressed finding does not fail the build.
    config = '[[suppressions]]\ncheck_id = "USER_DIRECT_POLICIES"\nprincipal = "direct"\nreason = "known"\n'
    assert _cli(tmp_path, "scan", "--fail-on", "low", config=config).returncode == 0
    bad = _cli(tmp_path, "scan", "--fail-on", "urgent")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cli_checks_lists_the_catalog(tmp_path):
    from bot.checks.catalog import CHECKS

    result = _cli(tmp_path, "checks")
    assert result.returncode == 0
    for check_id in CHECKS:
        assert check_id in result.stdout
    catalog = json.loads(_cli(tmp_path, "checks", "--format", "json").stdout)
    root = next(c for c in catalog if c["id"] == "ROOT_MFA_DISABLED")
    assert root["severity"] == "critical" and root["cis"] == ["1.5"] and root["remediation"]["console"]


def test_every_check_has_complete_metadata_and_is_in_the_readme():
    from bot.checks.catalog import CHECKS

    readme = (ROOT / "README.md").read_text()
    for check in CHECKS.values():
        assert check.title and check.risk and check.console, check.id
        assert re.fullmatch(r"[A-Z][A-Z_]+", check.id)
        assert f"`{check.id}`" in readme, f"README's hygiene scan section does not list {check.id}"


def test_an_unreadable_credential_report_makes_its_checks_unknown_never_a_pass(aws, clock):
    from bot.aws import AwsFactory
    from bot.inventory import collect

    iam = boto3.client("iam")
    iam.create_user(UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    # What collect records when GenerateCredentialReport is denied:
    inventory["credential_report"] = None
    inventory["unknown_sources"] = [
        {"source": "credential_report", "reason": "AWS denied credential_report (AccessDenied)"}
    ]
    findings = run_checks(inventory, Config(), now=clock.now())
    for check_id in (
        "USER_CONSOLE_NO_MFA",
        "ADMIN_NO_MFA",
        "ACCESS_KEY_NOT_ROTATED",
        "PASSWORD_UNUSED",
        "ROOT_MFA_DISABLED",
    ):
        [finding] = [f for f in findings if f.check_id == check_id]
        assert finding.status.value == "unknown" and "AccessDenied" in finding.detail, check_id
    # Checks that do not need the report still ran.
    assert ("USER_DIRECT_POLICIES", "bob") not in failed(findings)
    assert [f.status.value for f in findings if f.check_id == "PASSWORD_POLICY_WEAK"] == ["fail"]


def test_cli_reports_an_unreachable_account_and_exits_3(aws, clock, tmp_path, sts_checks_roles):
    _seed_small(aws, clock)
    config = (
        f'[[accounts]]\nid = "{ACCOUNT_ID}"\nname = "main"\n\n'
        '[[accounts]]\nid = "555566667777"\nname = "lost"\nrole_arn = "arn:aws:iam::555566667777:role/audit"\n'
    )
    result = _cli(tmp_path, "scan", "--format", "json", config=config)
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


def test_ten_scans_in_one_process_keep_memory_flat(aws, clock, access_analyzer, tmp_path):
    import gc
    import tracemalloc

    from bot.checks.catalog import memo_size

    seed_mixed_account(aws, clock, access_analyzer)
    services = services_for(tmp_path, clock)
    scan_accounts(services, sleep=lambda s: None)  # warm: the action catalog, botocore's models
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            clock.advance(days=1)
            [result] = scan_accounts(services, sleep=lambda s: None)
            assert result.error is None
            assert memo_size() == 0  # the per-statement memo is emptied after every scan
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # One scan's objects are a few MB; ten scans keeping theirs would be ten times that.
    assert grown < 8_000_000, grown


def test_a_finished_scan_holds_no_inventory_nor_findings_and_reads_them_back_from_the_store(
    aws, clock, access_analyzer, tmp_path
):
    """At 1,000 accounts the inventories held until the scan ended were most of its peak memory."""
    import gc

    from bot.findings import Finding, StoredFindings, findings_of

    def alive() -> tuple[int, int]:
        """(inventories, findings) on the heap (other tests may leave some: only growth counts)."""
        gc.collect()
        objects = gc.get_objects()
        inventories = sum(1 for o in objects if type(o) is dict and "credential_report" in o and "users" in o)
        return inventories, sum(1 for o in objects if isinstance(o, Finding))

    seed_mixed_account(aws, clock, access_analyzer)
    services = services_for(tmp_path, clock)
    before = alive()
    [result] = scan_accounts(services, sleep=lambda s: None)
    # No inventory outlives its account's checks, nor do its findings: they are read back when iterated.
    assert alive() == before
    assert "inventory" not in vars(result)
    assert isinstance(result.findings, StoredFindings) and len(result.findings) > 0
    assert list(result.findings) == findings_of(services.store, [result.snapshot_id])
    assert [f.check_id for f in result.findings] == [f.check_id for f in list(result.findings)]
    # Asked for, the inventory is the stored snapshot's, and the request counts survive without it.
    inventory = result.inventory
    assert inventory["account_id"] == ACCOUNT_ID and inventory["users"]
    assert inventory == json.loads(
        services.store.execute(
            "SELECT inventory FROM snapshots WHERE id = ?", [result.snapshot_id]
        ).fetchone()[0]
    )
    assert result.requests_by_operation["iam:GetAccountAuthorizationDetails"] >= 1
    assert sum(result.requests_by_operation.values()) == result.api_calls


# -- deadlines: a slow account never holds the scan ----------------------------------------------


def _organization(members: int) -> list[str]:
    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    return [
        org.create_account(Email=f"m{i}@example.com", AccountName=f"member{i}")["CreateAccountStatus"][
            "AccountId"
        ]
        for i in range(members)
    ]


def _scan_threads_done(timeout: float = 30) -> None:
    """Wait for the abandoned account's thread (released by the proxy) to finish its late work."""
    import threading

    for thread in [t for t in threading.enumerate() if t.name.startswith(("scan-", "collect"))]:
        thread.join(timeout)


# -- checks in worker processes ---------------------------------------------------------------


def _stored_findings(services) -> dict[str, list[tuple]]:
    rows = services.store.execute(
        "SELECT s.account_id, f.check_id, f.status, f.principal_arn, f.fingerprint, f.suppressed "
        "FROM findings f JOIN snapshots s ON s.id = f.snapshot_id ORDER BY f.id"
    ).fetchall()
    out: dict[str, list[tuple]] = {}
    for account, *rest in rows:
        out.setdefault(account, []).append(tuple(rest))
    return out


def test_checks_in_worker_processes_store_exactly_what_the_scans_own_process_would(
    aws, clock, access_analyzer, tmp_path
):
    from bot.scan import PROCESS_MIN_ACCOUNTS, check_processes

    seed_mixed_account(aws, clock, access_analyzer)
    members = _organization(PROCESS_MIN_ACCOUNTS - 1)
    (tmp_path / "inline").mkdir()
    (tmp_path / "pooled").mkdir()
    inline = services_for(
        tmp_path / "inline", clock, {"organizations": {"enabled": True}, "scan": {"check_processes": 0}}
    )
    pooled = services_for(
        tmp_path / "pooled", clock, {"organizations": {"enabled": True}, "scan": {"check_processes": 2}}
    )
    assert check_processes(inline.config, len(members) + 1) == 0
    assert check_processes(pooled.config, len(members) + 1) == 2
    assert check_processes(pooled.config, PROCESS_MIN_ACCOUNTS - 1) == 0  # a small scan stays in-process

    expected = scan_accounts(inline, sleep=lambda s: None)
    got = scan_accounts(pooled, sleep=lambda s: None)

    assert [r.account_id for r in got] == [r.account_id for r in expected]
    assert all(r.error is None for r in got) and len(got) == PROCESS_MIN_ACCOUNTS
    assert _stored_findings(pooled) == _stored_findings(inline)
    assert [len(r.findings) for r in got] == [len(r.findings) for r in expected]
    management = next(r for r in got if r.account_id == ACCOUNT_ID)
    assert ("ADMIN_POLICY_ATTACHED", "admins") in failed(management.findings)


def test_a_killed_checks_worker_loses_no_account(aws, clock, access_analyzer, tmp_path, monkeypatch):
    """SIGKILL the workers mid-scan: the pool breaks, its jobs run in the scan's process instead."""
    import os
    import signal

    from bot import scan as scan_module
    from bot.scan import PROCESS_MIN_ACCOUNTS

    pools: list = []

    class Watched(scan_module.ChecksPool):
        def __init__(self, processes: int) -> None:
            super().__init__(processes)
            pools.append(self)

    monkeypatch.setattr(scan_module, "ChecksPool", Watched)
    seed_mixed_account(aws, clock, access_analyzer)
    _organization(PROCESS_MIN_ACCOUNTS - 1)
    (tmp_path / "inline").mkdir()
    (tmp_path / "pooled").mkdir()
    config = {"organizations": {"enabled": True}, "scan": {"check_processes": 1, "max_workers": 1}}
    inline = services_for(tmp_path / "inline", clock, {**config, "scan": {"check_processes": 0}})
    services = services_for(tmp_path / "pooled", clock, config)
    checks_started: list[str] = []
    killed: list[int] = []

    def progress(account: str, phase: str) -> None:
        if phase == "checks":
            checks_started.append(account)
            if len(checks_started) == 3 and pools:
                for process in list(pools[0]._executor._processes.values()):  # noqa: SLF001
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)

    results = scan_accounts(services, progress=progress, sleep=lambda s: None)
    scan_accounts(inline, sleep=lambda s: None)  # the same accounts, checked in the scan's own process

    assert killed  # the workers did die mid-scan
    assert len(results) == PROCESS_MIN_ACCOUNTS and all(r.error is None for r in results)
    assert _stored_findings(services) == _stored_findings(inline)


@pytest.mark.parametrize(
    ("hold", "operation"),
    [
        ("iam", r"(GetAccountAuthorizationDetails|GenerateCredentialReport|GetAccountSummary|\w+)"),
        ("assume", "AssumeRole"),
    ],
    ids=["iam-calls-stalled", "assume-role-stalled"],
)
def test_a_stalled_account_times_out_and_the_others_are_stored_without_waiting(
    aws, clock, tmp_path, stalling_proxy, hold, operation
):
    import time

    members = _organization(3)
    slow = members[1]
    config = {"organizations": {"enabled": True}, "scan": {"account_timeout": "2s"}}
    services = services_for(tmp_path, clock, config)
    first = {r.account_id: r for r in scan_accounts(services, sleep=lambda s: None)}
    assert all(r.error is None for r in first.values())
    clock.advance(hours=3)

    stalling_proxy.stall(slow, hold)
    stored_before_the_slow_one_failed: list[int] = []

    def progress(account: str, phase: str) -> None:
        if phase.startswith("failed"):  # what is stored while the slow account is still being waited for
            row = services.store.execute("SELECT count(*) FROM snapshots WHERE status = 'ok'").fetchone()
            stored_before_the_slow_one_failed.append(row[0])

    started = time.monotonic()
    results = {r.account_id: r for r in scan_accounts(services, progress=progress, sleep=lambda s: None)}
    elapsed = time.monotonic() - started
    # The three fast accounts were stored as each finished, before the slow one's deadline.
    assert stored_before_the_slow_one_failed == [len(first) + 3]

    assert stalling_proxy.held.is_set()
    assert elapsed < 2 + 30, elapsed  # the deadline plus a generous margin, not the stall's 120 s
    timed_out = results[slow]
    assert re.fullmatch(rf"timed out after 2 s reading {operation}", timed_out.error), timed_out.error
    if hold == "iam":
        assert timed_out.error != "timed out after 2 s reading AssumeRole"
    others = set(results) - {slow}
    assert others == {ACCOUNT_ID, *members} - {slow}
    assert all(results[a].error is None for a in others)
    # Rows in SQLite: the others' new snapshots, the slow one's failure; its previous snapshot is
    # still the latest good one (what answers use), and the failure names its age.
    good = {s["account_id"]: s["id"] for s in latest_snapshots(services.store)}
    assert good[slow] == first[slow].snapshot_id
    assert all(good[a] == results[a].snapshot_id for a in others)
    newest = {s["account_id"]: s for s in latest_snapshots(services.store, status=None)}
    assert newest[slow]["status"] == "failed" and newest[slow]["error"] == timed_out.error
    from bot.scan import summary_line

    assert summary_line(timed_out).endswith(f"{timed_out.error} (last good snapshot 3 h old)")

    # Released, the abandoned thread's further requests fail at once and nothing late is stored.
    count = services.store.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    stalling_proxy.release.set()
    _scan_threads_done()
    assert services.store.execute("SELECT count(*) FROM snapshots").fetchone()[0] == count


def test_a_failed_account_with_no_earlier_snapshot_says_so(aws, clock, tmp_path, stalling_proxy):
    from bot.scan import summary_line
    from handlers.queries import scan_result_message

    [slow] = _organization(1)
    stalling_proxy.stall(slow, "assume")
    config = {"organizations": {"enabled": True}, "scan": {"account_timeout": 2}}
    results = {
        r.account_id: r for r in scan_accounts(services_for(tmp_path, clock, config), sleep=lambda s: None)
    }
    assert results[ACCOUNT_ID].error is None
    assert summary_line(results[slow]).endswith(
        "timed out after 2 s reading AssumeRole (no earlier snapshot)"
    )
    message = json.dumps(scan_result_message(list(results.values())).blocks)
    assert "timed out after 2 s reading AssumeRole (no earlier snapshot)" in message


def test_cli_scan_exits_promptly_with_a_stalled_account(aws, clock, tmp_path, stalling_proxy):
    members = _organization(2)
    stalling_proxy.stall(members[0], "iam")
    config = '[organizations]\nenabled = true\n\n[scan]\naccount_timeout = "2s"\n'
    result = _cli(tmp_path, "scan", "--format", "json", config=config)  # its own timeout: 120 s
    assert stalling_proxy.held.is_set()
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    status = {a["account_id"]: a["status"] for a in document["accounts"]}
    assert status == {ACCOUNT_ID: "ok", members[0]: "failed", members[1]: "ok"}
    assert "timed out after 2 s reading " in result.stderr and "(no earlier snapshot)" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_scan_deadline_fails_the_account_in_flight_and_those_never_started():
    import threading

    from bot.scan import AccountTarget, collect_with_deadlines

    stuck, done = threading.Event(), []
    targets = [AccountTarget("111111111111"), AccountTarget("222222222222"), AccountTarget("333333333333")]

    def read(target, watch):
        stuck.wait(60)  # the first account never answers within the scan's deadline
        return target, {"account_id": target.account_id}, 0, None

    try:
        collect_with_deadlines(
            targets, read, workers=1, account_timeout=600, scan_timeout=1, on_done=done.append
        )
    finally:
        stuck.set()
    assert [(t.account_id, inventory, error) for t, inventory, _, error in done] == [
        ("111111111111", None, "timed out after 1 s between AWS requests (the scan's 1 s deadline)"),
        ("222222222222", None, "not read: the scan's 1 s deadline passed"),
        ("333333333333", None, "not read: the scan's 1 s deadline passed"),
    ]


def test_an_abandoned_accounts_next_request_fails_unsent_and_leaves_nothing_in_flight(aws):
    from bot.aws import AwsFactory
    from bot.scan import AccountAbandoned, AccountWatch

    watch = AccountWatch()
    iam = AwsFactory().with_counter(watch).client("iam")
    iam.list_users()
    assert watch.total == 1 and watch.operation is None
    watch.abandoned.set()
    with pytest.raises(AccountAbandoned):
        iam.list_users()
    assert watch.total == 1  # refused before it was sent (and counted)
    assert watch.operation is None  # after-call-error cleared it


def test_checks_workers_leave_when_the_scans_process_is_killed(tmp_path):
    """SIGKILL the process that owns a ChecksPool: its forkserver and workers go too, no orphans."""
    import signal
    import time

    from bot.scan import _running as _alive

    script = (
        "import os, sys, time\n"
        "from bot.scan import ChecksPool\n"
        "pool = ChecksPool(1)\n"
        "print(pool._executor.submit(os.getpid).result(), flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ.copy()
    )
    worker = int(owner.stdout.readline())
    assert worker != owner.pid and _alive(worker)
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
