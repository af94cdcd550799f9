"""Just-in-time access end to end: signed Slack requests to the bot, the local Slack server, moto
over HTTP and a real SQLite file.

What we sent to STS is recorded with botocore's own event seam: a ``before-parameter-build``
hook registered on the bot's boto3 session (clients copy the session's hooks when created), so we
see the exact AssumeRole parameters; moto ignores DurationSeconds, SourceIdentity, tags and
session policies, so these assertions are the only proof they are right.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from bot import access
from handlers import access as access_handlers
from handlers.identity import clear_cache
from handlers.ids import ActionId, BlockId, CallbackId
from tests.access.support import (
    APPROVALS,
    OTHER_ACCOUNT,
    AssumeRoleLog,
    ask,  # noqa: E402
    caller_identity,
    click,
    create_role,
    credential_ephemerals,
    credentials_from,
    has_action,
    make_config,
    request_and_approve,
    request_messages,
    run_job,
    text_of,
    the_request,
    wait_for_credentials,
)
from tests.conftest import ACCOUNT_ID

# -- request ---------------------------------------------------------------------------------------------


def test_shorthand_request_posts_a_durable_message_with_buttons_and_confirms_ephemerally(jit):
    bot, _ = jit()
    # The answer comes after the ack (posting to the approvals channel is a Web API call).
    body = ask(bot, "U0ALICE", "request prod-admin 90m deploy <!channel> hotfix ticket=OPS-1")
    assert body["response_type"] == "ephemeral"
    assert "waiting for approval" in body["text"]
    [message] = request_messages(bot)
    text = text_of(message)
    assert "<@U0ALICE>" in text and "`prod-admin`" in text and f"`{ACCOUNT_ID}`" in text
    assert "1h30m" in text and "OPS-1" in text
    # What the requester typed cannot ping a channel; approvers are mentioned by id, never @channel.
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<@U0LEAD1>" in text and "@sre-leads" in text
    assert has_action(message, ActionId.ACCESS_APPROVE) and has_action(message, ActionId.ACCESS_DENY)
    buttons = [el for b in message["blocks"] if b["type"] == "actions" for el in b["elements"]]
    request = the_request(bot)
    assert {b["value"] for b in buttons} == {request.id}
    assert request.state == "pending" and request.ticket == "OPS-1"
    assert [r["action"] for r in bot.store.audit_rows()] == ["requested"]
    assert bot.slack.formatting_violations() == []


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("request nosuch 1h because", "no role called"),
        ("request prod-admin soon because", "is not a duration"),
        ("request prod-admin 5m because", "outside that"),
        ("request prod-admin 3h because", "outside that"),
        ("request prod-admin 1h", "Usage"),
    ],
)
def test_bad_requests_get_a_clear_answer_and_store_nothing(jit, text, answer):
    bot, _ = jit()
    body = ask(bot, "U0ALICE", text)
    assert answer in body["text"]
    assert "Traceback" not in body["text"]
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 0
    assert request_messages(bot) == []


def test_ticket_required_by_pattern(jit):
    bot, _ = jit(role={"require_ticket": r"OPS-\d+"})
    assert "needs a ticket" in ask(bot, "U0ALICE", "request prod-admin 1h fix it")["text"]
    assert "not a ticket" in ask(bot, "U0ALICE", "request prod-admin 1h fix ticket=JIRA-1")["text"]
    assert "waiting for approval" in ask(bot, "U0ALICE", "request prod-admin 1h fix ticket=OPS-7")["text"]


def test_modal_path_opens_a_form_validates_and_posts_the_request(jit):
    bot, _ = jit(
        extra_roles=[
            {"name": "secret-role", "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/x", "requesters": ["U0BOB"]}
        ]
    )
    response = bot.command("U0ALICE", "request")
    assert response.status == 200
    [opened] = bot.slack.wait_for("views.open")
    view = bot.slack.views()[-1]
    assert view["callback_id"] == CallbackId.ACCESS_REQUEST_MODAL
    role_options = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert role_options == ["prod-admin"]  # only roles the member may request
    durations = [o["value"] for o in view["blocks"][1]["element"]["options"]]
    assert durations == ["15m", "30m", "1h", "2h"]

    def values(duration: str, reason: str) -> dict:
        return {
            BlockId.ACCESS_ROLE: {
                BlockId.ACCESS_ROLE: {"type": "static_select", "selected_option": {"value": "prod-admin"}}
            },
            BlockId.ACCESS_DURATION: {
                BlockId.ACCESS_DURATION: {"type": "static_select", "selected_option": {"value": duration}}
            },
            BlockId.ACCESS_REASON: {BlockId.ACCESS_REASON: {"type": "plain_text_input", "value": reason}},
            BlockId.ACCESS_TICKET: {BlockId.ACCESS_TICKET: {"type": "plain_text_input", "value": None}},
        }

    bad = bot.sender.view_submission(
        "U0ALICE",
        CallbackId.ACCESS_REQUEST_MODAL,
        values("1h", "   "),
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    ).json()
    assert bad["response_action"] == "errors" and BlockId.ACCESS_REASON in bad["errors"]
    ok = bot.sender.view_submission(
        "U0ALICE",
        CallbackId.ACCESS_REQUEST_MODAL,
        values("1h", "rotate <@U0SEC1> keys"),
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    assert ok.status == 200 and not (ok.json() or {}).get("errors")
    bot.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == APPROVALS)
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0ALICE")
    request = the_request(bot)
    assert request.state == "pending" and request.duration == timedelta(hours=1)
    assert request.origin_channel == "C0DEMO"
    assert "&lt;@U0SEC1&gt;" in text_of(request_messages(bot)[0])


# -- approve and grant --------------------------------------------------------------------------------------


def test_peer_approval_grants_working_credentials_with_the_exact_assume_role_parameters(jit, federation):
    bot, sts = jit()
    request, [ephemeral] = request_and_approve(bot)
    assert request.state == "granted" and request.approvers == ["U0LEAD1"]
    # Only AssumeRole call, with everything we promise.
    [params] = sts.calls
    assert params["RoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/prod-admin"
    assert params["RoleSessionName"] == f"iamwarden-U0ALICE-{request.id}"
    assert len(params["RoleSessionName"]) <= 64
    assert params["SourceIdentity"] == "U0ALICE"
    assert params["DurationSeconds"] == 7200  # window 2h, role MaxSessionDuration 2h, bot not a role
    tags = {t["Key"]: t["Value"] for t in params["Tags"]}
    assert tags == {
        "iamwarden:request-id": request.id,
        "iamwarden:requester": "U0ALICE",
        "iamwarden:approvers": "U0LEAD1",
    }
    policy = json.loads(params["Policy"])
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"DateGreaterThan": {"aws:CurrentTime": access.iso(request.window_end)}}
    assert request.window_end == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    # The credentials work and are the assumed role's, in the right account.
    creds = credentials_from(ephemeral)
    identity = caller_identity(creds)
    assert identity["Account"] == ACCOUNT_ID
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/prod-admin/{params['RoleSessionName']}"
    # The requester sees exports, the JSON, a console link made through the federation endpoint, the expiry.
    assert ephemeral["user"] == "U0ALICE" and ephemeral["channel"] == "C0DEMO"
    shown = text_of(ephemeral)
    assert "export AWS_SESSION_TOKEN=" in shown and "2026-11-29 14:00 UTC" in shown
    console = next(
        el for b in ephemeral["blocks"] if b["type"] == "actions" for el in b["elements"] if el.get("url")
    )
    assert console["url"].startswith(federation.url + "?Action=login")
    assert federation.issued_for() == [creds["AccessKeyId"]]
    # The request message now says who approved and when access ends; only the key id is stored.
    message = request_messages(bot)[0]
    assert "Approved by <@U0LEAD1>" in text_of(message) and "2026-11-29 14:00 UTC" in text_of(message)
    assert has_action(message, ActionId.ACCESS_REVOKE) and not has_action(message, ActionId.ACCESS_APPROVE)
    [grant] = access.grants_of(bot.services, request.id)
    assert grant.access_key_id == creds["AccessKeyId"]
    assert [r["action"] for r in bot.store.audit_rows()] == ["requested", "approved", "granted"]


def test_group_member_approves_and_duration_is_capped_by_the_roles_max_session(jit):
    bot, sts = jit(max_session=3600)
    request, _ = request_and_approve(bot, approver="U0LEAD2")  # U0LEAD2 is in @sre-leads
    assert request.approvers == ["U0LEAD2"]
    assert sts.last["DurationSeconds"] == 3600


def test_bot_running_on_role_credentials_caps_sessions_at_one_hour(jit):
    bot, _ = jit()
    create_role("iamwarden-bot", max_session=7200)
    bot.services.aws = bot.services.aws.for_role(f"arn:aws:iam::{ACCOUNT_ID}:role/iamwarden-bot")
    sts = AssumeRoleLog(bot.services)
    request_and_approve(bot)
    assert sts.last["DurationSeconds"] == 3600


def test_role_in_a_second_account_gets_credentials_in_that_account(jit):
    other = {
        "name": "vendor-admin",
        "arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/vendor-admin",
        "max_duration": "1h",
        "approvers": ["U0LEAD1"],
    }
    bot, sts = jit(extra_roles=[other])
    request, [ephemeral] = request_and_approve(bot, text="request vendor-admin 30m check vendor")
    identity = caller_identity(credentials_from(ephemeral))
    assert identity["Account"] == OTHER_ACCOUNT
    assert identity["Arn"].startswith(f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/vendor-admin/")
    assert sts.last["DurationSeconds"] == 1800


def test_requester_cannot_approve_own_request(jit):
    bot, sts = jit(role={"approvers": ["U0ALICE", "U0LEAD1"]})
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    click(bot, "U0ALICE", ActionId.ACCESS_APPROVE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0ALICE")
    assert "cannot approve" in answer.args["text"]
    assert access.get_request(bot.services, request.id).state == "pending"
    assert sts.calls == []


def test_non_approver_cannot_approve(jit):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    click(bot, "U0BOB", ActionId.ACCESS_APPROVE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0BOB")
    assert "not an approver" in answer.args["text"]
    assert access.get_request(bot.services, request.id).approvers == []
    assert sts.calls == []


def test_slack_error_resolving_the_approver_group_is_a_clear_answer(jit):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    clear_cache()  # the request itself looked the group up; make the click ask Slack again
    bot.slack.fail_next("usergroups.list", error="missing_scope")
    click(bot, "U0LEAD2", ActionId.ACCESS_APPROVE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD2")
    assert "could not list the members of @sre-leads (missing_scope)" in answer.args["text"]
    assert "not counted" in answer.args["text"]
    assert sts.calls == [] and access.get_request(bot.services, request.id).state == "pending"


def test_two_approvals_required_counts_each_approver_once(jit):
    bot, sts = jit(role={"approvals_required": 2})
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)  # double click
    answers = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1", count=2)
    assert "already counted" in answers[1].args["text"]
    assert access.get_request(bot.services, request.id).state == "pending" and sts.calls == []
    assert "1 of 2" in text_of(request_messages(bot)[0])
    click(bot, "U0LEAD2", ActionId.ACCESS_APPROVE, request.id)
    wait_for_credentials(bot)
    granted = access.get_request(bot.services, request.id)
    assert granted.state == "granted" and granted.approvers == ["U0LEAD1", "U0LEAD2"]
    assert len(sts.calls) == 1
    assert {t["Key"]: t["Value"] for t in sts.last["Tags"]}["iamwarden:approvers"] == "U0LEAD1 U0LEAD2"


def test_concurrent_approvals_grant_exactly_once(jit):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    message = request_messages(bot)[0]
    clickers = ["U0LEAD1", "U0LEAD2"] * 4  # two approvers, each double-clicking, all at once
    barrier = threading.Barrier(len(clickers))
    statuses: list[int] = []

    def fire(user: str) -> None:
        barrier.wait()
        statuses.append(
            bot.sender.block_action(user, ActionId.ACCESS_APPROVE, request.id, message=message).status
        )

    threads = [threading.Thread(target=fire, args=(u,)) for u in clickers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(clickers)
    wait_for_credentials(bot)
    # Every click got its answer: one grant, the others were told it was already decided.
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] in ("U0LEAD1", "U0LEAD2"), count=len(clickers) - 1
    )
    assert len(sts.calls) == 1
    assert len(access.grants_of(bot.services, request.id)) == 1
    assert len(credential_ephemerals(bot)) == 1
    bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == "U0ALICE")
    updates = bot.slack.calls_to("chat.update")
    assert len(updates) == 1
    assert len([m for m in bot.slack.messages() if m["channel"] == "D0ALICE"]) == 1  # one "granted" note
    assert [r["action"] for r in bot.store.audit_rows()].count("granted") == 1


def test_deny_with_a_reason_ends_the_request(jit):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    click(bot, "U0LEAD1", ActionId.ACCESS_DENY, request.id)
    bot.slack.wait_for("views.open")
    view = bot.slack.views()[-1]
    assert view["callback_id"] == CallbackId.ACCESS_DENY_MODAL and view["private_metadata"] == request.id
    values = {
        BlockId.ACCESS_DENY_REASON: {
            BlockId.ACCESS_DENY_REASON: {"type": "plain_text_input", "value": "use <!here> staging"}
        }
    }
    assert (
        bot.sender.view_submission(
            "U0LEAD1", CallbackId.ACCESS_DENY_MODAL, values, private_metadata=request.id
        ).status
        == 200
    )
    bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == "U0ALICE")
    denied = access.get_request(bot.services, request.id)
    assert (
        denied.state == "denied"
        and denied.decided_by == "U0LEAD1"
        and denied.deny_reason == "use <!here> staging"
    )
    text = text_of(request_messages(bot)[0])
    assert "Denied by <@U0LEAD1>" in text and "&lt;!here&gt;" in text
    assert not has_action(request_messages(bot)[0], ActionId.ACCESS_APPROVE)
    # A late approval changes nothing.
    click(bot, "U0LEAD2", ActionId.ACCESS_APPROVE, request.id, message=request_messages(bot)[0])
    [late] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD2")
    assert "already denied" in late.args["text"]
    assert sts.calls == []


def test_pending_request_expires_and_the_requester_is_told(jit, clock):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    clock.advance(minutes=59)
    run_job(bot, access_handlers.run_pending_expiry)
    assert access.get_request(bot.services, request.id).state == "pending"
    clock.advance(minutes=2)
    run_job(bot, access_handlers.run_pending_expiry)
    run_job(bot, access_handlers.run_pending_expiry)  # idempotent
    assert access.get_request(bot.services, request.id).state == "expired"
    assert "Expired" in text_of(request_messages(bot)[0])
    notes = [m for m in bot.slack.messages("D0ALICE") if "expired" in m["text"]]
    assert len(notes) == 1
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    assert sts.calls == []


def test_window_end_marks_the_grant_ended_and_tells_the_requester(jit, clock):
    bot, _ = jit()
    request, _ = request_and_approve(bot, text="request prod-admin 1h fix")
    clock.advance(minutes=61)  # also catches up when the bot was down at the exact moment
    run_job(bot, access_handlers.run_access_sweep)
    ended = access.get_request(bot.services, request.id)
    assert ended.state == "ended"
    assert "Access ended" in text_of(request_messages(bot)[0])
    assert any("ended" in m["text"] for m in bot.slack.messages("D0ALICE"))
    assert "expired" in [r["action"] for r in bot.store.audit_rows()]


# -- re-issue, revoke, extend -------------------------------------------------------------------------


def test_get_credentials_again_reissues_inside_the_window_for_the_requester_only(jit, clock):
    bot, sts = jit(max_session=3600)
    request, [first] = request_and_approve(bot)  # 2h window, 1h sessions
    assert sts.last["DurationSeconds"] == 3600
    clock.advance(minutes=90)
    click(bot, "U0BOB", ActionId.ACCESS_REISSUE, request.id)
    [refused] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0BOB")
    assert "Only the requester" in refused.args["text"]
    click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, request.id)
    second = wait_for_credentials(bot, count=2)[-1]
    assert len(sts.calls) == 2
    assert sts.last["DurationSeconds"] == 1800  # what is left of the window
    fresh = credentials_from(second)
    assert fresh["AccessKeyId"] != credentials_from(first)["AccessKeyId"]
    assert caller_identity(fresh)["Arn"].endswith(f"/iamwarden-U0ALICE-{request.id}")
    assert "2026-11-29 14:00 UTC" in text_of(second)
    assert [r["action"] for r in bot.store.audit_rows()][-1] == "credentials_reissued"


def test_revoke_writes_a_deny_on_the_role_for_sessions_issued_before_now(jit, clock):
    bot, _ = jit()
    request, _ = request_and_approve(bot)
    clock.advance(minutes=10)
    click(bot, "U0LEAD1", ActionId.ACCESS_REVOKE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    assert "Live sessions were cut off" in answer.args["text"]
    revoked = access.get_request(bot.services, request.id)
    assert revoked.state == "revoked" and revoked.ended_by == "U0LEAD1"
    iam = boto3.client("iam", region_name="us-east-1")
    document = iam.get_role_policy(RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
        "PolicyDocument"
    ]
    [statement] = document["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "*"
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceIdentity": "U0ALICE"},
        # Rounded up to the next second: a session issued earlier in the click's second is denied too.
        "DateLessThan": {"aws:TokenIssueTime": "2026-11-29T12:10:01+00:00"},
    }
    assert "Revoked" in text_of(request_messages(bot)[0]) or "revoked" in text_of(request_messages(bot)[0])
    bot.slack.wait_for(
        "chat.postMessage", lambda c: c.args["channel"] == "U0ALICE" and "revoked" in c.args["text"]
    )
    # Nobody can re-issue a revoked grant.
    click(
        bot,
        "U0ALICE",
        ActionId.ACCESS_REISSUE,
        request.id,
        message=bot.slack.messages("D0ALICE")[0],
        channel="D0ALICE",
    )
    bot.slack.wait_for(
        "chat.postEphemeral",
        lambda c: c.args["user"] == "U0ALICE" and "nothing to re-issue" in c.args["text"],
    )


def test_revocation_statements_are_pruned_once_they_cannot_matter(jit, clock):
    bot, _ = jit(role={"approvers": ["U0LEAD1", "U0ALICE"]})
    request, _ = request_and_approve(bot, text="request prod-admin 1h first")
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, request.id)
    bot.slack.wait_for("chat.postEphemeral", lambda c: "ended" in c.args.get("text", ""))
    assert access.get_request(bot.services, request.id).state == "revoked"
    clock.advance(hours=2)  # the first session has long expired
    ask(bot, "U0BOB", "request prod-admin 1h second")
    second = the_request(bot)
    click(bot, "U0ALICE", ActionId.ACCESS_APPROVE, second.id, message=request_messages(bot)[-1])
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == "U0BOB" and c.args["text"].startswith("Credentials")
    )
    click(bot, "U0BOB", ActionId.ACCESS_DONE, second.id, message=request_messages(bot)[-1])
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == "U0BOB" and "ended" in c.args["text"]
    )
    iam = boto3.client("iam", region_name="us-east-1")
    document = iam.get_role_policy(RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
        "PolicyDocument"
    ]
    assert list(access.denied_identities(document)) == ["U0BOB"]


def test_revoke_without_permission_to_write_the_role_says_when_credentials_expire(jit):
    other = {
        "name": "vendor-admin",
        "arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/vendor-admin",
        "max_duration": "1h",
        "approvers": ["U0LEAD1"],
    }
    bot, _ = jit(extra_roles=[other])
    request, _ = request_and_approve(bot, text="request vendor-admin 1h vendor")
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, request.id, message=request_messages(bot)[0])
    [answer] = bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == "U0ALICE" and "ended" in c.args["text"]
    )
    assert "could not stop live sessions" in answer.args["text"]
    assert "stay valid until" in answer.args["text"] and "13:00 UTC" in answer.args["text"]
    assert access.get_request(bot.services, request.id).state == "revoked"


def test_only_requester_approvers_or_security_can_revoke(jit):
    bot, _ = jit()
    request, _ = request_and_approve(bot)
    click(bot, "U0BOB", ActionId.ACCESS_REVOKE, request.id)
    [refused] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0BOB")
    assert "Only the requester" in refused.args["text"]
    assert access.get_request(bot.services, request.id).state == "granted"
    click(bot, "U0SEC2", ActionId.ACCESS_REVOKE, request.id)  # in @security
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0SEC2")
    assert access.get_request(bot.services, request.id).state == "revoked"


def test_extend_needs_a_new_approval_and_moves_the_end_without_a_gap(jit, clock):
    bot, sts = jit(access={"max_extensions": 1})
    request, _ = request_and_approve(bot, text="request prod-admin 1h migrate")
    clock.advance(minutes=50)
    click(bot, "U0ALICE", ActionId.ACCESS_EXTEND, request.id)
    bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == APPROVALS, count=2)
    extension = the_request(bot)
    assert (
        extension.kind == "extension" and extension.parent_id == request.id and extension.state == "pending"
    )
    assert "Extension request" in text_of(request_messages(bot)[-1])
    # Self-approval is refused for extensions too.
    click(bot, "U0ALICE", ActionId.ACCESS_APPROVE, extension.id, message=request_messages(bot)[-1])
    bot.slack.wait_for("chat.postEphemeral", lambda c: "cannot approve" in c.args.get("text", ""))
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, extension.id, message=request_messages(bot)[-1])
    wait_for_credentials(bot, count=2)
    parent = access.get_request(bot.services, request.id)
    assert parent.state == "granted" and parent.extensions == 1
    assert parent.window_end == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)  # 13:00 + 1h, no gap
    # Fresh credentials reach into the new window (the old session policy would cut at 13:00).
    assert (
        json.loads(sts.last["Policy"])["Statement"][1]["Condition"]["DateGreaterThan"]["aws:CurrentTime"]
        == "2026-11-29T14:00:00+00:00"
    )
    assert sts.last["DurationSeconds"] == 70 * 60
    clock.advance(minutes=15)  # past the original end: still granted
    run_job(bot, access_handlers.run_window_end)
    assert access.get_request(bot.services, request.id).state == "granted"
    # The cap: no second extension.
    click(bot, "U0ALICE", ActionId.ACCESS_EXTEND, request.id, message=request_messages(bot)[0])
    bot.slack.wait_for("chat.postEphemeral", lambda c: "most allowed" in c.args.get("text", ""))
    assert "extended" in [r["action"] for r in bot.store.audit_rows()]
    # At the new end, the access and its extension end together, with one note to the requester.
    clock.advance(minutes=56)  # 14:01
    run_job(bot, access_handlers.run_window_end)
    assert access.get_request(bot.services, request.id).state == "ended"
    assert access.get_request(bot.services, extension.id).state == "ended"
    assert len([m for m in bot.slack.messages("D0ALICE") if " ended at " in m["text"]]) == 1
    assert all("Access ended" in text_of(m) for m in request_messages(bot))


def test_revoke_from_an_extension_message_ends_the_access_it_extends(jit):
    bot, _ = jit()
    request, _ = request_and_approve(bot, text="request prod-admin 1h migrate")
    click(bot, "U0ALICE", ActionId.ACCESS_EXTEND, request.id)
    bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == APPROVALS, count=2)
    extension = the_request(bot)
    # Ending the access cancels the pending extension too (and its message loses its buttons).
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, extension.id, message=request_messages(bot)[0])
    bot.slack.wait_for("chat.postEphemeral", lambda c: "ended" in c.args.get("text", ""))
    assert access.get_request(bot.services, request.id).state == "revoked"
    assert access.get_request(bot.services, extension.id).state == "expired"
    assert not has_action(request_messages(bot)[-1], ActionId.ACCESS_APPROVE)


# -- break glass -------------------------------------------------------------------------------------------


def test_break_glass_grants_at_once_alerts_security_caps_daily_and_needs_a_review(jit, clock):
    bot, sts = jit(role={"break_glass": True, "max_duration": "1h", "break_glass_requesters": ["U0ALICE"]})
    response = bot.command("U0ALICE", "breakglass prod-admin database is on fire")
    assert response.status == 200
    wait_for_credentials(bot)
    request = the_request(bot)
    assert request.kind == "break_glass" and request.state == "granted" and request.needs_review
    assert {t["Key"]: t["Value"] for t in sts.last["Tags"]}["iamwarden:approvers"] == "break-glass"
    [alert, thread_note] = bot.slack.messages("C0SECURITY")
    assert "BREAK GLASS" in text_of(alert) and "database is on fire" in text_of(alert)
    assert thread_note["thread_ts"] == alert["ts"]
    assert has_action(alert, ActionId.ACCESS_REVIEW)
    # The daily cap (1 by default).
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, request.id, channel="C0SECURITY", message=alert)
    bot.slack.wait_for("chat.postEphemeral", lambda c: "ended" in c.args.get("text", ""))
    bot.command("U0ALICE", "breakglass prod-admin again")
    [capped] = bot.slack.wait_for("response_url", lambda c: "most allowed" in c.args.get("text", ""))
    assert len(sts.calls) == 1
    # Reminders until someone reviews; the requester cannot review their own use.
    clock.advance(hours=1)
    run_job(bot, access_handlers.run_review_reminders)
    run_job(bot, access_handlers.run_review_reminders)
    reminders = [m for m in bot.slack.messages("C0SECURITY") if m["text"].startswith("Reminder")]
    assert len(reminders) == 1
    click(bot, "U0ALICE", ActionId.ACCESS_REVIEW, request.id, channel="C0SECURITY", message=alert)
    bot.slack.wait_for("chat.postEphemeral", lambda c: "security team" in c.args.get("text", ""))
    assert "review" in bot.command("U0SEC1", "review").json()["text"]
    click(bot, "U0SEC1", ActionId.ACCESS_REVIEW, request.id, channel="C0SECURITY", message=alert)
    bot.slack.wait_for("chat.postEphemeral", lambda c: "reviewed" in c.args.get("text", ""))
    assert access.get_request(bot.services, request.id).reviewed_by == "U0SEC1"
    clock.advance(days=1)
    run_job(bot, access_handlers.run_review_reminders)
    assert len([m for m in bot.slack.messages("C0SECURITY") if m["text"].startswith("Reminder")]) == 1
    actions_logged = [r["action"] for r in bot.store.audit_rows()]
    assert "break_glass" in actions_logged and "reviewed" in actions_logged


def test_break_glass_only_on_roles_that_allow_it(jit):
    bot, sts = jit()
    bot.command("U0ALICE", "breakglass prod-admin hurry")
    bot.slack.wait_for("response_url", lambda c: "does not allow break glass" in c.args.get("text", ""))
    assert sts.calls == []


# -- restart, record, home -------------------------------------------------------------------------------


def test_a_new_app_on_the_same_database_finishes_a_request_started_before_the_restart(
    jit, make_bot, federation, tmp_path
):
    db = tmp_path / "shared.db"
    create_role()
    config = make_config(federation, role={"approvals_required": 2})
    first = make_bot(config, db=db)
    ask(first, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(first)
    click(first, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    first.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    first.server.stop()

    second = make_bot(config, db=db)
    sts = AssumeRoleLog(second.services)
    click(second, "U0LEAD2", ActionId.ACCESS_APPROVE, request.id)
    [ephemeral] = wait_for_credentials(second)
    assert access.get_request(second.services, request.id).state == "granted"
    assert len(sts.calls) == 1
    assert caller_identity(credentials_from(ephemeral))["Account"] == ACCOUNT_ID


def test_grants_command_and_app_home_show_the_members_requests(jit):
    bot, _ = jit()
    request, _ = request_and_approve(bot)
    body = bot.command("U0ALICE", "grants").json()
    assert body["response_type"] == "ephemeral"
    assert request.id in body["blocks"][1]["text"]["text"]
    assert "Nobody" not in body["text"]
    assert "no access requests" in bot.command("U0BOB", "grants").json()["text"]
    bot.sender.app_home_opened("U0ALICE")
    bot.slack.wait_for("views.publish")
    home = bot.slack.home_view("U0ALICE")
    assert any(request.id in (b.get("text") or {}).get("text", "") for b in home["blocks"])


def test_secrets_never_reach_sqlite_logs_or_durable_messages(jit, clock, caplog, tmp_path):
    import logging

    caplog.set_level(logging.DEBUG)
    bot, _ = jit(max_session=3600)
    request, [first] = request_and_approve(bot)
    clock.advance(minutes=30)
    click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, request.id)
    second = wait_for_credentials(bot, count=2)[-1]
    click(bot, "U0ALICE", ActionId.ACCESS_DONE, request.id)
    bot.slack.wait_for("chat.postEphemeral", lambda c: "ended" in c.args.get("text", ""))
    secrets = []
    for shown in (first, second):
        creds = credentials_from(shown)
        secrets += [creds["SecretAccessKey"], creds["SessionToken"]]
    for shown in (first, second):
        console = next(
            el["url"]
            for b in shown["blocks"]
            if b["type"] == "actions"
            for el in b["elements"]
            if el.get("url")
        )
        secrets.append(parse_qs(urlsplit(console).query)["SigninToken"][0])
    assert all(len(s) > 10 for s in secrets)
    logs = caplog.text
    assert "AssumeRole" in logs or "sts" in logs  # botocore really logged at DEBUG
    db_path = bot.services.settings.db
    blobs = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    durable = json.dumps(bot.slack.messages()) + json.dumps(bot.slack.files())
    durable += json.dumps([c.args for c in bot.slack.calls_to("chat.update")])
    durable += json.dumps([c.args for c in bot.slack.calls_to("chat.postMessage")])
    for secret in secrets:
        assert secret.encode() not in blobs
        assert secret not in logs
        assert secret not in durable
    # The key ids are there (that is what we keep), so the check above looked in the right places.
    assert credentials_from(first)["AccessKeyId"].encode() in blobs


def test_credentials_by_dm_when_configured(jit):
    bot, _ = jit(access={"deliver_credentials": "dm"})
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
    [call] = bot.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args["channel"] == "U0ALICE" and c.args["text"].startswith("Credentials"),
    )
    assert caller_identity(credentials_from(call.args))["Account"] == ACCOUNT_ID
    assert credential_ephemerals(bot) == []
    # Nothing secret went to the approvals channel.
    assert "SecretAccessKey" not in json.dumps(request_messages(bot))


def test_approvers_who_left_slack_get_a_clear_answer(jit):
    bot, _ = jit(role={"approvers": ["U0LEAD1"]})
    bot.slack.deactivate_user("U0LEAD1")
    body = ask(bot, "U0ALICE", "request prod-admin 1h fix")
    assert "Nobody can approve `prod-admin`" in body["text"] and "left Slack" in body["text"]
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 0


def test_a_departed_approver_is_named_but_the_others_can_still_approve(jit):
    bot, _ = jit(role={"approvers": ["U0LEAD1", "U0SEC1"]})
    bot.slack.deactivate_user("U0LEAD1")
    body = ask(bot, "U0ALICE", "request prod-admin 1h fix")
    assert "<@U0LEAD1> left Slack and cannot approve" in body["blocks"][0]["text"]["text"]
    request = the_request(bot)
    click(bot, "U0SEC1", ActionId.ACCESS_APPROVE, request.id)
    wait_for_credentials(bot)


def test_an_approval_interrupted_before_its_grant_is_finished_by_the_sweep(jit, clock):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    # The process stopped right after the approval was recorded, before AssumeRole.
    outcome, _ = access.approve(bot.services, request.id, "U0LEAD1")
    assert outcome == access.Approval.APPROVED
    run_job(bot, access_handlers.run_access_sweep)
    assert sts.calls == []  # too early to call it stuck
    clock.advance(minutes=11)
    run_job(bot, access_handlers.run_access_sweep)
    run_job(bot, access_handlers.run_access_sweep)
    [ephemeral] = wait_for_credentials(bot)
    assert len(sts.calls) == 1
    assert access.get_request(bot.services, request.id).state == "granted"
    assert caller_identity(credentials_from(ephemeral))["Account"] == ACCOUNT_ID


class RefusingSts:
    """A local STS that answers every call with AccessDenied, as AWS does when a trust policy
    does not name the bot (moto never refuses)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = (
                    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                    b"<Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>"
                    b"<RequestId>stub</RequestId></ErrorResponse>"
                )
                self.send_response(403)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_refused_assume_role_fails_the_request_and_says_why(jit, monkeypatch):
    bot, _ = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix")
    request = the_request(bot)
    sts = RefusingSts()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
    try:
        click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request.id)
        [note] = bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == "U0ALICE")
    finally:
        sts.stop()
    assert "grant failed" in note.args["text"]
    failed = access.get_request(bot.services, request.id)
    assert failed.state == "failed" and "AccessDenied" in failed.error and "trust policy" in failed.error
    assert "the grant failed" in text_of(request_messages(bot)[0])
    assert credential_ephemerals(bot) == []
    assert access.grants_of(bot.services, request.id) == []
    assert "grant_failed" in [r["action"] for r in bot.store.audit_rows()]


