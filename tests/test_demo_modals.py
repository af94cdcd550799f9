"""Modals in `make demo`'s chat, filled in and submitted (or cancelled) as Slack would: the chat asks
for each input block (label, numbered options), then sends a signed `view_submission` through the same
Bolt app; errors the listener answers with are shown and those inputs asked for again."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest

from handlers.ids import ActionId
from sandbox.demo import DemoSession, chat
from sandbox.render import REQUIRED, input_fields

Line = str | Callable[[DemoSession], str]


@pytest.fixture
def session():
    s = DemoSession(out=io.StringIO()).start()
    yield s
    s.stop()


def type_lines(session: DemoSession, lines: list[Line]) -> str:
    """Run the chat with ``lines`` typed one by one (a callable computes its line when it is asked
    for, e.g. the number of a button shown just before); returns what the chat printed."""
    pending = list(lines)

    def read(prompt: str) -> str | None:
        session.say(prompt)
        if not pending:
            return None
        line = pending.pop(0)
        return line(session) if callable(line) else line

    assert chat(session, read) == 0
    return session.out.getvalue()


def button(action_id: ActionId) -> Callable[[DemoSession], str]:
    def number(session: DemoSession) -> str:
        return str(next(b.number for b in reversed(session.buttons) if b.action_id == action_id.value))

    return number


def requests(session: DemoSession) -> list[dict]:
    return list(session.services.store.db["access_requests"].rows)


@pytest.mark.timeout(300)
def test_request_form_is_filled_in_reprompted_on_errors_and_submitted(session):
    text = type_lines(
        session,
        [
            "/iam request",
            "1",  # Role: prod-admin (numbered option)
            "9",  # not an option: asked again
            "4h",  # over prod-admin's 2h maximum: the listener's error, then asked again
            "",  # Reason left empty: required, asked again
            "rotate the *payments* password",
            "",  # Ticket is optional
            "2h",  # For how long, asked again after the listener's error
        ],
    )
    assert "[ Request access ]" in text
    assert "[1] prod-admin  [2] prod-readonly" in text  # a select's options, numbered
    assert "Choose one of 1–" in text
    assert REQUIRED in text
    assert "⚠ For how long: prod-admin can be requested for 15m to 2h" in text
    assert text.count("ada submits [Request]") == 2
    [row] = requests(session)
    assert (row["requester"], row["role"], row["state"]) == ("U0ADA", "prod-admin", "pending")
    assert row["duration_seconds"] == 2 * 3600
    assert row["reason"] == "rotate the *payments* password"
    posted = session.slack.messages("C0APPROVALS")
    assert any("Access request: prod-admin" in str(m.get("blocks")) for m in posted)
    assert "Traceback" not in text


@pytest.mark.timeout(300)
def test_deny_reason_modal_cancelled_sends_nothing_then_submitted_denies(session):
    text = type_lines(
        session,
        [
            "/iam request prod-readonly 1h read the logs",
            "as sam",
            button(ActionId.ACCESS_DENY),
            "cancel",
            button(ActionId.ACCESS_DENY),
            "use the <shared> dashboard & not prod",
        ],
    )
    assert "[ Deny access ]" in text
    assert "sam closes the modal [Cancel]" in text
    [row] = requests(session)
    assert row["state"] == "denied"
    assert row["deny_reason"] == "use the <shared> dashboard & not prod"
    assert text.count("sam submits [Deny]") == 1
    posted = session.slack.messages()
    assert any("use the &lt;shared&gt; dashboard &amp; not prod" in str(m) for m in posted)
    # The requester reads the reason as typed (escaped for Slack, shown unescaped in the chat).
    assert "Reason: use the <shared> dashboard & not prod" in text


@pytest.mark.timeout(300)
def test_snooze_modal_shows_the_listeners_error_on_the_date_and_asks_again(session):
    from bot.scan import scan_accounts
    from handlers.client import build_client
    from handlers.digest import post_digest

    client = build_client(session.services)
    scan_accounts(session.services, directory=client)
    post_digest(session.services, client)
    session.settle()
    too_far = (session.clock.now() + timedelta(days=200)).date().isoformat()
    soon = (session.clock.now() + timedelta(days=7)).date().isoformat()
    text = type_lines(
        session,
        [
            "as sam",
            button(ActionId.DIGEST_SNOOZE),
            "accepted risk until the migration",
            too_far,
            "31/12",
            soon,
        ],
    )
    assert "[ Snooze finding ]" in text
    assert "Enter keeps: " in text  # the datepicker's initial date
    assert "⚠ Pick a date as YYYY-MM-DD." in text
    assert "⚠ Until (at most 90 days):" in text
    assert text.count("sam submits [Snooze]") == 2
    [snooze] = list(session.services.store.db["snoozes"].rows)
    assert snooze["snoozed_by"] == "U0SAM" and snooze["reason"] == "accepted risk until the migration"
    # Snoozed through the chosen day (it ends when that day does).
    day_after = (session.clock.now() + timedelta(days=8)).date().isoformat()
    assert snooze["until"][:10] in (soon, day_after)


def test_input_fields_answer_as_slack_submits_them():
    view = {
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}},
            {
                "type": "input",
                "block_id": "b1",
                "label": {"type": "plain_text", "text": "Pick"},
                "element": {
                    "type": "static_select",
                    "action_id": "a1",
                    "options": [
                        {"text": {"type": "plain_text", "text": "One"}, "value": "1v"},
                        {"text": {"type": "plain_text", "text": "Two"}, "value": "2v"},
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "b2",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note"},
                "element": {"type": "plain_text_input", "action_id": "a2", "max_length": 5},
            },
            {
                "type": "input",
                "block_id": "b3",
                "label": {"type": "plain_text", "text": "Who"},
                "element": {"type": "users_select", "action_id": "a3", "initial_user": "U0BOB"},
            },
            {
                "type": "input",
                "block_id": "b4",
                "label": {"type": "plain_text", "text": "Which"},
                "element": {
                    "type": "checkboxes",
                    "action_id": "a4",
                    "options": [
                        {"text": {"type": "plain_text", "text": "A"}, "value": "a"},
                        {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
                    ],
                },
            },
        ]
    }
    pick, note, who, which = input_fields(view)
    assert pick.answer("two")["selected_option"]["value"] == "2v"
    assert pick.answer("1")["selected_option"]["value"] == "1v"
    with pytest.raises(ValueError, match="Choose one of 1–2"):
        pick.answer("3")
    with pytest.raises(ValueError, match="required"):
        pick.answer("")
    assert note.answer("") == {"type": "plain_text_input", "value": None}
    with pytest.raises(ValueError, match="At most 5"):
        note.answer("too long")
    names = {"U0BOB": "bob", "U0ADA": "ada"}
    assert "Enter keeps: @bob" in who.question(names)
    assert who.answer("", names)["selected_user"] == "U0BOB"
    assert who.answer("@ada", names)["selected_user"] == "U0ADA"
    assert [o["value"] for o in which.answer("1, 2")["selected_options"]] == ["a", "b"]
