"""Malformed and unauthenticated requests: a status, never a 500, never a traceback, nothing parsed.

Plus replays: every kind of signed request, sent twice byte for byte, does its work once.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from urllib.parse import urlencode

import pytest

from handlers.ids import ActionId
from sandbox.slack_sender import FORM, JSON

DEEP = "[" * 5000 + "]" * 5000
HELP = b"command=%2Fiam&text=help&user_id=U0ALICE&team_id=T0DEMO&channel_id=C0DEMO"


def _payload(text: str) -> bytes:
    return urlencode({"payload": text}).encode()


# (name, body, content_type, how to sign, expected status). "sign" is "valid", "wrong", "none",
# or a literal timestamp to send with a wrong signature.
MALFORMED = [
    ("unsigned", HELP, FORM, "none", 401),
    ("wrong signature", HELP, FORM, "wrong", 401),
    ("non-numeric timestamp", HELP, FORM, "soon", 401),
    ("float timestamp", HELP, FORM, "1.7e9", 401),
    ("negative timestamp", HELP, FORM, "-5", 401),
    ("absurd timestamp", HELP, FORM, "9" * 40, 401),
    ("bad JSON in payload, unsigned", _payload("{not json"), FORM, "wrong", 401),
    ("invalid UTF-8, unsigned", b"payload=\xff\xfe\xfd", FORM, "wrong", 401),
    ("deep nesting, unsigned", _payload(DEEP), FORM, "wrong", 401),
    ("bad JSON body, unsigned", b"{nope", JSON, "wrong", 401),
    ("bad JSON in payload, signed", _payload("{not json"), FORM, "valid", 400),
    ("payload is null, signed", _payload("null"), FORM, "valid", 400),
    ("payload is a list, signed", _payload("[1, 2]"), FORM, "valid", 400),
    ("deep nesting, signed", _payload(DEEP), FORM, "valid", 400),
    ("deep nesting in a JSON body, signed", DEEP.encode(), JSON, "valid", 400),
    ("JSON body not an object, signed", b'"hello"', JSON, "valid", 400),
    ("invalid UTF-8, signed", b"payload=\xff\xfe\xfd", FORM, "valid", 401),
    ("empty body, signed (nothing handles it)", b"", FORM, "valid", 404),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "sign", "status"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_requests_get_a_status_and_no_traceback(
    bot, caplog, name, body, content_type, sign, status
):
    caplog.set_level(logging.DEBUG)
    before = len(bot.slack.calls)
    timestamp = str(int(time.time()))
    if sign == "none":
        request = urllib.request.Request(bot.url + "/slack/events", data=body, method="POST")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                got = reply.status
        except urllib.error.HTTPError as err:
            got = err.code
    elif sign == "valid":
        # The sender signs raw bytes (the HMAC is over bytes on Slack's side too).
        got = bot.sender.send_raw(body, content_type=content_type, timestamp=timestamp).status
    elif sign == "wrong":
        got = bot.sender.send_raw(body, content_type=content_type, signature="v0=" + "0" * 64).status
    else:
        got = bot.sender.send_raw(body, content_type=content_type, timestamp=sign, signature="v0=bad").status
    assert got == status, name
    time.sleep(0.2)
    assert len(bot.slack.calls) == before
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_get_on_the_events_path_is_405(bot):
    try:
        urllib.request.urlopen(bot.url + "/slack/events", timeout=10)
        status = 200
    except urllib.error.HTTPError as err:
        status = err.code
    assert status == 405


# -- replays ------------------------------------------------------------------------------------


class Recorder:
    """Wraps a SlackSender's transport to keep exactly what was sent, so it can be sent again."""

    def __init__(self, sender):
        self.sender = sender
        self.sent: list[tuple[bytes, str, str, str]] = []
        self._send = sender.send_raw

        def send_raw(body, *, content_type=FORM, timestamp=None, signature=None):
            timestamp = timestamp or str(int(time.time()))
            signature = signature or sender.sign(body, timestamp)
            self.sent.append((body, content_type, timestamp, signature))
            return self._send(body, content_type=content_type, timestamp=timestamp, signature=signature)

        sender.send_raw = send_raw

    def replay(self, index: int = -1):
        body, content_type, timestamp, signature = self.sent[index]
        return self._send(body, content_type=content_type, timestamp=timestamp, signature=signature)


