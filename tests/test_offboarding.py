"""Offboarding end to end: a deactivated Slack member's IAM user found by a moto-backed scan, shown
first in the digest, and Disable access really deactivating keys and deleting the login profile."""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from bot import access
from bot.aws import AwsFactory
from bot.checks.catalog import CHECKS, CheckContext
from bot.federation import FederationStandIn
from bot.identity import IdentityMap, store_directory
from bot.offboarding import OffboardingError, disable_access
from bot.scan import scan_accounts
from bot.settings import Config
from handlers.client import build_client
from handlers.digest import post_digest
from handlers.directory import member_is_active
from handlers.ids import ActionId
from sandbox.slack_api import load_fixture
from tests.access.support import (
    APPROVALS,
    create_role,
    make_config,
    request_and_approve,
    text_of,
)
from tests.access.support import click as access_click
from tests.conftest import ACCOUNT_ID
from tests.digest.support import CHANNEL, buttons_in, click, csv_rows, headlines, texts, thread


def iam():
    return boto3.client("iam", region_name="us-east-1")


def seed(slack) -> None:
    """dana left (Slack deactivated) with a key and a console password; ghost has a key and no owner;
    alice is owned by an active member."""
    client = iam()
    client.create_user(UserName="dana", Tags=[{"Key": "email", "Value": "dana@example.com"}])
    client.create_access_key(UserName="dana")
    client.create_access_key(UserName="dana")
    client.create_login_profile(UserName="dana", Password="Old-Passw0rd!")  # noqa: S106 - moto only
    client.create_user(UserName="ghost")
    client.create_access_key(UserName="ghost")
    client.create_user(UserName="alice", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    client.create_access_key(UserName="alice")
    client.create_user(UserName="nobody-no-creds")
    slack.add_user("U0DANA", name="dana", real_name="Dana", email="dana@example.com", deleted=True)


def refresh_directory(bot) -> None:
    members = build_client(bot.services).users_list()["members"]
    store_directory(bot.store, members, bot.services.clock.now())


def scan(bot):
    [result] = scan_accounts(bot.services, sleep=lambda s: None)
    assert result.ok, result.error
    return result.findings


def ownership(findings, check_id):
    return {f.principal_name for f in findings if f.check_id == check_id and f.status == "fail"}


@pytest.fixture
def offboarding_bot(bot, slack, aws):
    seed(slack)
    refresh_directory(bot)
    return bot


def test_scan_finds_the_deactivated_members_user_and_the_unowned_one(offboarding_bot):
    findings = scan(offboarding_bot)
    assert ownership(findings, "OFFBOARDED_USER_ACTIVE") == {"dana"}
    assert ownership(findings, "UNOWNED_USER") == {"ghost"}
    dana = next(f for f in findings if f.check_id == "OFFBOARDED_USER_ACTIVE")
    assert dana.severity == "critical" and dana.owner == "U0DANA"
    assert "U0DANA" in dana.detail and "console password" in dana.detail and "access key 1" in dana.detail


def test_ownership_checks_without_a_directory_say_could_not_evaluate(aws, clock):
    inventory = {"account_id": ACCOUNT_ID, "credential_report": [], "users": []}
    config = Config()
    for check_id in ("OFFBOARDED_USER_ACTIVE", "UNOWNED_USER"):
        no_owners = CHECKS[check_id].run(CheckContext(inventory=inventory, config=config, now=clock.now()))
        empty = CHECKS[check_id].run(
            CheckContext(inventory=inventory, config=config, now=clock.now(), owners=IdentityMap())
        )
        for result in (no_owners, empty):
            assert [f.status for f in result] == ["unknown"]
            assert "could not evaluate" in result[0].detail


def test_digest_puts_offboarding_first_and_disable_access_really_cuts_access(offboarding_bot, clock):
    bot = offboarding_bot
    scan(bot)
    posted = post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[0]
    assert "Needs offboarding first (2)" in texts(head)
    first_reply = thread(bot.slack, posted.ts)[0]
    assert first_reply["blocks"][0]["text"]["text"] == "Needs offboarding (2)"
    disable = [b for b in buttons_in(head) if b["action_id"] == ActionId.DIGEST_DISABLE_ACCESS]
    assert len(disable) == 2 and all(b.get("confirm") for b in disable)
    dana_fp = next(f["fingerprint"] for f in csv_rows(bot.slack) if f["check_id"] == "OFFBOARDED_USER_ACTIVE")

    # Not on the security team: refused, AWS untouched.
    click(bot, "U0ALICE", head, ActionId.DIGEST_DISABLE_ACCESS, dana_fp)
    assert "security team" in bot.slack.wait_for("chat.postEphemeral")[0].args["text"]
    assert {k["Status"] for k in iam().list_access_keys(UserName="dana")["AccessKeyMetadata"]} == {"Active"}

    click(bot, "U0SEC1", head, ActionId.DIGEST_DISABLE_ACCESS, dana_fp)
    note = bot.slack.wait_for("chat.postMessage", lambda c: "Disable access" in c.args.get("text", ""))[0]
    assert note.args["thread_ts"] == head["ts"]
    keys = iam().list_access_keys(UserName="dana")["AccessKeyMetadata"]
    assert [k["Status"] for k in keys] == ["Inactive", "Inactive"]
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_login_profile(UserName="dana")
    for key in keys:  # exactly what changed is reported
        assert key["AccessKeyId"] in note.args["text"]
    assert "deleted the console password" in note.args["text"]
    [audit] = [r for r in bot.store.audit_rows() if r["action"] == "offboarding.disable_access"]
    assert audit["actor"] == "U0SEC1" and audit["account_id"] == ACCOUNT_ID

    # The next scan no longer finds dana, and the digest credits who cut her off.
    clock.advance(days=1)
    findings = scan(bot)
    assert ownership(findings, "OFFBOARDED_USER_ACTIVE") == set()
    second = post_digest(bot.services, build_client(bot.services))
    resolved = "\n".join(texts(m) for m in thread(bot.slack, second.ts))
    assert "access disabled by <@U0SEC1>" in resolved


def test_disable_access_when_nothing_is_active_says_so(aws, tmp_path, clock):
    from bot.store import Store

    iam().create_user(UserName="quiet")
    key = iam().create_access_key(UserName="quiet")["AccessKey"]["AccessKeyId"]
    iam().update_access_key(UserName="quiet", AccessKeyId=key, Status="Inactive")
    result = disable_access(
        AwsFactory(),
        Store(tmp_path / "s.db"),
        account_id=ACCOUNT_ID,
        user_name="quiet",
        actor="U0SEC1",
        at=clock.now(),
    )
    assert not result.changed and result.keys_already_inactive == [key]
    assert result.describe().startswith("Nothing to change")


def test_disable_access_for_a_user_that_is_gone(aws, tmp_path, clock):
    from bot.store import Store

    with pytest.raises(OffboardingError, match="does not exist"):
        disable_access(
            AwsFactory(),
            Store(tmp_path / "s.db"),
            account_id=ACCOUNT_ID,
            user_name="gone",
            actor="U0SEC1",
            at=clock.now(),
        )


class _DenyAll(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            b"<Code>AccessDenied</Code><Message>User is not authorized to perform iam:ListAccessKeys</Message>"
            b"</Error><RequestId>1</RequestId></ErrorResponse>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def iam_denies(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DenyAll)
    thread_ = threading.Thread(target=server.serve_forever, daemon=True)
    thread_.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_access_denied_gets_a_clear_answer_in_slack(offboarding_bot, iam_denies):
    bot = offboarding_bot
    from bot.findings import save_snapshot
    from tests.digest.support import finding

    dana = finding("OFFBOARDED_USER_ACTIVE", "dana", "critical", owner="U0DANA")
    save_snapshot(
        bot.store,
        account_id=ACCOUNT_ID,
        scanned_at=bot.services.clock.now(),
        api_calls=1,
        inventory=None,
        findings=[dana],
    )
    post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[0]
    click(bot, "U0SEC1", head, ActionId.DIGEST_DISABLE_ACCESS, dana.fingerprint)
    answer = bot.slack.wait_for("chat.postEphemeral")[0].args["text"]
    assert "AWS denied iam:ListAccessKeys (AccessDenied)" in answer
    assert "opt-in offboarding permissions" in answer and "Traceback" not in answer
    assert any(r["action"] == "offboarding.disable_access_failed" for r in bot.store.audit_rows())
    assert [c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL][-1].args[
        "thread_ts"
    ] == head["ts"]


def test_deactivated_owner_is_not_nudged_and_notify_owner_says_offboard(offboarding_bot):
    bot = offboarding_bot
    bot.services.config.nudges.enabled = True
    scan(bot)
    posted = post_digest(bot.services, build_client(bot.services))
    assert bot.slack.messages("D0DANA") == []
    head = headlines(bot.slack)[0]
    dana_fp = next(b["value"] for b in buttons_in(head) if b["action_id"] == ActionId.DIGEST_DISABLE_ACCESS)
    assert posted.ts
    click(bot, "U0SEC1", head, ActionId.DIGEST_NOTIFY_OWNER, dana_fp)
    answer = bot.slack.wait_for("chat.postEphemeral")[0].args["text"]
    assert "deactivated" in answer and "offboarding" in answer


def test_the_demo_tour_posts_a_digest_and_disables_danas_access(aws):
    # ``aws`` resets the process-wide moto backends the demo's own sandbox shares.
    import io

    from sandbox.demo import run_demo

    out = io.StringIO()
    assert run_demo(interactive=False, out=out) == 0
    text = out.getvalue()
    assert "IAM hygiene digest" in text and "Needs offboarding" in text
    assert "sam clicks" in text and "used Disable access. IAM user dana" in text
    assert "deactivated access key AKIA" in text and "[file uploaded to C0SECURITY]" in text


# --------------------------------------------------------------------------- offboarding in real time

SECURITY = "C0SECURITY"


@pytest.fixture
def stand_in():
    federation = FederationStandIn().start()
    yield federation
    federation.stop()


def offboarding_config(federation) -> dict:
    config = make_config(federation)
    config["roles"].append(
        {
            "name": "audit-read",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/audit-read",
            "max_duration": "1h",
            "approvers": ["U0LEAD1"],
        }
    )
    return config


def seed_alice_iam() -> None:
    client = iam()
    client.create_user(UserName="alice-iam", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    client.create_access_key(UserName="alice-iam")
    client.create_login_profile(UserName="alice-iam", Password="Old-Passw0rd!")  # noqa: S106 - moto only


@pytest.fixture
def leaver(make_bot, stand_in, aws, slack):
    """alice holds a live prod-admin grant, a pending audit-read request and an IAM user with a key
    and a console password; the directory is cached and a scan stored."""
    create_role()
    seed_alice_iam()
    bot = make_bot(offboarding_config(stand_in))
    refresh_directory(bot)
    scan(bot)
    granted, _ = request_and_approve(bot)
    assert bot.command("U0ALICE", "request audit-read 1h read the logs").status == 200
    pending = next(r for r in access.requests_for(bot.services, "U0ALICE") if r.role == "audit-read")
    assert granted.state == "granted" and pending.state == "pending"
    return bot, granted, pending


def user_change(bot, user: dict, *, event_id: str = "Ev0USERCHANGE1", retry: int | None = None):
    """A signed Events API delivery of ``user_change``, as Slack sends it (retries carry
    X-Slack-Retry-Num and the same event_id)."""
    envelope = load_fixture("app_home_opened")
    now = time.time()
    envelope.update(
        team_id="T0DEMO",
        event={
            "type": "user_change",
            "user": copy.deepcopy(user),
            "cache_ts": int(now),
            "event_ts": f"{now:.6f}",
        },
        event_id=event_id,
        event_time=int(now),
    )
    envelope["authorizations"][0]["team_id"] = "T0DEMO"
    envelope["authorizations"][0]["user_id"] = bot.slack.bot_user_id
    body = json.dumps(envelope).encode()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": bot.sender.sign(body, timestamp),
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    request = urllib.request.Request(bot.sender.app_url, data=body, method="POST", headers=headers)  # noqa: S310
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - the local bot
        return reply.status, time.monotonic() - started


def offboarding_alerts(bot) -> list[dict]:
    return [m for m in bot.slack.messages(SECURITY) if m.get("text", "").startswith("Offboarding:")]


def wait_for_alert(bot, count: int = 1) -> list[dict]:
    bot.slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == SECURITY and str(c.args.get("text", "")).startswith("Offboarding:")
        ),
        count=count,
        timeout=30,
    )
    return offboarding_alerts(bot)


def revocation_statements() -> list[dict]:
    document = iam().get_role_policy(RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
        "PolicyDocument"
    ]
    return document["Statement"]


def actions_of(bot, prefix: str = "offboarding.") -> list[str]:
    return [r["action"] for r in bot.store.audit_rows() if r["action"].startswith(prefix)]


def test_user_change_deactivation_revokes_withdraws_and_alerts_once_even_when_delivered_twice(leaver):
    bot, granted, pending = leaver
    bot.slack.deactivate_user("U0ALICE")
    user = bot.slack.user("U0ALICE")
    status, seconds = user_change(bot, user)
    assert status == 200 and seconds < 3  # acknowledged at once, whatever AWS and Slack do next
    # Slack retries the same event (it did not see our ack in time): acknowledged, acted on once.
    assert user_change(bot, user, retry=1)[0] == 200
    [alert] = wait_for_alert(bot)

    # The live grant is revoked through the access lifecycle: the role denies her SourceIdentity.
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert list(access.denied_identities({"Statement": revocation_statements()})) == ["U0ALICE"]
    # The pending request is withdrawn, so nobody can approve it any more.
    assert access.get_request(bot.services, pending.id).state == "expired"

    text = text_of(alert) + json.dumps(alert["blocks"])
    assert "<@U0ALICE>" in text and "alice@example.com" in text
    assert granted.id in text and "live sessions denied" in text
    assert pending.id in text
    assert "alice-iam" in text and "access key 1" in text and "console password" in text
    assert ActionId.OFFBOARDING_DISABLE_ACCESS in text and "Disable access?" in text  # confirm dialog
    assert bot.slack.formatting_violations() == []

    time.sleep(1)  # give a (wrong) second processing of the retry every chance to show
    assert len(offboarding_alerts(bot)) == 1
    audited = actions_of(bot)
    assert audited.count("offboarding.detected") == 1
    assert audited.count("offboarding.revoked") == 1 and audited.count("offboarding.withdrawn") == 1
    assert audited.count("offboarding.alerted") == 1
    # The approvals message no longer offers Approve / Revoke on what was ended.
    messages = {m["ts"]: m for m in bot.slack.messages(APPROVALS)}
    for request in (granted, pending):
        stored = access.get_request(bot.services, request.id)
        shown = json.dumps(messages[stored.message_ts]["blocks"])
        assert ActionId.ACCESS_APPROVE not in shown and ActionId.ACCESS_REVOKE not in shown


def test_a_reactivated_member_gets_nothing_back_and_a_later_deactivation_acts_again(leaver):
    bot, granted, _ = leaver
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    wait_for_alert(bot)
    user = bot.slack.user("U0ALICE")
    user["deleted"] = False
    user_change(bot, user, event_id="Ev0USERCHANGE2")
    deadline = time.monotonic() + 10
    while "offboarding.reactivated" not in actions_of(bot) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "offboarding.reactivated" in actions_of(bot)
    assert access.get_request(bot.services, granted.id).state == "revoked"  # not re-granted
    user["deleted"] = True
    user_change(bot, user, event_id="Ev0USERCHANGE3")
    assert len(wait_for_alert(bot, count=2)) == 2


def test_a_directory_refresh_offboards_a_member_whose_event_was_missed(leaver):
    from handlers.client import build_client
    from handlers.directory import directory_refresh_job

    bot, granted, pending = leaver
    bot.slack.deactivate_user("U0ALICE")  # the bot was down: no user_change reached it
    bot.services.clock.advance(hours=7)  # the cached directory is stale
    client = build_client(bot.services)
    directory_refresh_job(bot.services, client)
    [alert] = wait_for_alert(bot)
    assert "directory refresh" in text_of(alert)
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert access.get_request(bot.services, pending.id).state == "expired"
    # The event arriving late, another refresh, the sweep: nothing more.
    user_change(bot, bot.slack.user("U0ALICE"))
    bot.services.clock.advance(hours=7)
    directory_refresh_job(bot.services, client)
    from handlers.offboarding import sweep_offboardings

    sweep_offboardings(bot.services, client)
    time.sleep(0.5)
    assert len(offboarding_alerts(bot)) == 1
    assert actions_of(bot).count("offboarding.detected") == 1


def test_the_alert_waits_out_a_slack_outage_but_access_ends_at_once(leaver):
    from handlers.client import build_client
    from handlers.offboarding import sweep_offboardings

    bot, granted, _ = leaver
    bot.slack.fail_next("chat.postMessage", error="not_in_channel", times=3)
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    deadline = time.monotonic() + 15
    while "offboarding.alert_failed" not in actions_of(bot) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert "offboarding.alert_failed" in actions_of(bot)
    client = build_client(bot.services)
    for _ in range(5):  # the sweep job retries each minute until Slack accepts
        sweep_offboardings(bot.services, client)
        if offboarding_alerts(bot):
            break
    assert len(offboarding_alerts(bot)) == 1
    sweep_offboardings(bot.services, client)
    assert len(offboarding_alerts(bot)) == 1


def test_disable_access_from_the_alert_is_for_the_security_team_and_changes_aws(leaver):
    bot, _, _ = leaver
    bot.slack.deactivate_user("U0ALICE")
    user_change(bot, bot.slack.user("U0ALICE"))
    [alert] = wait_for_alert(bot)
    [value] = {
        b["accessory"]["value"]
        for b in alert["blocks"]
        if (b.get("accessory") or {}).get("action_id") == ActionId.OFFBOARDING_DISABLE_ACCESS
    }
    bot.sender.block_action(
        "U0BOB", ActionId.OFFBOARDING_DISABLE_ACCESS, value, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0BOB")
    keys = iam().list_access_keys(UserName="alice-iam")["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Active"}
    # A forged value naming someone else's IAM user is refused from stored state.
    forged = value.rsplit("|", 1)[0] + "|ghost"
    bot.sender.block_action(
        "U0SEC1", ActionId.OFFBOARDING_DISABLE_ACCESS, forged, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0SEC1")
    bot.sender.block_action(
        "U0SEC1", ActionId.OFFBOARDING_DISABLE_ACCESS, value, message=alert, channel_id=SECURITY
    )
    bot.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == alert["ts"] and "Disable access" in c.args["text"],
    )
    keys = iam().list_access_keys(UserName="alice-iam")["AccessKeyMetadata"]
    assert {k["Status"] for k in keys} == {"Inactive"}
    with pytest.raises(iam().exceptions.NoSuchEntityException):
        iam().get_login_profile(UserName="alice-iam")
    assert "offboarding.disable_access" in actions_of(bot)


def test_a_member_slack_reports_deactivated_cannot_reissue_approve_or_break_glass(
    make_bot, stand_in, aws, slack
):
    from handlers.client import build_client

    create_role()
    config = make_config(stand_in)
    config["roles"][0]["break_glass"] = True
    config["roles"][0]["break_glass_requesters"] = ["U0ALICE"]
    bot = make_bot(config)
    granted, _ = request_and_approve(bot)
    assert bot.command("U0BOB", "request prod-admin 1h bob needs it").status == 200
    bob_request = next(r for r in access.requests_for(bot.services, "U0BOB"))
    # Deactivated in Slack, and the event never arrived: users.info still stops them.
    slack.deactivate_user("U0ALICE")
    slack.deactivate_user("U0LEAD1")
    client = build_client(bot.services)
    # users.info answers are trusted a minute at most: alice was confirmed active at her approval.
    assert member_is_active(client, bot.services, "U0ALICE")
    bot.services.clock.advance(seconds=61)
    assert not member_is_active(client, bot.services, "U0ALICE")
    assert member_is_active(client, bot.services, "U0BOB")
    issued = len(access.grants_of(bot.services, granted.id))
    dm = bot.slack.messages("D0ALICE")[0]
    access_click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, granted.id, message=dm, channel="D0ALICE")
    bot.slack.wait_for("chat.postEphemeral", lambda c: "active member" in c.args.get("text", ""))
    assert len(access.grants_of(bot.services, granted.id)) == issued
    access_click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, bob_request.id)
    bot.slack.wait_for(
        "chat.postEphemeral",
        lambda c: c.args.get("user") == "U0LEAD1" and "active member" in c.args.get("text", ""),
    )
    assert access.get_request(bot.services, bob_request.id).state == "pending"
    assert "active member" in json.dumps(
        bot.command("U0ALICE", "breakglass prod-admin prod is down").json() or {}
    ) or (bot.slack.wait_for("response_url", lambda c: "active member" in json.dumps(c.args)))
    assert not [r for r in access.requests_for(bot.services, "U0ALICE") if r.kind == "break_glass"]


