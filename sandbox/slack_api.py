"""A local stand-in for Slack's Web API, used by the tests and by `iamwarden demo`.

`FakeSlack` is a real HTTP server on loopback (port 0 by default) that answers the Web API
methods iamwarden uses with the shapes of Slack's documented responses (kept as JSON fixtures in
`slack_fixtures/`), records every call, and rejects what Slack would reject with Slack's own
error names: too many blocks, over-long texts, unknown block types, messages without text, a
`response_url` used more than five times, an expired or reused `trigger_id`. It can also answer
`429` with `Retry-After` so retry handlers are exercised for real.

Point a `slack_sdk.WebClient(token=..., base_url=fake.base_url)` at it; Bolt's `respond()` can
post to `fake.response_url(...)`, and `files_upload_v2` uploads to URLs on this server.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "slack_fixtures"

# Slack's documented limits (https://docs.slack.dev/reference/block-kit/).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_CUMULATIVE_BLOCK_TEXT = 12_000
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60
TRIGGER_TTL_SECONDS = 3.0

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "call",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
SELECT_TYPES = frozenset({"static_select", "multi_static_select"})
FORMATTING_ARGS = ("link_names", "parse")
NO_AUTH_METHODS = frozenset({"response_url", "upload"})


def load_fixture(name: str) -> Any:
    """A fresh copy of one JSON fixture from `slack_fixtures/` (name without `.json`)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class SlackCall:
    """One request the fake answered: what was asked, with which token, and what we said."""

    method: str
    args: dict
    token: str | None
    status: int
    response: dict
    key: str | None = None  # the response_url key or file id, for "response_url" / "upload" calls
    at: float = field(default_factory=time.time)

    @property
    def formatting_args(self) -> dict:
        """`link_names` / `parse` if the caller sent them (iamwarden never should)."""
        return {k: self.args[k] for k in FORMATTING_ARGS if self.args.get(k) is not None}


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int
    remaining: int


class SlackApiError(Exception):
    """An error answer; carries Slack's error name and optional schema messages."""

    def __init__(self, error: str, messages: list[str] | None = None, status: int = 200):
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.status = status

    def body(self) -> dict:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            body["errors"] = [m.removeprefix("[ERROR] ") for m in self.messages]
            body["response_metadata"] = {"messages": self.messages}
        return body


# --------------------------------------------------------------------------------------------
# Block Kit validation, with Slack's limits and error names.


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"]
    return None


