"""The queries' Block Kit builders: pure, escaped, and within Slack's limits by construction."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from bot.findings import Finding, Severity
from bot.identity import PrincipalRef
from bot.policy import PolicySource, evaluate, parse_policy
from bot.queries import (
    AccessKeyInfo,
    FindingsFilter,
    FindingsReport,
    MemberKeys,
    MemberRisks,
    PrincipalDecision,
    SnapshotInfo,
    WhoCan,
    findings_csv,
)
from handlers.blocks import validate_blocks
from handlers.client import build_client
from handlers.commands import CommandIO
from handlers.queries import (
    deliver,
    findings_message,
    home_blocks,
    keys_message,
    modal,
    relevant_unknowns,
    risks_message,
    scan_result_message,
    who_can_message,
)
from sandbox.slack_api import validate_message, validate_view
from tests.conftest import ACCOUNT_ID, NOW

EVIL = "<!channel> <@U0SEC1> & friends"
SNAP = [SnapshotInfo(1, ACCOUNT_ID, "prod", NOW)]
ALICE = PrincipalRef(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:user/alice", "alice", "user")


def finding(i: int, *, title: str = "Access key not rotated", detail: str = "") -> Finding:
    return Finding(
        check_id="ACCESS_KEY_NOT_ROTATED",
        severity=list(Severity)[i % 4],
        account_id=ACCOUNT_ID,
        principal_arn=ALICE.arn,
        principal_name="alice",
        title=title,
        detail=detail or f"Access key {i} is 200 days old. " * 3,
        remediation="Console: IAM → Users → alice → Security credentials\nCLI: aws iam create-access-key --user-name alice",
        detail_key=str(i),
    )


def assert_valid(message) -> None:
    checked = message.checked()
    assert validate_blocks(checked.blocks) == []
    validate_message({"text": checked.text, "blocks": checked.blocks})  # raises as Slack would


def test_many_findings_stay_within_limits_and_nothing_is_lost():
    risks = MemberRisks("U0ALICE", "ok", [ALICE], [finding(i) for i in range(300)], SNAP)
    message = risks_message(risks)
    assert_valid(message)
    checked = message.checked()
    assert checked.attachment is not None
    # Every finding is either in the blocks or in the overflow file.
    shown = "\n".join(b.get("text", {}).get("text", "") for b in checked.blocks)
    lines = shown.count("Access key not rotated") + checked.attachment.content.count("Access key not rotated")
    assert lines == 300


def test_overflow_goes_to_the_members_dm_as_a_file(bot):
    risks = MemberRisks("U0ALICE", "ok", [ALICE], [finding(i) for i in range(300)], SNAP)
    io_ = CommandIO(services=bot.services, client=build_client(bot.services))
    delivered = deliver(risks_message(risks), io_, "U0ALICE", filename="risks.txt")
    assert "sent the rest to you as a file in our DM" in delivered.blocks[-1]["elements"][0]["text"]
    (uploaded,) = bot.slack.files()
    content = uploaded["content"]
    content = content.decode() if isinstance(content, bytes) else content
    assert "Access key not rotated" in content
    assert bot.slack.formatting_violations() == []


def test_typed_and_stored_text_is_escaped_everywhere():
    risks = MemberRisks("U0ALICE", "ok", [ALICE], [finding(0, title=EVIL, detail=EVIL)], SNAP)
    message = risks_message(risks, subject=EVIL)
    blob = message.text + str(message.blocks)
    assert "<!channel>" not in blob and "<@U0SEC1>" not in blob
    assert "&lt;!channel&gt;" in blob and "&amp; friends" in blob
    assert_valid(message)


def test_keys_message_for_every_slot_state():
    keys = [
        AccessKeyInfo(ACCOUNT_ID, "alice", ALICE.arn, 1, True, NOW - timedelta(days=120), None, None, None),
        AccessKeyInfo(
            ACCOUNT_ID,
            "alice",
            ALICE.arn,
            2,
            True,
            NOW - timedelta(days=10),
            NOW - timedelta(days=60),
            "s3",
            None,
        ),
    ]
    message = keys_message(MemberKeys("U0ALICE", "ok", [ALICE], keys, SNAP), NOW)
    text = str(message.blocks)
    assert "never used" in text and "older than 90 days" in text
    assert "last used" in text and "(s3)" in text and "unused for 60 days" in text
    assert_valid(message)


def test_who_can_with_thousands_of_principals_fits_or_overflows_to_a_file():
    statements = parse_policy(
        {"Statement": [{"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
        PolicySource("inline", "s3-all"),
    )
    decision = evaluate(statements, "s3:GetObject")
    allowed = [
        PrincipalDecision(
            PrincipalRef(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:user/u{i}", f"u{i}", "user"), decision
        )
        for i in range(2000)
    ]
    message = who_can_message(WhoCan("s3:GetObject", "*", allowed, 2000, [], SNAP))
    assert_valid(message)
    checked = message.checked()
    assert checked.attachment is not None and "u1999" in checked.attachment.content


def test_findings_summary_is_valid_and_counts_by_severity():
    report = FindingsReport(FindingsFilter(), [finding(i) for i in range(40)], suppressed=2, snapshots=SNAP)
    message = findings_message(report, file_note="All 40 are in the file.")
    text = str(message.blocks)
    assert "40 open findings" in text and "10 critical" in text and "2 suppressed" in text
    assert_valid(message)


def test_home_and_modals_are_valid_views():
    risks = MemberRisks("U0ALICE", "ok", [ALICE], [finding(i) for i in range(200)], SNAP)
    keys = MemberKeys(
        "U0ALICE",
        "ok",
        [ALICE],
        [AccessKeyInfo(ACCOUNT_ID, "alice", ALICE.arn, 1, True, NOW - timedelta(days=5), None, None, None)],
        SNAP,
    )
    blocks = home_blocks(risks, keys, NOW)
    validate_view({"type": "home", "blocks": blocks})
    view = modal("Your IAM risks", risks_message(risks))
    validate_view(view)
    assert len(view["blocks"]) <= 100


def test_unknown_patterns_of_other_services_do_not_clutter_an_answer():
    unknown = ["codestar:Get*", "iam:Frobnicate", "*"]
    assert relevant_unknowns(unknown, "iam:CreateUser") == ["iam:Frobnicate", "*"]


def test_findings_csv_neutralises_spreadsheet_formulas():
    rows = list(csv.reader(io.StringIO(findings_csv([finding(0, title='=HYPERLINK("http://x")')]))))
    assert rows[1][rows[0].index("title")].startswith("'=")


# --------------------------------------------------------------------------- scan result


def _scan(account_id: str, *, name: str = "", error: str | None = None, findings=()):  # noqa: ANN202
    from bot.scan import AccountScan

    return AccountScan(account_id, None, list(findings), 3, error, name)


def test_a_failed_scan_says_it_failed_and_names_the_account():
    message = scan_result_message([_scan("", error="AWS denied sts:GetCallerIdentity <b>")])
    assert message.text.startswith("Scan failed: the bot's own AWS account could not be scanned")
    assert "0 open findings" not in message.text
    body = json.dumps(message.blocks)
    assert "*Scan failed.*" in body and "?" not in body
    assert (
        "the bot's own AWS account: could not be scanned: AWS denied sts:GetCallerIdentity &lt;b&gt;" in body
    )
    validate_blocks(message.blocks)


def test_a_named_account_that_failed_is_named_with_its_id():
    message = scan_result_message([_scan(ACCOUNT_ID, name=EVIL, error="timed out")])
    assert "Scan failed:" in message.text and ACCOUNT_ID in message.text
    assert "<!channel>" not in message.text + json.dumps(message.blocks)


def test_some_accounts_failing_says_which_and_counts_the_others():
    ok = _scan(ACCOUNT_ID, name="prod", findings=[])
    bad = _scan("210987654321", name="staging", error="AWS denied sts:AssumeRole")
    message = scan_result_message([ok, bad])
    assert message.text == (
        "Scan finished with failures: staging (210987654321) could not be scanned; "
        "0 open findings in the others."
    )
    assert scan_result_message([ok]).text == "Scan finished: 0 open findings in all."
