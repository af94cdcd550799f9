"""The CLI's one-account document built from the rows the scan kept equals, byte for byte, the one
built the old way: the stored findings read back and modelled again (the findings JSON is a contract)."""

from __future__ import annotations

import dataclasses
import io
import json
from enum import IntEnum, StrEnum

import pytest

from bot.findings import StoredFindings, public_of_stored
from bot.scan import scan_accounts, scan_document
from bot.scan.report import document_text, public_findings, write_csv
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


class _Level(StrEnum):
    HIGH = "high"


class _Count(IntEnum):
    THREE = 3


ODD_VALUES = [
    {},
    [],
    "",
    None,
    True,
    False,
    0,
    -17,
    10**30,
    1.5,
    -0.0,
    1e16,
    1e-7,
    float("nan"),
    float("inf"),
    float("-inf"),
    'caf\u00e9 \u2192 \U0001f600 "quoted" back\\slash\ttab\nnewline\x00\x1f\x7f',
    _Level.HIGH,
    _Count.THREE,
    (1, "two", None),
    {"nested": {"deeper": [[], {}, [{}], [[1, [2, {"x": []}]]]]}},
    {
        7: "int key",
        2.5: "float key",
        True: "bool key",
        False: "f",
        None: "none key",
        "": "empty",
        "\u00e9": "e",
    },
    {_Level.HIGH: [_Count.THREE, _Level.HIGH]},
    [{"a": None, "b": [None, True, {"c": "d"}], "e": {}}],
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_document_text_is_json_dumps_with_indent_2(value):
    assert document_text(value) == json.dumps(value, indent=2)
    assert document_text({"findings": [value, value], "n": 1}) == json.dumps(
        {"findings": [value, value], "n": 1}, indent=2
    )


@pytest.mark.parametrize("value", [{1, 2}, object(), b"bytes", {("tuple", "key"): 1}, [1, object()]])
def test_document_text_refuses_what_json_refuses(value):
    with pytest.raises(TypeError):
        json.dumps(value, indent=2)
    with pytest.raises(TypeError):
        document_text(value)
