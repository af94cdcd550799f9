"""Offboarding from the scan: a deactivated Slack member's IAM user found by a moto-backed scan,
shown first in the digest, and Disable access really deactivating keys and deleting the login profile."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.aws import AwsFactory
from bot.checks.catalog import CHECKS, CheckContext
from bot.identity import IdentityMap, OffboardingError, disable_access
from bot.settings import Config
from handlers.client import build_client
from handlers.digest import post_digest
from handlers.ids import ActionId
from tests.conftest import ACCOUNT_ID
from tests.digest.support import CHANNEL, buttons_in, click, csv_rows, headlines, texts, thread
from tests.identity.support import iam, refresh_directory, scan


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