class _BlockValidator:
    """Collects Slack-style schema errors (`[ERROR] … [json-pointer:/blocks/0/text]`)."""

    def __init__(self, root: str):
        self.root = root
        self.errors: list[str] = []

    def error(self, pointer: str, message: str) -> None:
        self.errors.append(f"[ERROR] {message} [json-pointer:{self.root}{pointer}]")

    def text_object(self, obj: Any, pointer: str, *, limit: int, plain_only: bool = False) -> None:
        if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
            self.error(pointer, "must provide an object with type plain_text or mrkdwn")
            return
        if plain_only and obj["type"] != "plain_text":
            self.error(pointer + "/type", "must be plain_text")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.error(pointer + "/text", "must be more than 0 characters")
        elif len(text) > limit:
            self.error(pointer + "/text", f"must be less than {limit + 1} characters")

    def length(self, value: Any, pointer: str, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.error(pointer, f"must be less than {limit + 1} characters")

    def blocks(self, blocks: Any, max_blocks: int) -> None:
        if not isinstance(blocks, list):
            self.error("", "must provide an array")
            return
        if len(blocks) > max_blocks:
            self.error("", f"must be less than {max_blocks + 1} items")
        seen_block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            pointer = f"/{i}"
            if not isinstance(block, dict):
                self.error(pointer, "must provide an object")
                continue
            block_id = block.get("block_id")
            if block_id is not None:
                self.length(block_id, pointer + "/block_id", 255)
                if block_id in seen_block_ids:
                    self.error(pointer + "/block_id", f"duplicate block_id {block_id}")
                seen_block_ids.add(block_id)
            kind = block.get("type")
            if kind not in KNOWN_BLOCK_TYPES:
                self.error(pointer, f"unsupported type: {kind}")
                continue
            getattr(self, f"_block_{kind}", self._block_other)(block, pointer)

    def _block_other(self, block: dict, pointer: str) -> None:
        pass

    def _block_section(self, block: dict, pointer: str) -> None:
        if "text" not in block and "fields" not in block:
            self.error(pointer, "must provide either text or fields")
        if "text" in block:
            self.text_object(block["text"], pointer + "/text", limit=3000)
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                self.error(pointer + "/fields", "must be less than 11 items")
            else:
                for j, f in enumerate(fields):
                    self.text_object(f, f"{pointer}/fields/{j}", limit=2000)
        if "accessory" in block:
            self.element(block["accessory"], pointer + "/accessory")

    def _block_header(self, block: dict, pointer: str) -> None:
        self.text_object(block.get("text"), pointer + "/text", limit=150, plain_only=True)

    def _block_context(self, block: dict, pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > 10:
            self.error(pointer + "/elements", "must provide between 1 and 10 items")
            return
        for j, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") == "image":
                continue
            self.text_object(el, f"{pointer}/elements/{j}", limit=3000)

    def _block_actions(self, block: dict, pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > 25:
            self.error(pointer + "/elements", "must provide between 1 and 25 items")
            return
        seen: set[str] = set()
        for j, el in enumerate(elements):
            self.element(el, f"{pointer}/elements/{j}")
            action_id = el.get("action_id") if isinstance(el, dict) else None
            if action_id is not None:
                if action_id in seen:
                    self.error(f"{pointer}/elements/{j}/action_id", f"duplicate action_id {action_id}")
                seen.add(action_id)

    def _block_input(self, block: dict, pointer: str) -> None:
        self.text_object(block.get("label"), pointer + "/label", limit=2000, plain_only=True)
        if "hint" in block:
            self.text_object(block["hint"], pointer + "/hint", limit=2000, plain_only=True)
        if not isinstance(block.get("element"), dict):
            self.error(pointer + "/element", "must provide an object")
        else:
            self.element(block["element"], pointer + "/element")

    def _block_image(self, block: dict, pointer: str) -> None:
        self.length(block.get("image_url"), pointer + "/image_url", 3000)
        if not block.get("alt_text"):
            self.error(pointer + "/alt_text", "must be more than 0 characters")
        self.length(block.get("alt_text"), pointer + "/alt_text", 2000)

    def element(self, el: Any, pointer: str) -> None:
        if not isinstance(el, dict) or not isinstance(el.get("type"), str):
            self.error(pointer, "must provide an object with a type")
            return
        self.length(el.get("action_id"), pointer + "/action_id", 255)
        kind = el["type"]
        if "placeholder" in el:
            self.text_object(el["placeholder"], pointer + "/placeholder", limit=150, plain_only=True)
        if kind == "button":
            self.text_object(el.get("text"), pointer + "/text", limit=75, plain_only=True)
            self.length(el.get("value"), pointer + "/value", 2000)
            self.length(el.get("url"), pointer + "/url", 3000)
            if el.get("style") not in (None, "primary", "danger"):
                self.error(pointer + "/style", "must be one of primary, danger")
        elif kind in SELECT_TYPES:
            options = el.get("options")
            groups = el.get("option_groups")
            if options is None and groups is None:
                self.error(pointer, "must provide either options or option_groups")
            for name, items in (("options", options), ("option_groups", groups)):
                if items is None:
                    continue
                if not isinstance(items, list) or len(items) > 100:
                    self.error(f"{pointer}/{name}", "must be less than 101 items")
                    continue
                if name == "options":
                    self.options(items, f"{pointer}/options")
                else:
                    for g, group in enumerate(items):
                        self.options(group.get("options", []), f"{pointer}/option_groups/{g}/options")
        elif kind in ("checkboxes", "radio_buttons"):
            options = el.get("options")
            if not isinstance(options, list) or not options or len(options) > 10:
                self.error(pointer + "/options", "must provide between 1 and 10 items")
            else:
                self.options(options, pointer + "/options")
        elif kind == "overflow":
            options = el.get("options")
            if not isinstance(options, list) or not 2 <= len(options) <= 5:
                self.error(pointer + "/options", "must provide between 2 and 5 items")
            else:
                self.options(options, pointer + "/options")
        elif kind == "plain_text_input":
            max_length = el.get("max_length")
            if isinstance(max_length, int) and max_length > 3000:
                self.error(pointer + "/max_length", "must be less than 3001")
            self.length(el.get("initial_value"), pointer + "/initial_value", 3000)

    def options(self, options: list, pointer: str) -> None:
        for k, opt in enumerate(options):
            if not isinstance(opt, dict):
                self.error(f"{pointer}/{k}", "must provide an object")
                continue
            self.text_object(opt.get("text"), f"{pointer}/{k}/text", limit=75)
            value = opt.get("value")
            if not isinstance(value, str) or not value:
                self.error(f"{pointer}/{k}/value", "must be more than 0 characters")
            self.length(value, f"{pointer}/{k}/value", 150)


def _cumulative_text(obj: Any) -> int:
    """Characters in every `text` string nested anywhere in the blocks."""
    if isinstance(obj, list):
        return sum(_cumulative_text(x) for x in obj)
    if isinstance(obj, dict):
        total = 0
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                total += len(value)
            else:
                total += _cumulative_text(value)
        return total
    return 0


def validate_message(args: dict, *, require_text: bool = True) -> None:
    """Raise `SlackApiError` the way chat.postMessage / chat.update would for these args."""
    text = args.get("text")
    blocks = args.get("blocks")
    attachments = args.get("attachments")
    if require_text and not text and not blocks and not attachments:
        raise SlackApiError("no_text")
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        raise SlackApiError("msg_too_long")
    if blocks is not None:
        check = _BlockValidator("/blocks")
        check.blocks(blocks, MAX_MESSAGE_BLOCKS)
        if check.errors:
            raise SlackApiError("invalid_blocks", check.errors)
        if _cumulative_text(blocks) > MAX_CUMULATIVE_BLOCK_TEXT:
            raise SlackApiError("msg_blocks_too_long")
    if attachments is not None:
        if not isinstance(attachments, list) or len(attachments) > 100:
            raise SlackApiError("too_many_attachments")
        for i, attachment in enumerate(attachments):
            if isinstance(attachment, dict) and "blocks" in attachment:
                check = _BlockValidator(f"/attachments/{i}/blocks")
                check.blocks(attachment["blocks"], MAX_MESSAGE_BLOCKS)
                if check.errors:
                    raise SlackApiError("invalid_attachments", check.errors)


def validate_view(view: Any) -> None:
    """Raise `SlackApiError("invalid_arguments", …)` for a view Slack would refuse."""
    if not isinstance(view, dict):
        raise SlackApiError("invalid_arguments", ["[ERROR] must provide an object [json-pointer:/view]"])
    check = _BlockValidator("/view")
    kind = view.get("type")
    if kind not in ("modal", "home"):
        check.error("/type", "must be one of modal, home")
    if kind == "modal":
        check.text_object(view.get("title"), "/title", limit=24, plain_only=True)
        for name in ("submit", "close"):
            if view.get(name) is not None:
                check.text_object(view[name], f"/{name}", limit=24, plain_only=True)
        if view.get("submit") is None and any(
            isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or []
        ):
            check.error("/submit", "must provide submit when the view has input blocks")
    check.length(view.get("private_metadata"), "/private_metadata", 3000)
    check.length(view.get("callback_id"), "/callback_id", 255)
    check.length(view.get("external_id"), "/external_id", 255)
    sub = _BlockValidator("/view/blocks")
    sub.blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
    errors = check.errors + sub.errors
    if errors:
        raise SlackApiError("invalid_arguments", errors)


# --------------------------------------------------------------------------------------------
# The server.


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeSlack/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.fake._serve(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSlack


class FakeSlack:
    """A local Slack Web API: records every call and answers like Slack (see module docstring)."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-testing",  # noqa: S107 - the sandbox's fixed test token
        team_id: str = "T0DEMO",
        bot_user_id: str = "U0BOT",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        trigger_ttl: float | None = TRIGGER_TTL_SECONDS,
    ):
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.app_id = "A0DEMO"
        self.host = host
        self.port = port
        self.clock = clock
        self.trigger_ttl = trigger_ttl
        self.calls: list[SlackCall] = []
        self._cond = threading.Condition(threading.RLock())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._ts_seq = 0
        self._users: dict[str, dict] = {}
        self._usergroups: dict[str, dict] = {}
        self._channels: dict[str, dict] = {}
        self._reset_state()
        self._reset_directory()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    # -- what tests look at --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[SlackCall], bool] | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SlackCall]:
        """Block until `count` calls to `method` match `predicate`; return all that match."""

        def matching() -> list[SlackCall]:
            return [c for c in self.calls if c.method == method and (predicate is None or predicate(c))]

        with self._cond:
            if self._cond.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                return matching()
            seen = [c.method for c in self.calls]
            raise AssertionError(
                f"expected {count} call(s) to {method} within {timeout}s, "
                f"got {len(matching())}; methods seen: {seen}"
            )

    def formatting_violations(self) -> list[SlackCall]:
        """Calls that sent `link_names` or `parse` (iamwarden must never)."""
        with self._cond:
            return [c for c in self.calls if c.formatting_args]

    def messages(self, channel: str | None = None) -> list[dict]:
        """Durable messages as Slack now shows them (edits applied, deletions removed), in post order."""
        with self._cond:
            return [copy.deepcopy(m) for m in self._messages.values() if channel in (None, m["channel"])]

    def message(self, channel: str, ts: str) -> dict | None:
        with self._cond:
            found = self._messages.get((channel, ts))
            return copy.deepcopy(found) if found else None

    def ephemerals(self, user: str | None = None) -> list[dict]:
        """Ephemeral messages shown (never stored by Slack; kept here so tests can see them)."""
        with self._cond:
            return [copy.deepcopy(m) for m in self._ephemerals if user in (None, m["user"])]

    def files(self) -> list[dict]:
        """Completed uploads: file_id, filename, title, channel(s), content, initial_comment, thread_ts."""
        with self._cond:
            return [copy.deepcopy(f) for f in self._files]

    def views(self) -> list[dict]:
        """Modals opened, pushed or updated, as they stand now."""
        with self._cond:
            return [copy.deepcopy(v) for v in self._views.values()]

    def view(self, view_id: str) -> dict | None:
        with self._cond:
            found = self._views.get(view_id)
            return copy.deepcopy(found) if found else None

    def user(self, user_id: str) -> dict | None:
        with self._cond:
            found = self._users.get(user_id)
            return copy.deepcopy(found) if found else None

    def channel(self, channel_id: str) -> dict | None:
        """A channel registered with `add_channel` (None otherwise)."""
        with self._cond:
            found = self._channels.get(channel_id)
            return copy.deepcopy(found) if found else None

    def home_view(self, user_id: str) -> dict | None:
        """The App Home last published for `user_id`."""
        with self._cond:
            found = self._home_views.get(user_id)
            return copy.deepcopy(found) if found else None

    # -- arranging the workspace ---------------------------------------------------------------

    def response_url(
        self, key: str = "", *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url on this server. With `channel`, in_channel replies become stored messages;
        with `message_ts` too, replace_original / delete_original edit that stored message."""
        with self._cond:
            if not key:
                key = f"R{self._next_seq():06d}"
            self._response_urls.setdefault(
                key, {"channel": channel, "message_ts": message_ts, "uses": 0, "issued": self.clock()}
            )
        return f"{self.url}/response_url/{key}"

    def issue_trigger(self, trigger_id: str) -> None:
        """Remember when a trigger_id was handed out, so views.open can expire or refuse reuse."""
        with self._cond:
            self._triggers[trigger_id] = {"issued": self.clock(), "used": False}

    def fail_next(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int = 1,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `method` fail. `ratelimited` answers HTTP 429 with Retry-After."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        with self._cond:
            self._failures.setdefault(method, []).append(_Failure(error, status, retry_after, times))

    def fail_for(
        self,
        seconds: float,
        *,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int = 5,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        """An outage: for the next `seconds`, every call (or every call to `methods`, which may
        include "response_url") fails like `fail_next` describes, then Slack recovers by itself."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        with self._cond:
            self._outage = (time.monotonic() + seconds, methods, _Failure(error, status, retry_after, 0))

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str | None = None,
        email: str | None = None,
        deleted: bool = False,
        is_bot: bool = False,
        tz: str = "UTC",
    ) -> dict:
        user = load_fixture("user")
        real_name = real_name or name
        user.update(
            id=user_id,
            team_id=self.team_id,
            name=name,
            real_name=real_name,
            deleted=deleted,
            is_bot=is_bot,
            tz=tz,
        )
        if tz != "UTC":
            user.update(tz_label=tz, tz_offset=0)
        profile = user["profile"]
        profile.update(
            real_name=real_name,
            real_name_normalized=real_name,
            display_name=name,
            display_name_normalized=name,
            team=self.team_id,
        )
        if email:
            profile["email"] = email
        else:
            profile.pop("email", None)
        if is_bot:
            profile["bot_id"] = "B" + user_id[1:]
        with self._cond:
            self._users[user_id] = user
        return copy.deepcopy(user)

    def deactivate_user(self, user_id: str) -> None:
        with self._cond:
            self._users[user_id]["deleted"] = True

    def set_usergroup(self, handle: str, members: list[str], usergroup_id: str | None = None) -> dict:
        with self._cond:
            existing = next((g for g in self._usergroups.values() if g["handle"] == handle), None)
            if existing is not None and usergroup_id in (None, existing["id"]):
                group = existing
            else:
                group = load_fixture("usergroup")
                group.update(
                    id=usergroup_id or f"S{self._next_seq():08d}",
                    team_id=self.team_id,
                    handle=handle,
                    name=handle.replace("-", " ").title(),
                )
            group["users"] = list(members)
            group["user_count"] = len(members)
            self._usergroups[group["id"]] = group
            return copy.deepcopy(group)

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str,
        is_private: bool = False,
        is_archived: bool = False,
        is_member: bool = True,
    ) -> dict:
        channel = load_fixture("channel")
        channel.update(
            id=channel_id,
            name=name,
            name_normalized=name,
            is_private=is_private,
            is_group=is_private,
            is_archived=is_archived,
            is_member=is_member,
            context_team_id=self.team_id,
            shared_team_ids=[self.team_id],
        )
        with self._cond:
            self._channels[channel_id] = channel
        return copy.deepcopy(channel)

    def reset(self, users: bool = False) -> None:
        """Forget calls, messages, files, views and pending failures; with users=True also the
        directory (users, usergroups, channels)."""
        with self._cond:
            self._reset_state()
            if users:
                self._reset_directory()

    # -- internals -----------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self.calls.clear()
        self._messages: dict[tuple[str, str], dict] = {}
        self._ephemerals: list[dict] = []
        self._files: list[dict] = []
        self._uploads: dict[str, dict] = {}
        self._views: dict[str, dict] = {}
        self._home_views: dict[str, dict] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._outage: tuple[float, tuple[str, ...] | None, _Failure] | None = None
        self._response_urls: dict[str, dict] = {}
        self._triggers: dict[str, dict] = {}

    def _reset_directory(self) -> None:
        self._users = {}
        self._usergroups = {}
        self._channels = {}
        self.add_user(self.bot_user_id, name="iamwarden", real_name="iamwarden", is_bot=True)

    def _next_seq(self) -> int:
        with self._cond:
            self._seq += 1
            return self._seq

    def _next_ts(self) -> str:
        # Unique and increasing, in Slack's "seconds.micros" form.
        with self._cond:
            self._ts_seq += 1
            micros = 1_700_000_000_000_000 + self._ts_seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _serve(self, request: _Handler) -> None:
        split = urlsplit(request.path)
        parts = [p for p in split.path.split("/") if p]
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        key: str | None = None
        if len(parts) == 2 and parts[0] == "api":
            method = parts[1]
        elif len(parts) == 2 and parts[0] == "response_url":
            method, key = "response_url", parts[1]
        elif len(parts) == 2 and parts[0] == "upload":
            method, key = "upload", parts[1]
        else:
            self._write(request, 404, {"ok": False, "error": "not_found"})
            return

        if method == "upload":
            args: dict[str, Any] = {"file_id": key, "size": len(raw)}
            token = None
        else:
            args = _parse_args(split.query, raw, content_type)
            token = _token_of(request.headers.get("Authorization"), args)

        headers: dict[str, str] = {}
        status, body = 200, None
        with self._cond:
            failure = self._take_failure(method)
        if failure is not None:
            status, body = failure.status, {"ok": False, "error": failure.error}
            if failure.error == "ratelimited":
                headers["Retry-After"] = str(failure.retry_after)
        elif method not in NO_AUTH_METHODS and not token:
            body = {"ok": False, "error": "not_authed"}
        elif method not in NO_AUTH_METHODS and token != self.bot_token:
            body = {"ok": False, "error": "invalid_auth"}
        else:
            try:
                if method == "upload":
                    body = self._upload(key or "", raw)
                elif method == "response_url":
                    body = self._respond(key or "", args)
                else:
                    handler = getattr(self, "_api_" + method.replace(".", "_"), None)
                    body = handler(args) if handler else {"ok": False, "error": "unknown_method"}
            except SlackApiError as err:
                status, body = err.status, err.body()
            except Exception as err:  # a bug in the fake: answer like Slack's outage, keep the evidence
                traceback.print_exc()
                status, body = 500, {"ok": False, "error": "fatal_error", "detail": repr(err)}
        # Record before answering, so a client that returns can always find its call.
        call = SlackCall(method=method, args=args, token=token, status=status, response=body, key=key)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        if method == "upload" and status == 200:
            self._write_text(request, 200, f"OK - {len(raw)}")
        else:
            self._write(request, status, body, headers)

    def _take_failure(self, method: str) -> _Failure | None:
        if self._outage is not None:
            until, methods, failure = self._outage
            if time.monotonic() >= until:
                self._outage = None
            elif methods is None or method in methods:
                return failure
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return failure

    @staticmethod
    def _write(request: _Handler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _write_text(request: _Handler, status: int, text: str) -> None:
        data = text.encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/plain; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # -- channels and messages -----------------------------------------------------------------

    def _resolve_channel(self, channel: Any) -> str:
        """Channel ids as Slack accepts them: C/G/D ids, or a user id meaning the app's DM."""
        if not isinstance(channel, str) or not channel:
            raise SlackApiError("channel_not_found")
        if channel[0] in "CGD":
            return channel
        if channel[0] in "UW" and channel in self._users:
            return self._dm_id(channel)
        if channel.startswith("#"):
            for c in self._channels.values():
                if c["name"] == channel[1:]:
                    return c["id"]
        raise SlackApiError("channel_not_found")

    def _dm_id(self, user_id: str) -> str:
        return "D" + user_id[1:]

    def _message_body(self, args: dict, ts: str, channel: str) -> dict:
        message = load_fixture("message")
        message.update(
            user=self.bot_user_id, bot_id=self.bot_id, app_id=self.app_id, team=self.team_id, ts=ts
        )
        message["bot_profile"].update(id=self.bot_id, app_id=self.app_id, team_id=self.team_id)
        message["text"] = args.get("text") or ""
        message["blocks"] = copy.deepcopy(args.get("blocks") or [])
        if args.get("attachments"):
            message["attachments"] = copy.deepcopy(args["attachments"])
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        if args.get("metadata"):
            message["metadata"] = copy.deepcopy(args["metadata"])
        return message

    def _store_message(self, channel: str, message: dict) -> dict:
        stored = dict(message)
        stored["channel"] = channel
        stored.setdefault("thread_ts", None)
        self._messages[(channel, message["ts"])] = stored
        return stored

    def _api_auth_test(self, args: dict) -> dict:
        body = load_fixture("auth_test")
        body.update(team_id=self.team_id, user_id=self.bot_user_id, bot_id=self.bot_id)
        return body

    def _api_chat_postMessage(self, args: dict) -> dict:  # noqa: N802 - Slack's method name
        channel = self._resolve_channel(args.get("channel"))
        validate_message(args)
        ts = self._next_ts()
        message = self._message_body(args, ts, channel)
        with self._cond:
            if args.get("thread_ts"):
                parent = self._messages.get((channel, args["thread_ts"]))
                if parent is not None:
                    parent["reply_count"] = parent.get("reply_count", 0) + 1
            self._store_message(channel, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _api_chat_postEphemeral(self, args: dict) -> dict:  # noqa: N802
        channel = self._resolve_channel(args.get("channel"))
        user = args.get("user")
        if user not in self._users:
            raise SlackApiError("user_not_found")
        validate_message(args)
        ts = self._next_ts()
        with self._cond:
            self._ephemerals.append(
                {
                    "channel": channel,
                    "user": user,
                    "ts": ts,
                    "text": args.get("text") or "",
                    "blocks": copy.deepcopy(args.get("blocks") or []),
                    "thread_ts": args.get("thread_ts"),
                }
            )
        return {"ok": True, "message_ts": ts}

    def _api_chat_update(self, args: dict) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        ts = args.get("ts")
        validate_message(args, require_text=False)
        with self._cond:
            stored = self._messages.get((channel, ts))
            if stored is None:
                raise SlackApiError("message_not_found")
            if stored.get("user") != self.bot_user_id:
                raise SlackApiError("cant_update_message")
            if "text" in args:
                stored["text"] = args.get("text") or ""
            if "blocks" in args:
                stored["blocks"] = copy.deepcopy(args.get("blocks") or [])
            if "attachments" in args:
                stored["attachments"] = copy.deepcopy(args.get("attachments") or [])
            stored["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
            message = {k: v for k, v in stored.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": ts, "text": stored["text"], "message": message}

    def _api_chat_delete(self, args: dict) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        ts = args.get("ts")
        with self._cond:
            if self._messages.pop((channel, ts), None) is None:
                raise SlackApiError("message_not_found")
        return {"ok": True, "channel": channel, "ts": ts}

    def _api_reactions_add(self, args: dict) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        name = args.get("name")
        if not name:
            raise SlackApiError("invalid_name")
        with self._cond:
            stored = self._messages.get((channel, args.get("timestamp")))
            if stored is None:
                raise SlackApiError("message_not_found")
            reactions = stored.setdefault("reactions", [])
            for reaction in reactions:
                if reaction["name"] == name:
                    if self.bot_user_id in reaction["users"]:
                        raise SlackApiError("already_reacted")
                    reaction["users"].append(self.bot_user_id)
                    reaction["count"] += 1
                    break
            else:
                reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {"ok": True}

    def _respond(self, key: str, body: dict) -> dict:
        """A POST to a response_url: five uses in thirty minutes, like Slack."""
        with self._cond:
            entry = self._response_urls.setdefault(
                key, {"channel": None, "message_ts": None, "uses": 0, "issued": self.clock()}
            )
            entry["uses"] += 1
            expired = self.clock() - entry["issued"] > RESPONSE_URL_TTL_SECONDS
            if entry["uses"] > RESPONSE_URL_MAX_USES or expired:
                raise SlackApiError("expired_url", status=404)
            if body.get("delete_original"):
                if entry["channel"] and entry["message_ts"]:
                    self._messages.pop((entry["channel"], entry["message_ts"]), None)
                return {"ok": True}
            validate_message(body)
            channel, original_ts = entry["channel"], entry["message_ts"]
            if body.get("replace_original") and channel and original_ts:
                stored = self._messages.get((channel, original_ts))
                if stored is not None:
                    stored["text"] = body.get("text") or ""
                    stored["blocks"] = copy.deepcopy(body.get("blocks") or [])
                    stored["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
            elif body.get("response_type") == "in_channel" and channel:
                ts = self._next_ts()
                self._store_message(channel, self._message_body(body, ts, channel))
        return {"ok": True}

    # -- views ----------------------------------------------------------------------------------

    def _consume_trigger(self, args: dict) -> None:
        trigger_id = args.get("trigger_id") or args.get("interactivity_pointer")
        if not trigger_id:
            raise SlackApiError("invalid_arguments", ["[ERROR] missing required field: trigger_id"])
        entry = self._triggers.get(trigger_id)
        if entry is None:  # not handed out by our sender: accept, we cannot know its age
            return
        if entry["used"]:
            raise SlackApiError("exchanged_trigger_id")
        if self.trigger_ttl is not None and self.clock() - entry["issued"] > self.trigger_ttl:
            raise SlackApiError("expired_trigger_id")
        entry["used"] = True

    def _new_view(self, view: dict, *, previous: dict | None = None, user: str | None = None) -> dict:
        record = load_fixture("view")
        view_id = f"V{self._next_seq():08d}"
        record.update(copy.deepcopy(view))
        record.update(
            id=view_id,
            team_id=self.team_id,
            app_id=self.app_id,
            bot_id=self.bot_id,
            app_installed_team_id=self.team_id,
            hash=self._view_hash(),
            root_view_id=previous["root_view_id"] if previous else view_id,
            previous_view_id=previous["id"] if previous else None,
            state={"values": {}},
        )
        record.setdefault("private_metadata", "")
        record.setdefault("callback_id", "")
        record.setdefault("external_id", "")
        if view.get("type") == "home":
            for k in ("title", "submit", "close"):
                record.pop(k, None)
        if user:
            record["user"] = user
        return record

    def _view_hash(self) -> str:
        return f"{int(self.clock())}.{self._next_seq():08x}"

    def _api_views_open(self, args: dict) -> dict:
        view = args.get("view")
        validate_view(view)
        with self._cond:
            self._consume_trigger(args)
            record = self._new_view(view)
            self._views[record["id"]] = record
        return {"ok": True, "view": copy.deepcopy(record)}

    def _api_views_push(self, args: dict) -> dict:
        view = args.get("view")
        validate_view(view)
        with self._cond:
            self._consume_trigger(args)
            parent = next(reversed(self._views.values()), None) if self._views else None
            record = self._new_view(view, previous=parent)
            self._views[record["id"]] = record
        return {"ok": True, "view": copy.deepcopy(record)}

    def _api_views_update(self, args: dict) -> dict:
        view = args.get("view")
        validate_view(view)
        with self._cond:
            record = None
            if args.get("view_id"):
                record = self._views.get(args["view_id"])
            elif args.get("external_id"):
                record = next(
                    (v for v in self._views.values() if v.get("external_id") == args["external_id"]), None
                )
            else:
                raise SlackApiError("invalid_arguments", ["[ERROR] missing required field: view_id"])
            if record is None:
                raise SlackApiError("not_found")
            if args.get("hash") and args["hash"] != record["hash"]:
                raise SlackApiError("hash_conflict")
            record.update(copy.deepcopy(view))
            record["hash"] = self._view_hash()
        return {"ok": True, "view": copy.deepcopy(record)}

    def _api_views_publish(self, args: dict) -> dict:
        view = args.get("view")
        user_id = args.get("user_id")
        validate_view(view)
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiError("invalid_arguments", ["[ERROR] must be home [json-pointer:/view/type]"])
        with self._cond:
            if user_id not in self._users:
                raise SlackApiError("user_not_found")
            current = self._home_views.get(user_id)
            if current and args.get("hash") and args["hash"] != current["hash"]:
                raise SlackApiError("hash_conflict")
            record = self._new_view(view, user=user_id)
            if current:
                record["id"] = record["root_view_id"] = current["id"]
            self._home_views[user_id] = record
        return {"ok": True, "view": copy.deepcopy(record)}

    # -- users, usergroups, conversations -----------------------------------------------------

    def _api_users_info(self, args: dict) -> dict:
        with self._cond:
            user = self._users.get(args.get("user"))
            if user is None:
                raise SlackApiError("user_not_found")
            return {"ok": True, "user": copy.deepcopy(user)}

    def _api_users_list(self, args: dict) -> dict:
        limit = _int_arg(args.get("limit"), default=0)
        cursor = args.get("cursor") or ""
        with self._cond:
            users = list(self._users.values())
        start = 0
        if cursor:
            try:
                after = base64.b64decode(cursor.encode(), validate=True).decode().removeprefix("user:")
                start = next(i for i, u in enumerate(users) if u["id"] == after)
            except (ValueError, StopIteration):
                raise SlackApiError("invalid_cursor") from None
        # Slack pages at its own size when no limit is given (and caps it at 1000).
        page_size = min(limit, 1000) if limit > 0 else 1000
        page = users[start : start + page_size]
        rest = users[start + page_size :]
        next_cursor = base64.b64encode(f"user:{rest[0]['id']}".encode()).decode() if rest else ""
        return {
            "ok": True,
            "members": copy.deepcopy(page),
            "cache_ts": int(self.clock()),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _api_users_lookupByEmail(self, args: dict) -> dict:  # noqa: N802
        email = (args.get("email") or "").lower()
        with self._cond:
            for user in self._users.values():
                if email and (user["profile"].get("email") or "").lower() == email:
                    return {"ok": True, "user": copy.deepcopy(user)}
        raise SlackApiError("users_not_found")

    def _api_usergroups_list(self, args: dict) -> dict:
        include_users = _bool_arg(args.get("include_users"))
        groups = []
        with self._cond:
            for group in self._usergroups.values():
                item = copy.deepcopy(group)
                if not include_users:
                    item.pop("users", None)
                groups.append(item)
        return {"ok": True, "usergroups": groups}

    def _api_usergroups_users_list(self, args: dict) -> dict:
        with self._cond:
            group = self._usergroups.get(args.get("usergroup"))
            if group is None:
                raise SlackApiError("no_such_subteam")
            return {"ok": True, "users": list(group["users"])}

    def _api_conversations_open(self, args: dict) -> dict:
        users = args.get("users")
        if isinstance(users, str):
            users = [u for u in users.split(",") if u]
        if not users and args.get("channel"):
            return {"ok": True, "channel": {"id": args["channel"]}}
        if not users:
            raise SlackApiError("users_list_not_supplied")
        with self._cond:
            for user in users:
                if user not in self._users:
                    raise SlackApiError("user_not_found")
        if len(users) == 1:
            dm = self._im(users[0])
            channel = dm if _bool_arg(args.get("return_im")) else {"id": dm["id"]}
            return {"ok": True, "no_op": True, "already_open": True, "channel": channel}
        mpim_id = "G" + "".join(u[1:4] for u in sorted(users))
        return {"ok": True, "channel": {"id": mpim_id}}

    def _im(self, user_id: str) -> dict:
        im = load_fixture("im_channel")
        im.update(id=self._dm_id(user_id), user=user_id, context_team_id=self.team_id)
        return im

    def _api_conversations_info(self, args: dict) -> dict:
        channel_id = self._resolve_channel(args.get("channel"))
        with self._cond:
            if channel_id in self._channels:
                return {"ok": True, "channel": copy.deepcopy(self._channels[channel_id])}
            if channel_id.startswith("D"):
                for user_id in self._users:
                    if self._dm_id(user_id) == channel_id:
                        return {"ok": True, "channel": self._im(user_id)}
        channel = load_fixture("channel")
        name = channel_id.lower()
        channel.update(
            id=channel_id,
            name=name,
            name_normalized=name,
            is_private=channel_id.startswith("G"),
            is_group=channel_id.startswith("G"),
            context_team_id=self.team_id,
            shared_team_ids=[self.team_id],
        )
        return {"ok": True, "channel": channel}

    # -- files ----------------------------------------------------------------------------------

    def _api_files_getUploadURLExternal(self, args: dict) -> dict:  # noqa: N802
        filename = args.get("filename")
        length = _int_arg(args.get("length"), default=-1)
        if not filename or length < 0:
            raise SlackApiError("invalid_arguments")
        file_id = f"F{self._next_seq():08d}"
        with self._cond:
            self._uploads[file_id] = {
                "filename": filename,
                "length": length,
                "content": None,
                "alt_txt": args.get("alt_txt"),
                "snippet_type": args.get("snippet_type"),
            }
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, raw: bytes) -> dict:
        with self._cond:
            pending = self._uploads.get(file_id)
            if pending is None:
                raise SlackApiError("file_not_found", status=404)
            pending["content"] = raw
        return {"ok": True}

    def _api_files_completeUploadExternal(self, args: dict) -> dict:  # noqa: N802
        items = args.get("files")
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                raise SlackApiError("invalid_arguments") from None
        if not isinstance(items, list) or not items:
            raise SlackApiError("invalid_arguments")
        channels: list[str] = []
        if args.get("channel_id"):
            channels.append(self._resolve_channel(args["channel_id"]))
        elif args.get("channels"):
            raw_channels = args["channels"]
            if isinstance(raw_channels, str):
                raw_channels = raw_channels.split(",")
            channels.extend(self._resolve_channel(c) for c in raw_channels if c)
        completed = []
        with self._cond:
            for item in items:
                pending = self._uploads.get(item.get("id")) if isinstance(item, dict) else None
                if pending is None or pending["content"] is None:
                    raise SlackApiError("file_not_found")
                if len(pending["content"]) != pending["length"]:
                    raise SlackApiError("file_upload_size_mismatch")
            for item in items:
                pending = self._uploads.pop(item["id"])
                title = item.get("title") or pending["filename"]
                body = load_fixture("file")
                now = int(self.clock())
                body.update(
                    id=item["id"],
                    created=now,
                    timestamp=now,
                    name=pending["filename"],
                    title=title,
                    user=self.bot_user_id,
                    user_team=self.team_id,
                    size=len(pending["content"]),
                    channels=[c for c in channels if c[0] == "C"],
                    groups=[c for c in channels if c[0] == "G"],
                    ims=[c for c in channels if c[0] == "D"],
                )
                for key in ("url_private", "url_private_download", "permalink"):
                    body[key] = (
                        body[key]
                        .replace("T0DEMO", self.team_id)
                        .replace("F0S43PZDF", item["id"])
                        .replace("report.csv", pending["filename"])
                    )
                self._files.append(
                    {
                        "file_id": item["id"],
                        "filename": pending["filename"],
                        "title": title,
                        "channel": channels[0] if channels else None,
                        "channels": channels,
                        "content": pending["content"],
                        "initial_comment": args.get("initial_comment"),
                        "thread_ts": args.get("thread_ts"),
                    }
                )
                completed.append(body)
        return {"ok": True, "files": completed}


# --------------------------------------------------------------------------------------------
# Request parsing.

_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


def _parse_args(query: str, raw: bytes, content_type: str) -> dict:
    args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if not raw:
        return args
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if isinstance(body, dict):
            args.update(body)
        return args
    form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    args.update({k: v[-1] for k, v in form.items()})
    for name in _JSON_FIELDS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                pass  # leave it as sent: validation reports it the way Slack would
    return args


def _token_of(authorization: str | None, args: dict) -> str | None:
    token = args.pop("token", None)
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return token


def _int_arg(value: Any, *, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _bool_arg(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
