"""Every documented answer instead of a crash: unknown actions, odd but signed button values and
modal metadata, and fuzzed command text and payloads (hypothesis)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.queries import BadAction, check_action
from handlers.ids import ActionId, CallbackId
from handlers.models import BlockAction, SlashCommand, ViewSubmission


def _text(body: dict | None) -> str:
    body = body or {}
    parts = [body.get("text", "")]
    for block in body.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for el in block.get("elements") or []:
            if isinstance(el, dict) and isinstance(el.get("text"), str):
                parts.append(el["text"])
    return "\n".join(parts)


def _no_crash_logged(caplog) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("who-can nosuch:Thing", "is not an AWS service I know"),
        ("can alice nosuch:Thing", "is not an AWS service I know"),
        ("who-can s3:GetObjekt", "is not an action I know"),
        ("who-can iam:*", "no wildcards"),
    ],
)
def test_unknown_actions_get_the_documented_answer(bot, caplog, text, answer):
    body = bot.answer("U0ALICE", text).json()
    assert answer in _text(body)
    assert "failed on our side" not in _text(body)
    _no_crash_logged(caplog)


def test_a_huge_alert_id_is_answered_not_raised(bot, caplog):
    bot.sender.block_action("U0SEC1", ActionId.ALERT_ACKNOWLEDGE.value, "99999999999999999999")
    [reply] = bot.slack.wait_for("response_url")
    assert "can't find that alert" in reply.args["text"]
    _no_crash_logged(caplog)


def test_a_button_without_response_url_is_answered_another_way(bot, caplog):
    # Clicked in a modal: no channel, no message, no response_url.
    bot.sender.block_action(
        "U0SEC1", ActionId.ALERT_ACKNOWLEDGE.value, "12345", view={"id": "V0X", "type": "modal", "blocks": []}
    )
    [dm] = bot.slack.wait_for("chat.postMessage")
    assert dm.args["channel"] == "U0SEC1" and "can't find that alert" in dm.args["text"]
    _no_crash_logged(caplog)


def test_modal_metadata_null_is_answered_with_a_field_error(bot, caplog):
    payload_values = {
        "snooze_reason": {"snooze_reason": {"type": "plain_text_input", "value": "accepted risk"}},
        "snooze_until": {"snooze_until": {"type": "datepicker", "selected_date": "2027-01-01"}},
    }
    sender = bot.sender
    original = sender._send_payload

    def with_null_metadata(payload: dict):
        payload["view"]["private_metadata"] = None
        return original(payload)

    sender._send_payload = with_null_metadata
    response = sender.view_submission("U0SEC1", CallbackId.DIGEST_SNOOZE_MODAL.value, payload_values)
    body = response.json()
    assert response.status == 200
    assert body["response_action"] == "errors" and "no longer stored" in json.dumps(body["errors"])
    _no_crash_logged(caplog)


def test_a_signed_click_without_a_user_is_ignored_with_a_log_line(bot, caplog):
    caplog.set_level(logging.INFO)
    payload = {"type": "block_actions", "actions": [{"action_id": ActionId.HOME_REFRESH.value}]}
    from urllib.parse import urlencode

    response = bot.sender.send_raw(urlencode({"payload": json.dumps(payload)}).encode())
    assert response.status == 200
    time.sleep(1)
    assert bot.slack.calls_to("views.publish") == []
    assert any("lacks what Slack always sends" in r.getMessage() for r in caplog.records)
    _no_crash_logged(caplog)


# -- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
payload_keys = st.sampled_from(
    ["user", "actions", "container", "channel", "message", "view", "trigger_id", "response_url", "state"]
)
payloads = st.dictionaries(payload_keys, json_values, max_size=8)


@given(text=st.text(max_size=200))
def test_command_text_always_parses(text):
    cmd = SlashCommand(user_id="U0ALICE", text=text)
    assert isinstance(cmd.words, list)
    assert cmd.subcommand == (cmd.words[0].lower() if cmd.words else "")
    assert isinstance(cmd.args, list) and isinstance(cmd.rest, str)


@given(body=payloads)
def test_block_action_payloads_parse_or_are_refused_cleanly(body):
    try:
        action = BlockAction.from_body(body)
    except ValidationError:
        return
    assert isinstance(action.value, str) and isinstance(action.action_id, str)


@given(body=payloads, metadata=json_values)
def test_view_payloads_parse_or_are_refused_cleanly(body, metadata):
    if isinstance(body.get("view"), dict):
        body["view"]["private_metadata"] = metadata
    try:
        submission = ViewSubmission.from_body(body)
    except ValidationError:
        return
    assert isinstance(submission.private_metadata, str)
    submission.value("b", "a")
    submission.value("b")


@given(action=st.text(max_size=60))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_check_action_answers_or_refuses_every_string(action):
    try:
        canonical = check_action(action)
    except BadAction as exc:
        assert str(exc)
        assert all(isinstance(s, str) for s in exc.suggestions)
    else:
        assert ":" in canonical


@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_commands_always_get_an_answer(bot, text):
    response = bot.command("U0ALICE", text)
    assert response.status == 200
    body = response.json()
    assert body is None or "failed on our side" not in _text(body)
