"""The digest's buttons and the snooze modal, clicked through signed requests: Snooze, Notify owner,
Acknowledge."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from bot.findings import Finding
from handlers.client import build_client
from handlers.digest import post_digest
from handlers.ids import ActionId, BlockId, CallbackId
from tests.digest.support import CHANNEL, click, headlines, store_scan, texts, thread


def _open_snooze(bot, user: str, f: Finding):
    post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[-1]
    return head, click(bot, user, head, ActionId.DIGEST_SNOOZE, f.fingerprint)


def test_snooze_is_for_the_security_team(bot, two_scans):
    head, response = _open_snooze(bot, "U0ALICE", two_scans["dana"])
    assert response.status == 200
    [answer] = bot.slack.wait_for("chat.postEphemeral")
    assert "security team" in answer.args["text"]
    assert bot.slack.calls_to("views.open") == []


def test_snooze_records_who_and_why_and_expiry_brings_the_finding_back(bot, two_scans, clock):
    dana = two_scans["dana"]
    head, _ = _open_snooze(bot, "U0SEC2", dana)  # U0SEC2 is on the team through @security
    [opened] = bot.slack.wait_for("views.open")
    view = opened.response["view"]
    assert view["callback_id"] == CallbackId.DIGEST_SNOOZE_MODAL
    until = (clock.now() + timedelta(days=10)).date().isoformat()
    response = bot.sender.view_submission(
        "U0SEC2",
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {
                BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "HR confirms <!channel> leave"}
            },
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    assert response.status == 200 and not response.body
    note = bot.slack.wait_for("chat.postMessage", lambda c: "snoozed" in c.args.get("text", ""))[0]
    assert note.args["thread_ts"] == head["ts"]
    assert "<!channel>" not in note.args["text"] and "&lt;!channel&gt;" in note.args["text"]
    [row] = list(bot.store.db["snoozes"].rows)
    assert row["snoozed_by"] == "U0SEC2" and row["reason"] == "HR confirms <!channel> leave"
    audit = [r for r in bot.store.audit_rows() if r["action"] == "finding.snooze"]
    assert audit and audit[0]["actor"] == "U0SEC2"
    # Next digest: dana is snoozed, not counted.
    clock.advance(days=1)
    store_scan(bot, list(two_scans[k] for k in ("ada", "dana", "root")))
    post_digest(bot.services, build_client(bot.services))
    text = texts(headlines(bot.slack)[-1])
    assert "1 critical (−1)" in text and "1 snoozed" in text
    # After the end date the finding is back.
    clock.advance(days=11)
    store_scan(bot, list(two_scans[k] for k in ("ada", "dana", "root")))
    third = post_digest(bot.services, build_client(bot.services))
    text = texts(headlines(bot.slack)[-1])
    assert "2 critical (+1)" in text and "0 snoozed" in text
    titles = [r["blocks"][0]["text"]["text"] for r in thread(bot.slack, third.ts)]
    assert "Back from snooze (1)" in titles
    assert [r["action"] for r in bot.store.audit_rows()].count("finding.snooze_expired") == 1


@pytest.mark.parametrize(
    ("days", "error"),
    [(91, "at most 90 days"), (-1, "in the future")],
)
def test_snooze_end_date_is_checked(bot, two_scans, clock, days, error):
    until = (clock.now() + timedelta(days=days)).date().isoformat()
    response = bot.sender.view_submission(
        "U0SEC1",
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "later"}},
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=json.dumps({"fingerprint": two_scans["ada"].fingerprint, "channel": CHANNEL}),
    )
    body = response.json()
    assert body["response_action"] == "errors"
    assert error in body["errors"][BlockId.SNOOZE_UNTIL]
    assert list(bot.store.db["snoozes"].rows) == []


def _submit_snooze(bot, user: str, fingerprint: str, until: str):
    return bot.sender.view_submission(
        user,
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "mine"}},
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=json.dumps({"fingerprint": fingerprint, "channel": CHANNEL}),
    )


def test_only_the_security_team_can_submit_a_snooze(bot, two_scans, clock):
    until = (clock.now() + timedelta(days=5)).date().isoformat()
    # Cold group cache: membership needs Slack, so the modal closes at once and the answer is private.
    response = _submit_snooze(bot, "U0ALICE", two_scans["ada"].fingerprint, until)
    assert response.status == 200 and not response.body
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0ALICE")
    assert "security team" in answer.args["text"] and "not snoozed" in answer.args["text"]
    # Warm cache (the check above filled it): refused in the ack itself, on the form.
    response = _submit_snooze(bot, "U0ALICE", two_scans["ada"].fingerprint, until)
    assert "security team" in response.json()["errors"][BlockId.SNOOZE_REASON]
    assert list(bot.store.db["snoozes"].rows) == []


def test_a_snooze_is_acked_before_any_user_group_call_while_slack_rate_limits(bot, two_scans, clock):
    """Cold group cache and usergroups.* answering 429: the ack needs no Web API call; the
    membership check and the snooze happen after it, once Slack answers."""
    until = (clock.now() + timedelta(days=5)).date().isoformat()
    bot.slack.fail_for(3, retry_after=2, methods=("usergroups.list", "usergroups.users.list"))
    response = _submit_snooze(bot, "U0SEC2", two_scans["ada"].fingerprint, until)  # via @security
    answered_at = time.time()
    assert response.status == 200 and not response.body
    bot.slack.wait_for("chat.postMessage", lambda c: "snoozed" in c.args.get("text", ""), timeout=30)
    [row] = list(bot.store.db["snoozes"].rows)
    assert row["snoozed_by"] == "U0SEC2"
    group_calls = [c for c in bot.slack.calls if c.method.startswith("usergroups.")]
    refused = [c for c in group_calls if c.status == 429]
    answered = [c for c in group_calls if c.status == 200]
    assert refused and answered
    # Had the check run before the ack, the ack would have waited for Slack's answer.
    assert all(c.at > answered_at for c in answered)


def test_notify_owner_dms_the_owner_the_finding_and_its_fix(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    ada = two_scans["ada"]
    # Ada's finding is listed in no reply with buttons (it is neither new nor offboarding): use the
    # button as a re-posted item would carry it.
    message = {"ts": headlines(bot.slack)[0]["ts"], "channel": CHANNEL, "blocks": []}
    response = bot.sender.block_action(
        "U0SEC1", ActionId.DIGEST_NOTIFY_OWNER, ada.fingerprint, message=message
    )
    assert response.status == 200
    dm = bot.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "U0ALICE")[0]
    text = texts(dm.args)
    assert "<@U0SEC1> asked me" in text and "aws iam fix --user-name ada" in text
    assert bot.slack.wait_for("chat.postEphemeral")[0].args["text"].startswith("I sent <@U0ALICE>")
    assert any(r["action"] == "finding.notified" for r in bot.store.audit_rows())


def test_notify_owner_without_an_owner_says_how_to_map_one(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    root = two_scans["root"]
    bot.sender.block_action("U0SEC1", ActionId.DIGEST_NOTIFY_OWNER, root.fingerprint, channel_id=CHANNEL)
    answer = bot.slack.wait_for("chat.postEphemeral")[0].args["text"]
    assert "Nobody is known to own" in answer and "[identity] map" in answer


def test_acknowledge_records_who_once(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[0]
    dana = two_scans["dana"]
    click(bot, "U0ALICE", head, ActionId.DIGEST_ACKNOWLEDGE, dana.fingerprint)
    note = bot.slack.wait_for("chat.postMessage", lambda c: "acknowledged" in c.args.get("text", ""))[0]
    assert note.args["thread_ts"] == head["ts"]
    click(bot, "U0BOB", head, ActionId.DIGEST_ACKNOWLEDGE, dana.fingerprint)
    answer = bot.slack.wait_for("chat.postEphemeral")[0]
    assert "Already acknowledged by <@U0ALICE>" in answer.args["text"]
    assert [r["acknowledged_by"] for r in bot.store.db["acknowledgements"].rows] == ["U0ALICE"]
    post_digest(bot.services, build_client(bot.services))
    assert "acknowledged by <@U0ALICE>" in texts(headlines(bot.slack)[-1])
