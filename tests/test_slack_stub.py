"""The local Slack stand-in behaves like Slack: real HTTP, real slack_sdk and Bolt, no mocks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from sandbox.render import render_message, render_view
from sandbox.slack_api import FakeSlack
from sandbox.slack_sender import SlackSender

SECRET = "test-signing-secret"


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake):
    return WebClient(token="xoxb-testing", base_url=fake.base_url)


def section(text: str, block_id: str | None = None) -> dict:
    block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def test_post_message_is_recorded_and_stored(fake, client):
    reply = client.chat_postMessage(channel="C0SEC", text="2 new findings", blocks=[section("*2* new")])

    assert reply["ok"] and reply["channel"] == "C0SEC"
    assert reply["message"]["bot_id"] == "B0BOT"
    (call,) = fake.calls_to("chat.postMessage")
    assert call.token == "xoxb-testing"
    assert call.args["blocks"] == [section("*2* new")]
    assert call.formatting_args == {} and fake.formatting_violations() == []
    (stored,) = fake.messages("C0SEC")
    assert (stored["ts"], stored["text"], stored["thread_ts"], stored["user"]) == (
        reply["ts"],
        "2 new findings",
        None,
        "U0BOT",
    )


def test_form_encoded_blocks_are_decoded_and_formatting_args_noticed(fake, client):
    client.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "hi", "blocks": json.dumps([section("hi")]), "link_names": "1"},
    )
    (call,) = fake.calls_to("chat.postMessage")
    assert call.args["blocks"] == [section("hi")]
    assert fake.formatting_violations() == [call] and call.formatting_args == {"link_names": "1"}


def test_timestamps_are_unique_and_increasing(client):
    stamps = [client.chat_postMessage(channel="C1", text=str(i))["ts"] for i in range(3)]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 3
    assert stamps[0] == "1700000000.000100"


def test_update_edits_the_stored_message_and_delete_removes_it(fake, client):
    ts = client.chat_postMessage(channel="C1", text="pending")["ts"]
    client.chat_update(channel="C1", ts=ts, text="approved", blocks=[section("approved")])
    assert fake.message("C1", ts)["text"] == "approved"
    client.chat_delete(channel="C1", ts=ts)
    assert fake.messages("C1") == []
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts=ts, text="gone")
    assert err.value.response["error"] == "message_not_found"


def test_fifty_one_blocks_are_rejected_like_slack(fake, client):
    blocks = [section(f"row {i}") for i in range(51)]
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="too many", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert "json-pointer:/blocks" in err.value.response["response_metadata"]["messages"][0]
    assert fake.calls_to("chat.postMessage")[0].status == 200  # recorded anyway
    assert fake.messages() == []


def actions(*elements: dict) -> dict:
    return {"type": "actions", "block_id": "decide", "elements": list(elements)}


def button(text: str, action_id: str = "approve", value: str = "") -> dict:
    element = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}
    if value:
        element["value"] = value
    return element


def static_select(option_count: int) -> dict:
    options = [{"text": {"type": "plain_text", "text": str(i)}, "value": str(i)} for i in range(option_count)]
    return {"type": "static_select", "action_id": "role", "options": options}


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "no_text"),
        ({"blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"blocks": [header("h" * 151)]}, "invalid_blocks"),
        ({"blocks": [{"type": "carousel"}]}, "invalid_blocks"),
        ({"blocks": [section("x" * 2900) for _ in range(5)]}, "msg_blocks_too_long"),
        ({"blocks": [actions(button("b" * 76))]}, "invalid_blocks"),
        ({"blocks": [actions(button("Approve", value="v" * 2001))]}, "invalid_blocks"),
        ({"blocks": [actions(static_select(101))]}, "invalid_blocks"),
    ],
    ids=[
        "no-text",
        "section-3001",
        "header-151",
        "unknown-type",
        "cumulative",
        "button-76",
        "value-2001",
        "101-options",
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_messages_slack_would_refuse_are_refused(client, kwargs, error):
    text = {"text": "fallback"} if kwargs else {}
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", **text, **kwargs)
    assert err.value.response["error"] == error


def test_a_view_with_more_than_100_blocks_is_invalid_arguments(client):
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Big"},
        "blocks": [{"type": "divider"}] * 101,
    }
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="1.2.3", view=view)
    assert err.value.response["error"] == "invalid_arguments"


def test_rate_limit_answers_429_with_retry_after(fake, client):
    fake.fail_next("chat.postMessage", retry_after=1)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"


def test_retry_handler_succeeds_after_a_rate_limit(fake):
    client = WebClient(
        token="xoxb-testing",
        base_url=fake.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("chat.postMessage", retry_after=1)
    started = time.monotonic()
    reply = client.chat_postMessage(channel="C1", text="hi")
    assert reply["ok"]
    assert time.monotonic() - started >= 1  # it honoured Retry-After
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_other_failures_answer_ok_false(fake, client):
    fake.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C404", text="hi")
    assert err.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="C404", text="hi")["ok"]


def test_wrong_token_and_unknown_method(fake):
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-wrong", base_url=fake.base_url).auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-testing", base_url=fake.base_url).api_call("admin.nonsense")
    assert err.value.response["error"] == "unknown_method"


def test_users_list_paginates_with_cursor(fake, client):
    for i in range(5):
        fake.add_user(f"U{i:04d}", name=f"user{i}", email=f"user{i}@example.com")
    # The SDK's iterator reuses one response object, so read each page as it arrives.
    pages = [
        (page["members"], page["response_metadata"]["next_cursor"]) for page in client.users_list(limit=2)
    ]
    assert [len(members) for members, _ in pages] == [2, 2, 2]  # the bot user plus five people
    ids = [m["id"] for members, _ in pages for m in members]
    assert ids == ["U0BOT", "U0000", "U0001", "U0002", "U0003", "U0004"]
    assert pages[-1][1] == "" and all(cursor for _, cursor in pages[:-1])


def test_user_lookups(fake, client):
    fake.add_user("U1ALICE", name="alice", email="alice@example.com")
    assert client.users_lookupByEmail(email="ALICE@example.com")["user"]["id"] == "U1ALICE"
    fake.deactivate_user("U1ALICE")
    assert client.users_info(user="U1ALICE")["user"]["deleted"] is True
    for call, error in [
        (lambda: client.users_info(user="U404"), "user_not_found"),
        (lambda: client.users_lookupByEmail(email="nobody@example.com"), "users_not_found"),
        (lambda: client.usergroups_users_list(usergroup="S404"), "no_such_subteam"),
    ]:
        with pytest.raises(SlackApiError) as err:
            call()
        assert err.value.response["error"] == error


def test_usergroups_and_dm_channels(fake, client):
    fake.add_user("U1ALICE", name="alice")
    group = fake.set_usergroup("iam-approvers", ["U1ALICE"])
    listed = client.usergroups_list(include_users=True)["usergroups"]
    assert [(g["handle"], g["users"]) for g in listed] == [("iam-approvers", ["U1ALICE"])]
    assert client.usergroups_users_list(usergroup=group["id"])["users"] == ["U1ALICE"]
    dm = client.conversations_open(users="U1ALICE")["channel"]["id"]
    assert dm.startswith("D")
    assert client.conversations_info(channel=dm)["channel"]["user"] == "U1ALICE"


def test_files_upload_v2_end_to_end(fake, client):
    reply = client.files_upload_v2(
        channel="C0SEC",
        filename="findings.csv",
        content="check_id,severity\nroot-mfa,critical\n",
        title="Findings",
        initial_comment="Today's scan",
    )
    assert reply["file"]["name"] == "findings.csv"
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    (stored,) = fake.files()
    assert stored["content"] == b"check_id,severity\nroot-mfa,critical\n"
    assert (stored["channel"], stored["title"], stored["initial_comment"]) == (
        "C0SEC",
        "Findings",
        "Today's scan",
    )


def test_views_open_update_and_publish(fake, client):
    modal = {
        "type": "modal",
        "callback_id": "request_access",
        "title": {"type": "plain_text", "text": "Request access"},
        "submit": {"type": "plain_text", "text": "Request"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "reason"},
            }
        ],
    }
    opened = client.views_open(trigger_id="1.2.3", view=modal)["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)["view"]
    assert updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    assert err.value.response["error"] == "hash_conflict"
    client.views_publish(user_id="U0BOT", view={"type": "home", "blocks": [section("Welcome")]})
    assert fake.home_view("U0BOT")["blocks"] == [section("Welcome")]


def test_wait_for_blocks_until_the_call_arrives(fake, client):
    ts = client.chat_postMessage(channel="C1", text="scan done")["ts"]
    threading.Timer(0.05, lambda: client.reactions_add(channel="C1", timestamp=ts, name="eyes")).start()
    (call,) = fake.wait_for("reactions.add", timeout=5)
    assert call.response == {"ok": True}
    assert fake.message("C1", ts)["reactions"] == [{"name": "eyes", "users": ["U0BOT"], "count": 1}]
    with pytest.raises(AssertionError, match="reactions.add"):
        fake.wait_for("chat.delete", timeout=0.1)


def test_signatures_verify_with_slack_sdk(fake):
    sender = SlackSender("http://127.0.0.1:9/slack/events", SECRET, fake_slack=fake)
    body = b"token=x&text=hello"
    timestamp = str(int(time.time()))
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, timestamp, sender.sign(body, timestamp))
    assert not verifier.is_valid(body, timestamp, SlackSender("x", "other").sign(body, timestamp))


# -- the sender against a real Bolt app in HTTP mode ----------------------------------------------


@pytest.fixture
def bolt_app(fake):
    """A Bolt app served over HTTP at /slack/events, talking to the fake Web API."""
    app = App(
        signing_secret=SECRET,
        client=WebClient(token="xoxb-testing", base_url=fake.base_url),
    )
    seen: dict[str, list] = {"commands": [], "actions": [], "submissions": [], "events": []}

    @app.command("/iam")
    def on_command(ack, command, respond):
        ack()
        seen["commands"].append(command)
        respond(text=f"scanning for <@{command['user_id']}>", response_type="in_channel")

    @app.action("approve")
    def on_approve(ack, body, respond):
        ack()
        seen["actions"].append(body)
        respond(replace_original=True, text="Approved")

    @app.view("request_access")
    def on_submit(ack, view):
        ack(response_action="errors", errors={"reason": "Say why"})
        seen["submissions"].append(view)

    @app.event("app_home_opened")
    def on_home(event, client):
        seen["events"].append(event)
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [section("Home")]})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            reply = app.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in self.headers.items()}))
            data = (reply.body or "").encode()
            self.send_response(reply.status)
            for name, values in reply.headers.items():
                for value in values:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    sender = SlackSender(f"http://127.0.0.1:{server.server_address[1]}/slack/events", SECRET, fake_slack=fake)
    yield sender, seen
    server.shutdown()
    server.server_close()


def test_slash_command_is_acked_and_respond_reaches_the_response_url(fake, bolt_app):
    sender, seen = bolt_app
    fake.add_user("U1ALICE", name="alice")
    reply = sender.command("U1ALICE", "scan", channel_id="C0SEC")
    assert reply.status == 200
    (command,) = seen["commands"]
    assert (command["user_name"], command["text"], command["channel_id"]) == ("alice", "scan", "C0SEC")
    (call,) = fake.wait_for("response_url")
    assert call.args["text"] == "scanning for <@U1ALICE>"
    assert [m["text"] for m in fake.messages("C0SEC")] == ["scanning for <@U1ALICE>"]


def test_button_click_replaces_the_original_message(fake, bolt_app, client):
    sender, seen = bolt_app
    blocks = [
        section("Alice asks for *ReadOnly*", block_id="req"),
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "Approve"}}
            ],
        },
    ]
    posted = client.chat_postMessage(channel="C0SEC", text="Access request", blocks=blocks)
    shown = fake.message("C0SEC", posted["ts"])  # carries its channel, so the click comes from C0SEC
    reply = sender.block_action("U0BOB", "approve", "req-1", block_id="decide", message=shown)
    assert reply.status == 200
    action = seen["actions"][0]["actions"][0]
    assert (action["text"]["text"], action["value"]) == ("Approve", "req-1")
    fake.wait_for("response_url")
    assert fake.message("C0SEC", posted["ts"])["text"] == "Approved"


def test_view_submission_and_app_home_event(fake, bolt_app):
    sender, seen = bolt_app
    values = {"reason": {"reason": {"type": "plain_text_input", "value": ""}}}
    reply = sender.view_submission("U1ALICE", "request_access", values, private_metadata="42")
    assert reply.json() == {"response_action": "errors", "errors": {"reason": "Say why"}}
    assert seen["submissions"][0]["state"]["values"] == values
    fake.add_user("U1ALICE", name="alice")
    assert sender.app_home_opened("U1ALICE").status == 200
    fake.wait_for("views.publish")
    assert fake.home_view("U1ALICE")["blocks"] == [section("Home")]


def test_forged_and_stale_requests_are_refused(bolt_app):
    sender, seen = bolt_app
    body = b"command=%2Fiam&user_id=U1&text="
    assert sender.send_raw(body, signature="v0=" + "0" * 64).status == 401
    assert sender.send_raw(body, timestamp=str(int(time.time()) - 600)).status == 401
    assert seen["commands"] == []


def test_trigger_ids_are_single_use(fake, bolt_app, client):
    sender, seen = bolt_app
    sender.command("U0BOT")
    trigger_id = seen["commands"][0]["trigger_id"]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": [section("x")]}
    assert client.views_open(trigger_id=trigger_id, view=modal)["ok"]
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=trigger_id, view=modal)
    assert err.value.response["error"] == "exchanged_trigger_id"


# -- rendering ---------------------------------------------------------------------------------------


def test_render_message_with_buttons():
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Access request"}},
            section("<@U1ALICE> wants *ReadOnly* &amp; more: <https://example.com/r/1|details> &lt;now&gt;"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "expires in 1h"}]},
            {"type": "divider"},
            {
                "type": "actions",
                "block_id": "decide",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "value": "r1",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": "deny",
                        "value": "r1",
                        "text": {"type": "plain_text", "text": "Deny"},
                    },
                ],
            },
        ],
    }
    text, buttons = render_message(message)
    assert "@U1ALICE wants ReadOnly & more: details (https://example.com/r/1) <now>" in text
    assert "Access request" in text and "expires in 1h" in text
    assert "[1] Approve  [2] Deny" in text
    assert [(b.number, b.text, b.action_id, b.value, b.block_id) for b in buttons] == [
        (1, "Approve", "approve", "r1", "decide"),
        (2, "Deny", "deny", "r1", "decide"),
    ]


def test_render_view_lists_inputs():
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Request access"},
        "submit": {"type": "plain_text", "text": "Request"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "reason"},
            }
        ],
    }
    text, buttons = render_view(view)
    assert "[ Request access ]" in text and "(input) Reason" in text and "<Request>" in text
    assert buttons == []


def test_render_shows_mrkdwn_as_slack_does_names_styles_and_emoji():
    message = {
        "text": "<@U0SAM> *approved* `prod-admin` :red_circle: for <!subteam^S01|@security> and <@U0ZED>"
    }
    plain, _ = render_message(message, names={"U0SAM": "sam"})
    assert plain == "@sam approved `prod-admin` 🔴 for @security and @U0ZED"
    coloured, _ = render_message(message, names={"U0SAM": "sam"}, colour=True)
    assert "\x1b[1mapproved\x1b[22m" in coloured and "\x1b[36mprod-admin\x1b[39m" in coloured
    # Inside code nothing is interpreted; an unknown emoji code stays as typed.
    literal, _ = render_message({"text": "`*x* :red_circle:` :not_an_emoji: 2*3*4"})
    assert literal == "`*x* :red_circle:` :not_an_emoji: 2*3*4"
