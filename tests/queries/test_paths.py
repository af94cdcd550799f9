"""``/iam paths PRINCIPAL`` end to end: a moto account with a two-hop route, a real scan stored in
SQLite, signed slash commands to the bot over HTTP, and the pure Block Kit builder."""

from __future__ import annotations

import json

from bot.findings import Finding, Severity
from bot.identity import PrincipalRef
from handlers.queries import paths_message
from tests.conftest import ACCOUNT_ID
from tests.queries.test_queries import block_text, run_scan

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def _trust(principal: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}],
        }
    )


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def seed_route(services) -> None:
    """dev may assume jump (its trust names dev); jump may assume admin (its trust names jump)."""
    iam = services.aws.client("iam")
    iam.create_role(RoleName="admin", AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{ACCOUNT_ID}:role/jump"))
    iam.attach_role_policy(RoleName="admin", PolicyArn=ADMIN)
    iam.create_role(RoleName="jump", AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{ACCOUNT_ID}:user/dev"))
    iam.put_role_policy(
        RoleName="jump",
        PolicyName="hop",
        PolicyDocument=_policy(
            {"Sid": "ToAdmin", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
        ),
    )
    iam.create_user(UserName="dev")
    iam.put_user_policy(
        UserName="dev",
        PolicyName="hop",
        PolicyDocument=_policy(
            {
                "Sid": "ToJump",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            }
        ),
    )
    iam.create_user(UserName="reader")


def test_paths_shows_each_hop_with_its_statement_for_the_security_team(make_bot):
    bot = make_bot()
    seed_route(bot.services)
    run_scan(bot.services)
    text = block_text(bot.command("U0SEC1", "paths dev").json())
    assert "2 hops" in text and "`role/admin`" in text
    assert "1. `user/dev` → `role/jump`" in text and "2. `role/jump` → `role/admin`" in text
    assert "statement Sid ToJump" in text and "statement Sid ToAdmin" in text
    assert "aws:SourceIp" in text  # the unknown condition key is named
    # the finding list shows the hop count too
    assert "· 2 hops" in block_text(bot.command("U0SEC1", "risks dev").json())


def test_paths_of_a_principal_without_one_says_so(make_bot):
    bot = make_bot()
    seed_route(bot.services)
    run_scan(bot.services)
    text = block_text(bot.command("U0SEC1", f"paths arn:aws:iam::{ACCOUNT_ID}:user/reader").json())
    assert "No escalation path for user `reader`" in text


def test_paths_is_for_the_security_team_and_escapes_what_was_typed(make_bot):
    bot = make_bot()
    seed_route(bot.services)
    run_scan(bot.services)
    refused = block_text(bot.command("U0BOB", "paths dev").json())
    assert "for the security team" in refused and "role/admin" not in refused
    assert "Usage:" in block_text(bot.command("U0SEC1", "paths").json())
    text = block_text(bot.command("U0SEC1", "paths <!channel>&x").json())
    assert "<!channel>" not in text and "&lt;!channel&gt;&amp;x" in text


def test_paths_before_any_scan_says_there_is_none(make_bot):
    text = block_text(make_bot().command("U0SEC1", "paths dev").json())
    assert "no scan yet" in text.lower()


def test_paths_builder_stays_within_block_kit_limits():
    ref = PrincipalRef(ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:user/dev", "dev", "user")
    hop = {
        "from": ref.arn,
        "to": f"arn:aws:iam::{ACCOUNT_ID}:role/r",
        "method": "assume-any-role",
        "title": "Assume <any> & role",
        "actions": ["sts:AssumeRole"],
        "statements": ["inline policy x, statement Sid S" * 20],
        "conditional": True,
        "condition_keys": ["aws:SourceIp"],
        "possible_denies": [],
    }
    findings = [
        Finding(
            check_id="PRIVILEGE_ESCALATION",
            severity=Severity.HIGH,
            account_id=ACCOUNT_ID,
            principal_arn=ref.arn,
            principal_name="dev",
            title="Principal can escalate its own privileges",
            detail="…",
            remediation="",
            detail_key=f"m{i}",
            extra={"hop_count": 30, "hops": [hop] * 30, "admin": hop["to"], "conditional": True},
        )
        for i in range(80)
    ]
    message = paths_message([ref], findings, []).checked(overflow_name="paths.txt")
    assert len(message.blocks) <= 50
    assert all(len((b.get("text") or {}).get("text", "")) <= 3000 for b in message.blocks)
    assert "Assume &lt;any&gt; &amp; role" in json.dumps(message.blocks)
    assert message.attachment is not None  # what did not fit goes to the DM file, never cut silently