def _state(bot) -> dict:
    """Every table's row count (except the replay ledger itself) and every Slack call made."""
    tables = [
        r[0]
        for r in bot.store.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        if r[0] not in ("seen_requests", "_iamwarden_migrations") and not r[0].startswith("_")
    ]
    counts = {t: bot.store.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return {"rows": counts, "calls": len(bot.slack.calls)}


def _settled(bot, seconds: float = 1.0) -> dict:
    time.sleep(seconds)
    return _state(bot)


def _replayed_does_nothing(bot, recorder) -> None:
    after_first = _settled(bot)
    response = recorder.replay()
    assert response.status == 200 and response.body == ""
    assert _settled(bot) == after_first


def test_replayed_slash_command_creates_no_second_request(bot):
    recorder = Recorder(bot.sender)
    assert (
        "waiting for approval" in bot.answer("U0ALICE", "request prod-admin 1h deploy hotfix").json()["text"]
    )
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 1
    _replayed_does_nothing(bot, recorder)
    assert bot.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 1


def test_replayed_block_action_runs_once(bot):
    recorder = Recorder(bot.sender)
    bot.sender.block_action("U0ALICE", ActionId.HOME_REFRESH.value, "x")
    bot.slack.wait_for("views.publish")
    _replayed_does_nothing(bot, recorder)
    assert len(bot.slack.calls_to("views.publish")) == 1


def test_replayed_view_submission_runs_once(bot):
    recorder = Recorder(bot.sender)
    values = {
        "access_role": {"access_role": {"type": "static_select", "selected_option": {"value": "prod-admin"}}},
        "access_duration": {"access_duration": {"type": "static_select", "selected_option": {"value": "1h"}}},
        "access_reason": {"access_reason": {"type": "plain_text_input", "value": "deploy hotfix"}},
    }
    from handlers.ids import CallbackId

    bot.sender.view_submission("U0ALICE", CallbackId.ACCESS_REQUEST_MODAL.value, values)
    first = _settled(bot)
    assert first["rows"]["access_requests"] == 1
    response = recorder.replay()
    assert response.status == 200 and response.body == ""
    assert _settled(bot) == first


def test_replayed_event_and_slack_retries_publish_once(bot):
    recorder = Recorder(bot.sender)
    bot.sender.app_home_opened("U0ALICE")
    bot.slack.wait_for("views.publish")
    _replayed_does_nothing(bot, recorder)
    # Slack's retry is re-signed with a new timestamp but carries the same event_id.
    body, content_type, timestamp, _ = recorder.sent[-1]
    retry_ts = str(int(timestamp) + 1)
    request = urllib.request.Request(
        bot.sender.app_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": retry_ts,
            "X-Slack-Signature": bot.sender.sign(body, retry_ts),
            "X-Slack-Retry-Num": "1",
            "X-Slack-Retry-Reason": "http_timeout",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    time.sleep(1)
    assert len(bot.slack.calls_to("views.publish")) == 1


def test_replayed_options_request_is_ignored(bot):
    recorder = Recorder(bot.sender)
    payload = {
        "type": "block_suggestion",
        "user": {"id": "U0ALICE"},
        "team": {"id": "T0DEMO"},
        "action_id": "access_role",
        "block_id": "access_role",
        "value": "prod",
    }
    bot.sender.send_raw(urlencode({"payload": json.dumps(payload)}).encode())
    _replayed_does_nothing(bot, recorder)


def test_replays_are_refused_by_a_second_instance_on_the_same_database(make_bot, tmp_path):
    first = make_bot(db=tmp_path / "shared.db")
    second = make_bot(db=tmp_path / "shared.db")
    recorder = Recorder(first.sender)
    first.command("U0ALICE", "request prod-admin 1h deploy hotfix")
    body, content_type, timestamp, signature = recorder.sent[-1]
    replay = second.sender.send_raw(body, content_type=content_type, timestamp=timestamp, signature=signature)
    assert replay.status == 200 and replay.body == ""
    time.sleep(1)
    assert first.store.execute("SELECT count(*) FROM access_requests").fetchone()[0] == 1


def test_seen_signatures_are_pruned_past_the_window(tmp_path):
    from bot.replay import SeenRequests
    from bot.store import Store

    now = [1_000_000.0]
    seen = SeenRequests(Store(tmp_path / "r.db"), now=lambda: now[0])
    assert seen.signature("v0=a", 1_000_000)
    assert not seen.signature("v0=a", 1_000_000)
    now[0] += 301 + 60  # out of the window and past the prune interval
    assert seen.signature("v0=b", 1_000_361)
    assert seen.count() == 1  # v0=a pruned
    assert seen.signature("v0=a", 1_000_000)  # (a stale timestamp is refused earlier, by the gate)


def test_the_same_signed_request_racing_itself_runs_once(bot):
    from concurrent.futures import ThreadPoolExecutor

    timestamp = str(int(time.time()))
    signature = bot.sender.sign(HELP, timestamp)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda _: bot.sender.send_raw(HELP, timestamp=timestamp, signature=signature), range(16))
        )
    assert all(r.status == 200 for r in results)
    assert sum(1 for r in results if r.body) == 1
