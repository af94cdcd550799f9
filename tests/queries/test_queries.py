"""``/iam`` questions end to end: signed HTTP to the bot, the local Slack server, a moto-backed scan."""

from __future__ import annotations

import csv
import importlib
import io
import json
import shutil
from datetime import timedelta

import pytest

from bot import identity
from bot.clock import FrozenClock
from handlers.client import build_client
from tests.aws_stubs import access_analyzer, analyzer_server  # noqa: F401, F811 - fixtures
from tests.conftest import ACCOUNT_ID, MEMBERS, NOW

ALICE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"
DENY_DELETE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Deploy", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteBucket"], "Resource": "*"},
        {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
    ],
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def block_text(body: dict) -> str:
    """Everything a person would read in a message or view (fallback text, blocks, fields)."""
    parts = [body.get("text") or ""]
    blocks = body.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for item in block.get("fields", []) or []:
            parts.append(item.get("text", ""))
        for el in block.get("elements", []) or []:
            if isinstance(el, dict):
                t = el.get("text")
                parts.append(t.get("text", "") if isinstance(t, dict) else t or "")
    return "\n".join(parts)


def seed(aws_sandbox, services) -> None:
    """alice: an admin with console and no MFA, a 200-day-old key. lead1: clean. svc-deploy: a
    service user with an explicit Deny. ops: an admin role. bob (a Slack member) owns nothing."""
    iam = services.aws.client("iam")
    iam.create_user(UserName="alice", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    iam.create_access_key(UserName="alice")
    aws_sandbox.age_user("alice", created=NOW - timedelta(days=400))
    aws_sandbox.age_access_key(
        "alice", created=NOW - timedelta(days=200), last_used=NOW - timedelta(days=2), service="s3"
    )
    iam.attach_user_policy(UserName="alice", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.create_login_profile(UserName="alice", Password="Test-Passw0rd!")
    aws_sandbox.set_password_last_used("alice", NOW - timedelta(days=1))
    iam.create_user(UserName="lead1", Tags=[{"Key": "email", "Value": "lead1@example.com"}])
    iam.create_user(UserName="svc-deploy")
    iam.put_user_policy(UserName="svc-deploy", PolicyName="deploy", PolicyDocument=json.dumps(DENY_DELETE))
    iam.create_role(RoleName="ops", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName="ops", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")


def run_scan(services) -> None:
    """A real scan of the moto account (bot.scan), stored as the latest snapshot."""
    from bot.scan import scan_accounts

    # moto writes the credential report at once: no need to wait between polls.
    (result,) = scan_accounts(services, sleep=lambda _: None)
    assert result.ok, result.error


@pytest.fixture(scope="module")
def scanned_db(tmp_path_factory, moto_server, slack_server, analyzer_server):  # noqa: F811
    """One real scan of the seeded moto account, stored in a SQLite file that each test copies
    (answers never call AWS, so a test needs the stored snapshot, not the live account)."""
    from tests.conftest import make_services

    with pytest.MonkeyPatch.context() as mp:
        moto_server.reset()
        analyzer_server.reset()
        for key, value in {**moto_server.env(), **analyzer_server.env()}.items():
            mp.setenv(key, value)
        slack_server.reset(users=True)
        for user_id, (name, email) in MEMBERS.items():
            slack_server.add_user(user_id, name=name, real_name=name.title(), email=email)
        path = tmp_path_factory.mktemp("queries")
        services = make_services(path, slack_server, FrozenClock(NOW))
        seed(moto_server, services)
        identity.refresh_directory(services, build_client(services))
        run_scan(services)
        services.store.close()
    return path / "iamwarden.db"


@pytest.fixture
def world(make_bot, scanned_db, tmp_path):
    """The bot on a copy of the scanned database (directory cached, one snapshot stored)."""
    db = tmp_path / "world.db"
    shutil.copy(scanned_db, db)
    return make_bot(db=db)


def _slack_calls(bot) -> list[str]:
    return [c.method for c in bot.slack.calls if c.method != "auth.test"]


def _respond_bodies(bot, count: int = 1) -> list[dict]:
    return [c.args for c in bot.slack.wait_for("response_url", count=count)]


# --------------------------------------------------------------------------- whoami-risks


def test_whoami_risks_lists_the_callers_findings_with_fixes_in_the_ack(world):
    before_aws = world.services.aws.counter.total
    before_slack = _slack_calls(world)
    response = world.command("U0ALICE", "whoami-risks")
    body = response.json()
    assert body["response_type"] == "ephemeral"
    text = block_text(body)
    assert "Administrator without MFA" in text and "`alice`" in text
    assert "Why it matters:" in text and "Console:" in text and "CLI: `aws iam" in text
    # Most severe first.
    assert text.index("Administrator without MFA") < text.index("Access key not rotated")
    # Answered from the snapshot: no AWS call, no Web API call.
    assert world.services.aws.counter.total == before_aws
    assert _slack_calls(world) == before_slack
    assert "svc-deploy" not in text and "lead1" not in text


def test_whoami_risks_for_an_unmapped_member_says_how_to_get_linked(world):
    text = block_text(world.command("U0BOB", "whoami-risks").json())
    assert "not linked to any IAM user or role" in text
    assert "`email`" in text and "[identity] map" in text


def test_whoami_risks_clean_member_gets_the_snapshot_time(world):
    text = block_text(world.command("U0LEAD1", "whoami-risks").json())
    assert "Nothing to fix" in text
    assert "2026-11-29 12:00 UTC" in text


def test_whoami_risks_before_any_scan_says_when_the_next_scan_runs(bot):
    text = block_text(bot.command("U0ALICE", "whoami-risks").json())
    assert "no scan yet" in text
    assert "2026-11-30 07:00 UTC" in text  # [schedule] scan_cron "0 7 * * *" after 2026-11-29 12:00


def test_whoami_risks_rejects_arguments_with_escaped_usage(world):
    text = block_text(world.command("U0ALICE", "whoami-risks <!channel> <@U0SEC1>").json())
    assert "Usage:" in text
    assert "<!channel>" not in text and "<@U0SEC1>" not in text


def test_whoami_risks_is_open_to_members_outside_the_security_team(world):
    assert "Administrator without MFA" in block_text(world.command("U0ALICE", "whoami-risks").json())


def test_whoami_risks_spans_accounts_and_the_explicit_map(make_bot, scanned_db, tmp_path):
    from bot.findings import Finding, Severity, save_snapshot
    from tests.conftest import DEFAULT_CONFIG

    db = tmp_path / "two.db"
    shutil.copy(scanned_db, db)
    config = {
        **DEFAULT_CONFIG,
        "identity": {"map": {"U0BOB": ["ops", "arn:aws:iam::210987654321:user/bob-ci"]}},
    }
    bot = make_bot(config, db=db)
    other = "210987654321"
    arn = f"arn:aws:iam::{other}:user/bob-ci"
    save_snapshot(
        bot.store,
        account_id=other,
        account_name="staging",
        scanned_at=NOW,
        api_calls=3,
        inventory={
            "account_id": other,
            "users": [{"UserName": "bob-ci", "Arn": arn, "Tags": []}],
            "roles": [],
        },
        findings=[
            Finding(
                check_id="ACCESS_KEY_UNUSED",
                severity=Severity.MEDIUM,
                account_id=other,
                principal_arn=arn,
                principal_name="bob-ci",
                title="Active access key unused",
            )
        ],
    )
    text = block_text(bot.command("U0BOB", "whoami-risks").json())
    assert "role `ops` in 123456789012" in text and "user `bob-ci` in 210987654321" in text
    assert "Administrator access attached" in text and "Active access key unused" in text
    assert "staging (210987654321) scanned" in text


# --------------------------------------------------------------------------- keys


def test_keys_shows_slot_status_age_last_use_and_rotation_without_aws(world):
    before_aws = world.services.aws.counter.total
    body = world.command("U0ALICE", "keys").json()
    text = block_text(body)
    assert body["response_type"] == "ephemeral"
    assert "`alice` key 1" in text and "active" in text
    assert "2026-05-13 (200 days ago)" in text
    assert "last used 2026-11-27" in text
    assert "older than 90 days" in text
    assert "aws iam create-access-key --user-name alice" in text
    assert "update-access-key" in text and "delete-access-key" in text
    assert "`alice` key 2" not in text  # never issued (N/A)
    assert world.services.aws.counter.total == before_aws


def test_keys_for_unmapped_and_clean_members(world):
    assert "not linked" in block_text(world.command("U0BOB", "keys").json())
    assert "No access keys on `lead1`" in block_text(world.command("U0LEAD1", "keys").json())


def test_keys_malformed_input_gets_usage_and_never_pings(world):
    text = block_text(world.command("U0ALICE", "keys <!here>").json())
    assert "Usage: " in text and "<!here>" not in text


# --------------------------------------------------------------------------- findings (security team)


def test_findings_summary_and_full_csv_in_the_requesters_dm(world):
    response = world.command("U0SEC1", "findings")
    assert "Gathering" in response.json()["text"]
    body = _respond_bodies(world)[0]
    text = block_text(body)
    assert body["response_type"] == "ephemeral"
    assert "open findings" in text and ":red_circle:" in text and "By check:" in text
    assert "sent to you in our DM" in text
    upload = world.slack.wait_for("files.completeUploadExternal")[0]
    files = world.slack.files()
    assert len(files) == 1
    content = files[0]["content"]
    content = content.decode() if isinstance(content, bytes) else content
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][:4] == ["account_id", "severity", "status", "check_id"]
    # Every open finding is in the file: none cut.
    stored = world.services.store.execute("SELECT count(*) FROM findings WHERE suppressed = 0").fetchone()[0]
    assert len(rows) - 1 == stored
    dm = world.slack.calls_to("conversations.open")[0]
    assert "U0SEC1" in str(dm.args.get("users"))
    assert upload.args.get("channel_id", "").startswith("D")


def test_findings_filter_by_severity_and_check(world):
    world.command("U0SEC1", "findings critical")
    text = block_text(_respond_bodies(world)[0])
    assert "severity critical or worse" in text
    assert ":large_orange_circle:" not in text.split("Top")[0]
    world.command("U0SEC1", "findings ACCESS_KEY_NOT_ROTATED")
    text = block_text(_respond_bodies(world, 2)[1])
    assert "Access key not rotated" in text and "1 open finding" in text


def test_findings_team_via_user_group(world):
    world.command("U0SEC2", "findings")
    assert "open findings" in block_text(_respond_bodies(world)[0])


def test_findings_refused_politely_to_non_team_and_nothing_leaks(world):
    body = world.command("U0ALICE", "findings").json()
    text = block_text(body)
    assert "for the security team" in text
    assert "Administrator" not in text and "alice" not in text
    assert world.slack.calls_to("response_url") == []
    assert world.slack.files() == []


def test_findings_unknown_filter_gets_usage_and_suggestions(world):
    world.command("U0SEC1", "findings critcal")
    text = block_text(_respond_bodies(world)[0])
    assert "Usage:" in text and "`critical`" in text


def test_findings_mention_injection_is_escaped(world):
    world.command("U0SEC1", "findings <!channel>")
    text = block_text(_respond_bodies(world)[0])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


# --------------------------------------------------------------------------- risks (security team)


def test_risks_of_a_member_by_mention(world):
    text = block_text(world.command("U0SEC1", "risks <@U0ALICE|alice>").json())
    assert "Administrator without MFA" in text and "`alice`" in text


def test_risks_of_a_role_by_arn_and_a_user_by_name(world):
    text = block_text(world.command("U0SEC1", f"risks arn:aws:iam::{ACCOUNT_ID}:role/ops").json())
    assert "Administrator access attached" in text
    assert "`lead1`" in block_text(world.command("U0SEC1", "risks LEAD1").json())


def test_risks_unknown_principal_gets_closest_names(world):
    text = block_text(world.command("U0SEC1", "risks alcie").json())
    assert "No principal `alcie`" in text and "`alice`" in text
    # A bare @handle (a client that did not turn it into a mention) is looked up in the directory.
    assert "Administrator without MFA" in block_text(world.command("U0SEC1", "risks @alice").json())
    text = block_text(world.command("U0SEC1", "risks @alicee").json())
    assert "No principal `@alicee`" in text and "`@alice`" in text


def test_risks_of_an_unmapped_member_never_pings_them(world):
    text = block_text(world.command("U0SEC1", "risks <@U0BOB|bob>").json())
    assert "not linked" in text and "<@U0BOB" not in text


def test_risks_refused_to_non_team(world):
    text = block_text(world.command("U0BOB", "risks alice").json())
    assert "for the security team" in text and "Administrator" not in text


def test_risks_malformed_and_injection(world):
    assert "Usage:" in block_text(world.command("U0SEC1", "risks").json())
    text = block_text(world.command("U0SEC1", "risks <!channel>").json())
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


# --------------------------------------------------------------------------- can


def test_can_names_the_allowing_policy(world):
    before_aws = world.services.aws.counter.total
    text = block_text(world.command("U0BOB", "can alice iam:CreateUser").json())
    assert ":white_check_mark:" in text and "*can*" in text
    assert "managed policy AdministratorAccess" in text
    assert world.services.aws.counter.total == before_aws


def test_can_names_the_explicit_deny_by_sid(world):
    text = block_text(world.command("U0BOB", "can svc-deploy s3:DeleteBucket").json())
    assert "explicitly denied" in text and "inline policy deploy, statement Sid NoDelete" in text
    text = block_text(world.command("U0BOB", "can svc-deploy s3:PutObject arn:aws:s3:::bucket/key").json())
    assert "*can*" in text and "Sid Deploy" in text and "`arn:aws:s3:::bucket/key`" in text


def test_can_implicit_deny_and_member_mention(world):
    text = block_text(world.command("U0SEC1", "can lead1 s3:GetObject").json())
    assert "*cannot*" in text and "no statement allows it" in text
    text = block_text(world.command("U0SEC1", "can <@U0ALICE|alice> iam:CreateUser").json())
    assert "user `alice`" in text and "*can*" in text


def test_can_unknown_principal_unmapped_member_and_bad_action(world):
    text = block_text(world.command("U0BOB", "can alise s3:GetObject").json())
    assert "No principal `alise`" in text and "`alice`" in text
    assert "not linked" in block_text(world.command("U0ALICE", "can <@U0BOB|bob> s3:GetObject").json())
    text = block_text(world.command("U0BOB", "can alice s3:GetObjekt").json())
    assert "not an action I know" in text and "`s3:GetObject`" in text
    assert "no wildcards" in block_text(world.command("U0BOB", "can alice s3:Get*").json())


def test_can_malformed_and_injection(world):
    assert "Usage:" in block_text(world.command("U0BOB", "can alice").json())
    text = block_text(world.command("U0BOB", "can <!channel> s3:GetObject").json())
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    text = block_text(world.command("U0BOB", "can alice s3:GetObject <@U0SEC1>").json())
    assert "<@U0SEC1>" not in text and "&lt;@U0SEC1&gt;" in text


# --------------------------------------------------------------------------- who-can


def test_who_can_lists_principals_and_what_grants_it(world):
    before_aws = world.services.aws.counter.total
    response = world.command("U0BOB", "who-can iam:CreateUser")
    assert "Checking every user and role" in response.json()["text"]
    text = block_text(_respond_bodies(world)[0])
    assert "user `alice`" in text and "role `ops`" in text
    assert "managed policy AdministratorAccess" in text
    assert "lead1" not in text and "svc-deploy" not in text
    assert world.services.aws.counter.total == before_aws


def test_who_can_respects_explicit_deny(world):
    world.command("U0BOB", "who-can s3:DeleteBucket")
    text = block_text(_respond_bodies(world)[0])
    assert "svc-deploy" not in text and "user `alice`" in text
    world.command("U0BOB", "who-can s3:PutObject arn:aws:s3:::bucket/key")
    text = block_text(_respond_bodies(world, 2)[1])
    assert "user `svc-deploy`" in text and "Sid Deploy" in text


def test_who_can_malformed_and_injection(world):
    world.command("U0BOB", "who-can")
    assert "Usage:" in block_text(_respond_bodies(world)[0])
    world.command("U0BOB", "who-can <!channel>")
    text = block_text(_respond_bodies(world, 2)[1])
    assert "<!channel>" not in text and "no wildcards" in text


def test_who_can_before_any_scan(bot):
    bot.command("U0BOB", "who-can s3:GetObject")
    assert "no scan yet" in block_text(_respond_bodies(bot)[0])


# --------------------------------------------------------------------------- scan (security team)


def test_scan_refused_to_non_team_without_touching_aws(world):
    before = world.services.aws.counter.total
    text = block_text(world.command("U0ALICE", "scan").json())
    assert "for the security team" in text
    assert world.services.aws.counter.total == before


def test_scan_runs_after_the_ack_and_posts_the_result(bot, aws, access_analyzer):  # noqa: F811
    seed(aws, bot.services)
    response = bot.command("U0SEC1", "scan")
    assert "Starting a scan" in response.json()["text"]
    text = block_text(_respond_bodies(bot)[0])
    assert "Scan finished" in text and "open findings" in text
    assert "Administrator without MFA" in block_text(bot.command("U0SEC1", "risks alice").json())
    assert any(r["action"] == "scan.requested" for r in bot.store.audit_rows())


def test_scan_with_arguments_gets_usage(world):
    world.command("U0SEC1", "scan <!channel>")
    text = block_text(_respond_bodies(world)[0])
    assert "Usage:" in text and "nothing was started" in text and "<!channel>" not in text
    assert not any(r["action"] == "scan.requested" for r in world.store.audit_rows())


# --------------------------------------------------------------------------- App Home


def test_home_shows_the_members_risks_keys_and_next_steps(world):
    world.sender.app_home_opened("U0ALICE")
    world.slack.wait_for("views.publish")
    view = world.slack.home_view("U0ALICE")
    text = block_text(view)
    assert "Your IAM risks" in text and "Administrator without MFA" in text
    assert "`alice` key 1" in text
    action_ids = [el["action_id"] for b in view["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert "queries_show_risks" in action_ids and "queries_show_keys" in action_ids


def test_home_button_opens_the_clicking_members_own_risks(world):
    # The value is ignored: bob clicking a button forged with alice's data sees his own answer.
    world.sender.block_action("U0ALICE", "queries_show_risks", "risks")
    opened = world.slack.wait_for("views.open")[0]
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "Why it matters" in block_text(view)
    world.sender.block_action("U0BOB", "queries_show_keys", "alice")
    opened = world.slack.wait_for("views.open", count=2)[1]
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "not linked" in block_text(view)


def test_home_for_an_unmapped_member_says_how_to_get_linked(world):
    world.sender.app_home_opened("U0BOB")
    world.slack.wait_for("views.publish")
    assert "not linked" in block_text(world.slack.home_view("U0BOB"))


# --------------------------------------------------------------------------- the directory


def test_directory_refresh_pages_users_list_and_requests_never_call_it(bot, aws, access_analyzer):  # noqa: F811
    count = identity.refresh_directory(bot.services, build_client(bot.services), page_size=2).stored
    assert count >= len(MEMBERS)
    calls = bot.slack.calls_to("users.list")
    assert len(calls) == (count + 1) // 2 and calls[1].args.get("cursor")
    from bot.identity import slack_member

    assert slack_member(bot.store, "U0ALICE")["email"] == "alice@example.com"
    seed(aws, bot.services)
    run_scan(bot.services)
    bot.command("U0ALICE", "whoami-risks")
    bot.command("U0ALICE", "keys")
    assert len(bot.slack.calls_to("users.list")) == len(calls)


def test_directory_job_refreshes_when_never_cached_or_stale_and_only_then(bot, clock):
    importlib.import_module("iamwarden.features").load("jobs")  # declares every feature's jobs
    from bot.jobs import JOBS

    spec = next(spec for spec in JOBS if spec.name == "directory-refresh")
    assert spec.every_seconds(bot.services) <= 300  # a new deployment gets its directory within minutes
    client = build_client(bot.services)
    spec.run(bot.services, client)
    assert len(bot.slack.calls_to("users.list")) == 1  # never cached: refreshed at once
    clock.advance(hours=5)
    spec.run(bot.services, client)
    assert len(bot.slack.calls_to("users.list")) == 1  # fresh: nothing called
    clock.advance(hours=1)
    spec.run(bot.services, client)
    assert len(bot.slack.calls_to("users.list")) == 2  # [identity] directory_refresh (6 h) passed