@pytest.mark.parametrize(
    "user",
    [
        None,
        "U0ALICE",
        {"deleted": True},
        {"id": "<!channel>", "deleted": True},
        {"id": ["U0ALICE"], "deleted": True},
        {"id": "U0ALICE' OR 1=1 --", "deleted": True},
        {"id": "U0ALICE\n", "deleted": True},
    ],
)
def test_malformed_user_change_is_acknowledged_and_changes_nothing(leaver, user):
    bot, granted, _ = leaver
    assert bot.sender.event({"type": "user_change", "user": user}).status == 200
    time.sleep(0.3)
    assert access.get_request(bot.services, granted.id).state == "granted"
    assert actions_of(bot) == [] and offboarding_alerts(bot) == []


def test_a_profile_change_of_an_active_member_offboards_nobody(leaver):
    bot, granted, _ = leaver
    user = bot.slack.user("U0ALICE")
    user["real_name"] = "Alice Renamed"
    assert bot.sender.event({"type": "user_change", "user": user}).status == 200
    time.sleep(0.3)
    assert access.get_request(bot.services, granted.id).state == "granted"
    assert actions_of(bot) == []


def test_the_same_deactivation_racing_on_threads_and_two_instances_acts_once(leaver, make_bot, stand_in):
    bot, granted, pending = leaver
    other = make_bot(offboarding_config(stand_in), db=bot.store.path)  # a second instance, same database
    bot.slack.deactivate_user("U0ALICE")
    user = bot.slack.user("U0ALICE")
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver(n: int) -> None:
        target = bot if n % 2 else other
        barrier.wait()
        statuses.append(user_change(target, user, event_id=f"Ev0RACE{n}", retry=n or None)[0])

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 8
    wait_for_alert(bot)
    time.sleep(1.5)
    assert len(offboarding_alerts(bot)) == 1
    audited = actions_of(bot)
    assert audited.count("offboarding.detected") == 1 and audited.count("offboarding.revoked") == 1
    assert access.get_request(bot.services, granted.id).state == "revoked"
    assert access.get_request(bot.services, pending.id).state == "expired"
    assert list(access.denied_identities({"Statement": revocation_statements()})) == ["U0ALICE"]