def test_a_role_needing_more_approvers_than_remain_is_refused_up_front(jit):
    bot, _ = jit(role={"approvers": ["U0LEAD1", "U0SEC1"], "approvals_required": 2})
    bot.slack.deactivate_user("U0LEAD1")
    body = ask(bot, "U0ALICE", "request prod-admin 1h fix")
    assert "Only 1 of the 2 approvers needed can approve `prod-admin`" in body["text"]
    assert request_messages(bot) == []


def test_second_account_through_its_reader_role_reads_max_session_and_revokes_there(jit):
    # Credentials inside the second account (moto keeps accounts apart), to arrange and inspect it.
    sts = boto3.client("sts", region_name="us-east-1")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/iamwarden-audit", RoleSessionName="setup"
    )["Credentials"]
    other_iam = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    other_iam.create_role(RoleName="vendor-admin", AssumeRolePolicyDocument="{}", MaxSessionDuration=7200)
    other = {
        "name": "vendor-admin",
        "arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/vendor-admin",
        "max_duration": "2h",
        "approvers": ["U0LEAD1"],
    }
    reader = {"id": OTHER_ACCOUNT, "role_arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/iamwarden-audit"}
    bot, log = jit(extra_roles=[other], accounts=[reader])
    request, [ephemeral] = request_and_approve(bot, text="request vendor-admin 2h vendor")
    assert log.last["DurationSeconds"] == 7200  # GetRole in the other account, not the 1 h fallback
    assert caller_identity(credentials_from(ephemeral))["Account"] == OTHER_ACCOUNT
    click(bot, "U0LEAD1", ActionId.ACCESS_REVOKE, request.id, message=request_messages(bot)[0])
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    assert "Live sessions were cut off" in answer.args["text"]
    document = other_iam.get_role_policy(RoleName="vendor-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
        "PolicyDocument"
    ]
    assert list(access.denied_identities(document)) == ["U0ALICE"]


