"""Signed inbound requests, shaped and signed the way Slack sends them to an app in HTTP mode.

Payloads start from real-looking JSON fixtures in `slack_fixtures/` and are varied per call
(user, channel, unique trigger_id, a response_url on the `FakeSlack` server when one is given).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sandbox.slack_api import load_fixture

if TYPE_CHECKING:
    from sandbox.slack_api import FakeSlack

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass
class SlackResponse:
    """What the app answered: status, raw body and headers."""

    status: int
    body: str
    headers: dict

    def json(self) -> dict | None:
        """The body parsed as JSON, or None when it is empty or not JSON (e.g. a bare 200 ack)."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None


class SlackSender:
    """Posts signed slash commands, interactions and events to an app's request URL."""

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        *,
        fake_slack: FakeSlack | None = None,
        team_id: str = "T0DEMO",
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ):
        self.app_url = app_url
        self.signing_secret = signing_secret
        self.fake_slack = fake_slack
        self.team_id = team_id
        self.clock = clock
        self.timeout = timeout
        self._counter = itertools.count(1)

    # -- payloads -------------------------------------------------------------------------------

    def command(
        self,
        user_id: str,
        text: str = "",
        *,
        command: str = "/iam",
        channel_id: str = "C0DEMO",
        user_name: str | None = None,
    ) -> SlackResponse:
        """A slash command, form-encoded like Slack's."""
        payload = load_fixture("slash_command")
        payload.update(
            team_id=self.team_id,
            channel_id=channel_id,
            channel_name=self._channel_name(channel_id),
            user_id=user_id,
            user_name=user_name or self._user_name(user_id),
            command=command,
            text=text,
            trigger_id=self._trigger_id(),
            response_url=self._response_url("commands", channel=channel_id),
        )
        return self.send_raw(urlencode(payload).encode(), content_type=FORM)

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str = "",
        *,
        block_id: str = "b",
        channel_id: str | None = None,
        message: dict | None = None,
        view: dict | None = None,
        action_type: str = "button",
        selected_option: dict | None = None,
    ) -> SlackResponse:
        """A `block_actions` interaction from a message (default) or from a view (`view=`).

        `channel_id` defaults to the stored message's channel (from `FakeSlack.messages()`), else C0DEMO.
        """
        channel_id = channel_id or (message or {}).get("channel") or "C0DEMO"
        payload = load_fixture("block_actions")
        payload["team"]["id"] = self.team_id
        payload["user"] = self._user(user_id)
        payload["trigger_id"] = self._trigger_id()
        action = payload["actions"][0]
        action.update(action_id=action_id, block_id=block_id, type=action_type, action_ts=self._ts())
        element = _find_element(message or view or {}, block_id, action_id)
        if action_type == "button":
            action["value"] = value
            label = (element or {}).get("text") or {"type": "plain_text", "text": value or action_id}
            action["text"] = copy.deepcopy(label)
            if element and element.get("style"):
                action["style"] = element["style"]
        else:
            action.pop("text", None)
            action.pop("value", None)
            if selected_option is None and value:
                selected_option = _option_with_value(element, value) or {
                    "text": {"type": "plain_text", "text": value},
                    "value": value,
                }
            if selected_option is not None:
                action["selected_option"] = selected_option
            if element and element.get("placeholder"):
                action["placeholder"] = element["placeholder"]
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view.get("id", "V0001")}
            payload["view"] = copy.deepcopy(view)
            payload["view"].setdefault("state", {"values": {}})
            # Interactions in a modal or App Home carry no channel, message or response_url.
            for key in ("channel", "response_url", "message"):
                payload.pop(key, None)
        else:
            ts = (message or {}).get("ts") or self._ts()
            payload["container"] = {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel_id, "name": self._channel_name(channel_id)}
            if message is not None:
                payload["message"] = {k: v for k, v in copy.deepcopy(message).items() if k != "channel"}
                payload["message"].setdefault("type", "message")
            payload["response_url"] = self._response_url(
                "actions", channel=channel_id, message_ts=ts if message is not None else None
            )
        return self._send_payload(payload)

    def view_submission(
        self,
        user_id: str,
        callback_id: str,
        values: dict,
        *,
        private_metadata: str = "",
        view_id: str = "V0001",
    ) -> SlackResponse:
        """A modal's `view_submission`; `values` is `{block_id: {action_id: {"type", "value"…}}}`."""
        payload = load_fixture("view_submission")
        payload["team"]["id"] = self.team_id
        payload["user"] = self._user(user_id)
        payload["trigger_id"] = self._trigger_id()
        view = payload["view"]
        # When the modal was opened on our FakeSlack, submit what Slack actually showed.
        opened = self.fake_slack.view(view_id) if self.fake_slack else None
        if opened:
            view.update({k: v for k, v in opened.items() if k in view or k == "blocks"})
        view.update(
            id=view_id,
            team_id=self.team_id,
            callback_id=callback_id,
            private_metadata=private_metadata,
            state={"values": copy.deepcopy(values)},
        )
        if not opened:
            view["root_view_id"] = view_id
        return self._send_payload(payload)

    def view_closed(self, user_id: str, callback_id: str, *, view_id: str = "V0001") -> SlackResponse:
        """A `view_closed` interaction (sent only for modals opened with notify_on_close)."""
        payload = load_fixture("view_submission")
        payload["type"] = "view_closed"
        payload["team"]["id"] = self.team_id
        payload["user"] = self._user(user_id)
        payload["view"].update(id=view_id, callback_id=callback_id, notify_on_close=True)
        payload["is_cleared"] = False
        for key in ("trigger_id", "response_urls"):
            payload.pop(key, None)
        return self._send_payload(payload)

    def event(self, event: dict, *, event_id: str | None = None) -> SlackResponse:
        """An Events API `event_callback` envelope around `event`, as JSON."""
        envelope = load_fixture("app_home_opened")
        now = self.clock()
        envelope.update(
            team_id=self.team_id,
            event=copy.deepcopy(event),
            event_id=event_id or f"Ev{next(self._counter):08d}DEMO",
            event_time=int(now),
        )
        envelope["event"].setdefault("event_ts", f"{now:.6f}")
        envelope["authorizations"][0]["team_id"] = self.team_id
        if self.fake_slack is not None:
            envelope["authorizations"][0]["user_id"] = self.fake_slack.bot_user_id
        return self.send_raw(json.dumps(envelope).encode(), content_type=JSON)

    def app_home_opened(self, user_id: str, *, tab: str = "home") -> SlackResponse:
        """The `app_home_opened` event Slack sends when `user_id` opens the app's Home tab."""
        event = load_fixture("app_home_opened")["event"]
        event.update(user=user_id, channel="D" + user_id[1:], tab=tab, event_ts=self._ts())
        if self.fake_slack is not None:
            home = self.fake_slack.home_view(user_id)
            if home is not None:
                event["view"] = home
        return self.event(event)

    # -- transport ------------------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: str) -> str:
        """Slack's v0 signature: HMAC-SHA256 over `v0:{timestamp}:{body}`."""
        base = b"v0:" + timestamp.encode() + b":" + body
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()

    def send_raw(
        self,
        body: bytes,
        *,
        content_type: str = FORM,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> SlackResponse:
        """POST `body` with Slack's headers; signs it correctly unless `signature` is given."""
        timestamp = timestamp if timestamp is not None else str(int(self.clock()))
        signature = signature if signature is not None else self.sign(body, timestamp)
        request = urllib.request.Request(  # noqa: S310 - app_url is the local app under test
            self.app_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": signature,
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
                return SlackResponse(reply.status, reply.read().decode(), dict(reply.headers))
        except urllib.error.HTTPError as err:
            return SlackResponse(err.code, err.read().decode(), dict(err.headers or {}))

    # -- helpers ----------------------------------------------------------------------------------

    def _send_payload(self, payload: dict) -> SlackResponse:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.send_raw(body, content_type=FORM)

    def _trigger_id(self) -> str:
        n = next(self._counter)
        digest = hashlib.sha256(f"{self.team_id}:{n}:{self.clock()}".encode()).hexdigest()[:32]
        trigger_id = f"{int(self.clock())}.{n:09d}.{digest}"
        if self.fake_slack is not None:
            self.fake_slack.issue_trigger(trigger_id)
        return trigger_id

    def _ts(self) -> str:
        return f"{self.clock():.6f}"

    def _response_url(self, kind: str, *, channel: str, message_ts: str | None = None) -> str:
        n = next(self._counter)
        if self.fake_slack is not None:
            return self.fake_slack.response_url(f"{kind}-{n}", channel=channel, message_ts=message_ts)
        return f"https://hooks.slack.com/{kind}/{self.team_id}/{n}/fakeResponseUrlToken{n:04d}"

    def _user_name(self, user_id: str) -> str:
        if self.fake_slack is not None:
            user = self.fake_slack.user(user_id)
            if user is not None:
                return user["name"]
        return user_id.lower()

    def _user(self, user_id: str) -> dict:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _channel_name(self, channel_id: str) -> str:
        if channel_id.startswith("D"):
            return "directmessage"
        if self.fake_slack is not None:
            channel = self.fake_slack.channel(channel_id)
            if channel is not None:
                return channel["name"]
        return channel_id.lower()


def _find_element(container: dict, block_id: str, action_id: str) -> dict | None:
    """The interactive element a user clicked, looked up in the message or view they saw."""
    blocks = list(container.get("blocks") or [])
    for attachment in container.get("attachments") or []:
        blocks.extend(attachment.get("blocks") or [])
    candidates: list[Any] = []
    for block in blocks:
        elements = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                if block.get("block_id") == block_id:
                    return element
                candidates.append(element)
    return candidates[0] if candidates else None


def _option_with_value(element: dict | None, value: str) -> dict | None:
    if not element:
        return None
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return next((copy.deepcopy(o) for o in options if o.get("value") == value), None)
