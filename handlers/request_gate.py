"""The WSGI gate in front of Bolt: nothing unauthenticated is parsed, nothing replayed runs twice.

Order, for ``POST /slack/events``:
1. the signature headers are checked (present, a numeric timestamp inside Slack's 5-minute window)
   and the HMAC verified with slack_sdk's ``SignatureVerifier`` over the raw bytes: anything else is
   401 without the body being decoded or parsed (waitress has already refused bodies over 1 MB);
2. a signature seen before within the window is acknowledged (200, empty) and ignored;
3. only now is the body parsed (UTF-8, form, ``payload=`` JSON, nesting depth): malformed signed
   input is 400, never a 500 or a traceback;
4. an Events API event whose ``event_id`` was already processed (Slack's retries) is acknowledged
   and ignored;
5. Bolt gets the request (and verifies the signature again, harmlessly).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from bot.replay import SeenRequests

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# Slack's payloads nest a dozen levels at most; a body deeper than this is not from Slack.
MAX_JSON_DEPTH = 64


class Rejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}


def _answer(start_response: Callable, status: int, text: str = "") -> list[bytes]:
    payload = text.encode()
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a deep document must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _load_json(text: str, what: str) -> Any:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected(400, f"{what} is not valid JSON") from None
    if _depth(parsed) > MAX_JSON_DEPTH:
        raise Rejected(400, f"{what} is nested too deeply")
    return parsed


def parse_signed_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The body of a signed request as Bolt will see it, or Rejected(400) with the reason."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    if content_type.startswith("application/json"):
        parsed = _load_json(text, "body")
        if not isinstance(parsed, dict):
            raise Rejected(400, "body is not a JSON object")
        return parsed
    try:
        form = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except ValueError:
        raise Rejected(400, "body is not a form") from None
    if "payload" in form:
        parsed = _load_json(form["payload"][0], "payload")
        if not isinstance(parsed, dict):
            raise Rejected(400, "payload is not a JSON object")
        return parsed
    return {key: values[0] for key, values in form.items()}


class RequestGate:
    """WSGI middleware for ``POST /slack/events``; ``bolt`` is the WSGI app behind it."""

    def __init__(self, bolt: Callable, signing_secret: str, seen: SeenRequests):
        self.bolt = bolt
        self.verifier = SignatureVerifier(signing_secret)
        self.seen = seen

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != EVENTS_PATH:
            return _answer(start_response, 404, "Not Found")
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, "POST only")
        try:
            body = self._read_body(environ)
            timestamp = self._verify(environ, body)
            if not self.seen.signature(environ["HTTP_X_SLACK_SIGNATURE"], timestamp):
                log.info("ignored a replayed signed request (signature already seen in the window)")
                return _answer(start_response, 200)
            content_type = (environ.get("CONTENT_TYPE") or "").lower()
            parsed = parse_signed_body(body, content_type)
            event_id = parsed.get("event_id") if parsed.get("type") == "event_callback" else None
            if isinstance(event_id, str) and event_id and not self.seen.event(event_id):
                log.info(
                    "ignored event %s: already processed (Slack retry %s)",
                    event_id,
                    environ.get("HTTP_X_SLACK_RETRY_NUM", "?"),
                )
                return _answer(start_response, 200)
        except Rejected as rejected:
            log.info("refused a request to %s: %s %s", EVENTS_PATH, rejected.status, rejected.reason)
            return _answer(start_response, rejected.status, rejected.reason)
        environ = dict(environ, **{"wsgi.input": BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        return self.bolt(environ, start_response)

    @staticmethod
    def _read_body(environ: dict) -> bytes:
        # waitress has already buffered the whole body and refused anything over the size limit.
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Rejected(400, "bad Content-Length") from None
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _verify(self, environ: dict, body: bytes) -> int:
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or ""
        signature = environ.get("HTTP_X_SLACK_SIGNATURE") or ""
        if not timestamp or not signature:
            raise Rejected(401, "unsigned request")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise Rejected(401, "bad X-Slack-Request-Timestamp")
        # The library computes the HMAC over a str; Slack's bodies are UTF-8, so a body that is
        # not cannot carry a valid signature (decoded here only to compare, never parsed).
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(401, "bad signature") from None
        if not self.verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            raise Rejected(401, "bad signature or timestamp outside the 5-minute window")
        return int(timestamp)
