"""Counts agree everywhere: one function says how many open findings there are, and a check that
could not run is "could not evaluate", never ranked as a (critical) finding."""

from __future__ import annotations

import json
import re

import boto3

from bot.findings import FindingStatus, open_count
from bot.queries import FindingsFilter, findings_report
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


def test_scan_findings_digest_and_app_home_agree_on_the_open_count(bot):
    """The four surfaces after one real scan: the scan's message, /iam findings, the digest posted
    in the channel, and a member's App Home, each counting with ``open_count``; the checks that could
    not evaluate are said as such, never counted."""
    from handlers.client import build_client
    from handlers.digest import post_digest
    from handlers.identity import refresh_directory

    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="alice", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    iam.create_login_profile(UserName="alice", Password="Passw0rd!Passw0rd!")
    iam.attach_user_policy(UserName="alice", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.create_access_key(UserName="alice")
    iam.create_user(UserName="svc-build")
    iam.create_access_key(UserName="svc-build")
    client = build_client(bot.services)
    refresh_directory(bot.services, client)
    [scan] = scan_accounts(bot.services, directory=client)
    expected = open_count(scan.findings)
    unknown = [f for f in scan.findings if f.status == FindingStatus.UNKNOWN]
    assert expected and unknown

    assert f"{expected} open findings" in scan_result_message([scan]).text
    assert (
        f"{expected} open IAM findings"
        in findings_message(findings_report(bot.services, FindingsFilter()), file_note=None).text
    )

    post_digest(bot.services, client)
    [headline] = [m for m in bot.slack.messages("C0SECURITY") if "digest" in m["text"].lower()][:1]
    counted = dict(
        (severity, int(n))
        for n, severity in re.findall(r"(\d+) (critical|high|medium|low)", headline["text"])
    )
    assert sum(counted.values()) == expected, headline["text"]
    assert f"{len(unknown)} could not be evaluated" in json.dumps(headline["blocks"])

    alice = [f for f in scan.findings if f.principal_name == "alice"]
    assert open_count(alice)
    bot.sender.app_home_opened("U0ALICE")
    home = json.dumps(bot.slack.wait_for("views.publish")[-1].args["view"])
    n = open_count(alice)
    assert f"{n} open finding{'s' if n != 1 else ''}" in home


def test_a_members_check_that_could_not_evaluate_is_shown_but_not_counted_as_open():
    """App Home and /iam whoami-risks: a principal's unknown check is listed as "could not
    evaluate" and said beside the open count, never inside it."""
    from datetime import UTC, datetime

    from bot.findings import Finding, Severity
    from bot.identity import PrincipalRef
    from bot.queries import MemberKeys, MemberRisks
    from handlers.queries import home_blocks, risks_message

    def finding(check_id: str, severity: Severity, status: FindingStatus) -> Finding:
        return Finding(
            check_id=check_id,
            severity=severity,
            account_id="123456789012",
            principal_arn="arn:aws:iam::123456789012:user/alice",
            principal_name="alice",
            title=check_id.replace("_", " ").lower(),
            detail="",
            remediation="",
            status=status,
        )

    risks = MemberRisks(
        user_id="U0ALICE",
        snapshots=[],
        status="ok",
        principals=[
            PrincipalRef(
                account_id="123456789012",
                arn="arn:aws:iam::123456789012:user/alice",
                name="alice",
                kind="user",
            )
        ],
        findings=[
            finding("ADMIN_POLICY_ATTACHED", Severity.HIGH, FindingStatus.FAIL),
            finding("PRIVILEGE_ESCALATION", Severity.CRITICAL, FindingStatus.UNKNOWN),
        ],
    )
    assert risks.open_count == 1 and risks.unknown == 1 and "critical" not in risks.counts
    keys = MemberKeys(user_id="U0ALICE", status="ok", users=[], keys=[], snapshots=[])
    home = json.dumps(home_blocks(risks, keys, datetime.now(UTC)))
    assert "1 open finding:" in home and "1 check could not evaluate" in home
    assert "0 critical" not in home and "\\ud83d\\udd34 1 critical" not in home
    message = risks_message(risks, title="Your IAM risks", subject="you")
    assert "1 open finding on" in json.dumps(message.blocks)
    assert "1 check could not evaluate" in json.dumps(message.blocks)
