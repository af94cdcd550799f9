"""The scan end to end: a realistic account's exact findings, stable fingerprints, owners, many
accounts, stored snapshots, and the memory a scan keeps (none of the accounts' inventories)."""

from __future__ import annotations

import json

import boto3
import pytest

from bot.findings import latest_findings, latest_snapshots, snapshot_inventory
from bot.scan import scan_accounts
from tests.scan.support import MIXED_EXPECTED, PASSWORD, seed_mixed_account, services_for
from tests.scan_helpers import ACCOUNT_ID, failed, unknown

pytest_plugins = [
    "tests.aws_stubs"
]  # access_analyzer and stalling_proxy fixtures (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


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
