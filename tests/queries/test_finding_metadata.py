"""Findings carry their check's metadata: a finding read back from the store tells its check's title,
risk, remediation and CIS controls, so the Slack views never look the catalog up themselves."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.checks.catalog import CHECKS, CheckContext, Hit
from bot.findings import Finding, Severity, findings_of, save_snapshot
from bot.queries import current_book, known_check_ids
from bot.settings import Config
from bot.store import open_store
from handlers.queries import finding_section
from tests.conftest import ACCOUNT_ID, NOW

ROOT = Path(__file__).resolve().parents[2]
ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"


def _stored_and_read_back(tmp_path, finding: Finding) -> Finding:
    store = open_store(tmp_path / "iamwarden.db")
    snapshot_id = save_snapshot(
        store, account_id=ACCOUNT_ID, scanned_at=NOW, api_calls=1, inventory={}, findings=[finding]
    )
    (read,) = findings_of(store, [snapshot_id])
    store.close()
    return read


def test_a_finding_read_back_from_the_store_carries_its_checks_title_risk_remediation_and_cis(tmp_path):
    check = CHECKS["ROOT_ACCESS_KEYS"]
    ctx = CheckContext(inventory={"account_id": ACCOUNT_ID}, config=Config(), now=NOW)
    made = check.finding(ctx, Hit(principal_arn=ARN, principal_name="<root_account>", detail="key 1"))
    read = _stored_and_read_back(tmp_path, made)
    assert read.check is check
    assert read.title == check.title
    assert read.risk == check.risk and read.risk
    assert read.remediation == check.remediation(
        {"name": "<root_account>", "arn": ARN, "account": ACCOUNT_ID}
    )
    assert read.remediation.startswith("Console: ")
    assert read.cis == list(check.cis) == ["1.4"]
    # The risk is looked up, never stored: the findings JSON and the stored columns stay as they were.
    assert "risk" not in read.public() and "risk" not in read.model_dump()


def test_a_finding_of_a_check_this_version_does_not_have_has_no_risk_and_still_renders(tmp_path):
    read = _stored_and_read_back(
        tmp_path,
        Finding(check_id="RETIRED_CHECK", severity=Severity.LOW, account_id=ACCOUNT_ID, title="Gone"),
    )
    assert read.check is None and read.risk == ""
    assert "Why it matters" not in finding_section(read)["text"]["text"]


def test_the_finding_view_shows_the_risk_the_finding_carries(tmp_path):
    check = CHECKS["ROOT_ACCESS_KEYS"]
    ctx = CheckContext(inventory={"account_id": ACCOUNT_ID}, config=Config(), now=NOW)
    read = _stored_and_read_back(tmp_path, check.finding(ctx, Hit(principal_arn=ARN, principal_name="root")))
    assert f"*Why it matters:* {check.risk}" in finding_section(read)["text"]["text"]


def test_known_check_ids_default_to_the_catalog(make_bot):
    bot = make_bot()
    assert set(CHECKS) <= known_check_ids(bot.services, current_book(bot.services))


def test_no_slack_module_imports_the_check_catalog():
    """Views show a finding's risk from the finding (``Finding.risk``), never from the catalog."""
    offenders = []
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "bot.checks" or n.startswith("bot.checks.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
