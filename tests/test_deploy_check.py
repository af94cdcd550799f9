"""``iamwarden check`` against moto and FakeSlack through the real CLI: a ready deployment exits 0,
every way it can be not ready is one FAIL row naming what to fix, and nothing is changed
(no database written, nothing posted, no AWS state touched)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.conftest import ACCOUNT_ID, BOT_TOKEN

ROOT = Path(__file__).resolve().parents[1]

CONFIG = f"""
[slack]
approvals_channel = "C0APPROVALS"
security_channel = "C0SECURITY"
digest_channel = "C0SECURITY"
security_team = ["U0SEC1"]

[[roles]]
name = "prod-admin"
arn = "arn:aws:iam::{ACCOUNT_ID}:role/prod-admin"
approvers = ["U0LEAD1"]
"""


def create_role(name: str = "prod-admin") -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    boto3.client("iam", region_name="us-east-1").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)
    )


@pytest.fixture
def check(aws, slack, tmp_path):
    slack.add_channel("C0APPROVALS", name="approvals")
    slack.add_channel("C0SECURITY", name="security")

    def run(config: str = CONFIG, **env: str) -> subprocess.CompletedProcess:
        path = tmp_path / "iamwarden.toml"
        path.write_text(config)
        full = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            **aws.env(),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "IAMWARDEN_SLACK_API_URL": slack.base_url,
            "IAMWARDEN_CONFIG": str(path),
            "IAMWARDEN_DB": str(tmp_path / "iamwarden.db"),
            **env,
        }
        return subprocess.run(
            [sys.executable, "-m", "iamwarden", "check"],
            capture_output=True,
            text=True,
            env=full,
            cwd=ROOT,
            timeout=120,
        )

    return run


def rows(result: subprocess.CompletedProcess, status: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if f"  {status}  " in line]


def test_a_ready_deployment_exits_0_and_changes_nothing(check, slack, tmp_path):
    create_role()
    before = len(slack.calls)
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nready: 0 failed" in result.stdout
    assert rows(result, "FAIL") == []
    for item in (
        "token",
        "C0APPROVALS (approvals_channel)",
        "identity",
        "iam:ListRoles",
        "prod-admin: iam:GetRole",
    ):
        assert any(item in line and "  ok  " in line for line in result.stdout.splitlines()), item
    # Nothing changed: no database, nothing posted, the role has no inline policy.
    assert not (tmp_path / "iamwarden.db").exists()
    methods = {c.method for c in slack.calls[before:]}
    assert methods <= {"auth.test", "conversations.info"}, methods
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.list_role_policies(RoleName="prod-admin")["PolicyNames"] == []


def test_a_channel_the_bot_is_not_in_is_not_ready(check, slack):
    create_role()
    slack.add_channel("C0SECURITY", name="security", is_member=False)
    result = check()
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "C0SECURITY" in failed and "not a member" in failed and "/invite" in failed


def test_an_archived_channel_is_not_ready(check, slack):
    create_role()
    slack.add_channel("C0APPROVALS", name="approvals", is_archived=True)
    result = check()
    assert result.returncode == 1 and "archived" in rows(result, "FAIL")[0]


def test_a_wrong_slack_token_is_not_ready(check):
    create_role()
    result = check(SLACK_BOT_TOKEN="xoxb-wrong")
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "auth.test failed: invalid_auth" in failed
    assert "xoxb-wrong" not in result.stdout + result.stderr  # the token is never printed


def test_a_configured_role_that_does_not_exist_is_not_ready(check):
    result = check()
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "prod-admin" in failed and "does not exist" in failed


def test_an_account_whose_reader_role_is_elsewhere_is_not_ready(check):
    create_role()
    config = (
        CONFIG
        + '\n[[accounts]]\nid = "210987654321"\nrole_arn = "arn:aws:iam::111111111111:role/iamwarden-audit"\n'
    )
    result = check(config)
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "210987654321" in failed and "is in account 111111111111" in failed


def test_aws_unreachable_is_not_ready_and_says_so(check):
    create_role()
    result = check(AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [failed] = rows(result, "FAIL")
    assert "identity" in failed and "Could not reach AWS" in failed


def test_no_slack_token_and_no_aws_credentials_is_not_ready_in_one_table(check, tmp_path):
    result = check(
        SLACK_BOT_TOKEN="",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        AWS_SESSION_TOKEN="",
        AWS_SECURITY_TOKEN="",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    failed = rows(result, "FAIL")
    assert any("token" in line for line in failed) and any("identity" in line for line in failed)


def test_more_approvals_than_the_approver_group_can_give_is_not_ready(check, slack):
    create_role()
    slack.set_usergroup("sre-leads", ["U0LEAD2"])
    config = CONFIG.replace('approvers = ["U0LEAD1"]', 'approvers = ["@sre-leads"]\napprovals_required = 2')
    result = check(config)
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "prod-admin" in failed and "approvals_required = 2 but only 1 people can approve" in failed


def test_an_approver_group_slack_does_not_know_is_not_ready(check):
    create_role()
    result = check(CONFIG.replace('approvers = ["U0LEAD1"]', 'approvers = ["@nobody-here"]'))
    assert result.returncode == 1
    [failed] = rows(result, "FAIL")
    assert "@nobody-here" in failed


def test_a_private_channel_the_bot_is_in_is_ready(check, slack):
    create_role()
    slack.add_channel("C0SECURITY", name="security", is_private=True)
    result = check()
    assert result.returncode == 0, result.stdout
    assert any("C0SECURITY" in line and "  ok  " in line for line in result.stdout.splitlines())


def test_without_the_channel_read_scopes_membership_is_a_warning_naming_them(check, slack):
    # An app installed from an older manifest (no channels:read / groups:read): Slack answers
    # conversations.info with missing_scope; the check says what to add instead of failing.
    create_role()
    slack.fail_next("conversations.info", error="missing_scope", times=2)
    result = check()
    assert result.returncode == 0, result.stdout
    warned = rows(result, "warn")
    assert len([w for w in warned if "membership not verified" in w]) == 2
    assert all("channels:read / groups:read" in w for w in warned if "membership" in w)
