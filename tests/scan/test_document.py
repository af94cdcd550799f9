"""The CLI's one-account document built from the rows the scan kept equals, byte for byte, the one
built the old way: the stored findings read back and modelled again (the findings JSON is a contract)."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from bot.findings import StoredFindings, public_of_stored
from bot.scan import scan_accounts, scan_document
from bot.scan.report import public_findings, write_csv
from tests.scan.support import seed_mixed_account, services_for

pytest_plugins = ["tests.aws_stubs"]  # the access_analyzer fixture (moto has no Access Analyzer)
pytestmark = pytest.mark.usefixtures("access_analyzer")


def test_the_document_from_kept_rows_is_the_document_read_back_from_the_store(
    aws, clock, access_analyzer, tmp_path
):
    seed_mixed_account(aws, clock, access_analyzer)
    config = {
        "suppressions": [
            {
                "check_id": "USER_DIRECT_POLICIES",
                "principal": "*",
                "reason": "migrating",
                "expires": "2027-01-01",
            }
        ]
    }
    services = services_for(tmp_path, clock, config)
    [kept] = scan_accounts(services, sleep=lambda s: None, keep_rows=True)
    assert kept.kept_rows and isinstance(kept.findings, StoredFindings)
    read_back = dataclasses.replace(kept, kept_rows=None)  # the old way: iterate the stored findings

    new, old = public_findings(kept), public_findings(read_back)
    assert new == old and len(new) == len(kept.findings)
    assert any("hop_count" in f for f in new) and any(f["suppressed"] for f in new)  # both shapes covered
    at = clock.now()
    assert json.dumps(scan_document([kept], at), indent=2) == json.dumps(
        scan_document([read_back], at), indent=2
    )
    csv_new, csv_old = io.StringIO(), io.StringIO()
    write_csv([kept], csv_new)
    write_csv([read_back], csv_old)
    assert csv_new.getvalue() == csv_old.getvalue()
    # Finding by finding, the stored JSON's public form is the model's.
    for finding in kept.findings:
        assert public_of_stored(json.loads(finding.model_dump_json())) == finding.public()


def test_a_scan_keeps_no_rows_unless_asked(aws, clock, access_analyzer, tmp_path):
    seed_mixed_account(aws, clock, access_analyzer)
    [result] = scan_accounts(services_for(tmp_path, clock), sleep=lambda s: None)
    assert result.kept_rows is None and isinstance(result.findings, StoredFindings)
