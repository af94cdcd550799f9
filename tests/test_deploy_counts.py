"""Counts agree everywhere: one function says how many open findings there are, and a check that
could not run is "could not evaluate", never ranked as a (critical) finding."""

from __future__ import annotations

import json

import boto3

from bot.answers import FindingsFilter, findings_report
from bot.findings import FindingStatus, open_count
from bot.scan import scan_accounts, summary_line
from handlers.queries import findings_message, scan_result_message


def test_scan_and_iam_findings_report_the_same_open_count_and_never_rank_an_unknown(bot):
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="ada")
    iam.create_login_profile(UserName="ada", Password="Passw0rd!Passw0rd!")
    iam.attach_user_policy(UserName="ada", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    [scan] = scan_accounts(bot.services)  # moto has no Access Analyzer: its checks cannot evaluate
    unknown = [f for f in scan.findings if f.status == FindingStatus.UNKNOWN]
    assert unknown, "expected at least one check that could not evaluate"
    expected = open_count(scan.findings)
    assert expected == sum(1 for f in scan.findings if f.status == FindingStatus.FAIL and not f.suppressed)

    scan_text = scan_result_message([scan]).text
    assert f"{expected} open findings" in scan_text
    report = findings_report(bot.services, FindingsFilter())
    message = findings_message(report, file_note=None)
    assert f"{expected} open IAM findings" in message.text
    body = json.dumps(message.blocks)
    assert f"*{expected} open finding" in body
    top = next(
        b["text"]["text"] for b in message.blocks if b.get("text", {}).get("text", "").startswith("*Top")
    )
    assert "could not evaluate" not in top
    assert all(
        f.check_id not in top
        for f in unknown
        if f.check_id not in {x.check_id for x in scan.findings if x.status == FindingStatus.FAIL}
    )
    evaluated = next(
        b["text"]["text"]
        for b in message.blocks
        if "*Could not evaluate:*" in b.get("text", {}).get("text", "")
    )
    for f in unknown:
        assert f.check_id in evaluated
    assert "could not evaluate" in summary_line(scan)