def test_without_an_approvals_channel_requests_are_refused_before_anything_is_stored(jit):
    bot, _ = jit(slack={"security_team": ["U0SEC1"]})
    body = ask(bot, "U0ALICE", "request prod-admin 1h fix")
    assert "No approvals channel is configured" in body["text"]
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 0


def test_app_home_lists_requests_waiting_for_the_approver_and_approving_there_works(jit):
    bot, sts = jit()
    ask(bot, "U0ALICE", "request prod-admin 1h fix <!channel>")
    request = the_request(bot)
    bot.sender.app_home_opened("U0LEAD2")  # an approver through @sre-leads
    bot.slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0LEAD2")
    home = bot.slack.home_view("U0LEAD2")
    text = json.dumps(home["blocks"])
    assert "Waiting for your approval" in text and request.id in text and "<!channel>" not in text
    bot.sender.app_home_opened("U0BOB")  # not an approver: nothing to decide
    bot.slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0BOB")
    assert "Waiting for your approval" not in json.dumps(bot.slack.home_view("U0BOB")["blocks"])
    assert bot.sender.block_action("U0LEAD2", ActionId.ACCESS_APPROVE, request.id, view=home).status == 200
    wait_for_credentials(bot)
    assert len(sts.calls) == 1


def test_a_request_slack_refuses_to_post_is_withdrawn_with_a_clear_answer(jit):
    bot, _ = jit()
    bot.slack.fail_next("chat.postMessage", error="not_in_channel")
    body = ask(bot, "U0ALICE", "request prod-admin 1h fix")
    assert "could not post your request to the approvals channel (not_in_channel)" in body["text"]
    assert the_request(bot).state == "expired"
    # Nothing is left pending, so asking again works once the bot is invited.
    assert "waiting for approval" in ask(bot, "U0ALICE", "request prod-admin 1h fix")["text"]
