"""Console sign-in links through the AWS federation endpoint, and a local stand-in for it.

``signin_url`` exchanges session credentials for a sign-in token (``Action=getSigninToken``) and
builds the ``Action=login`` URL. The token is as good as the credentials: it is returned to the
caller for the requester's eyes only and never logged. The endpoint is configurable
(``[access] federation_url``) so tests and the demo use ``FederationStandIn`` on loopback.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.access import SCRUBBER, IssuedCredentials

log = logging.getLogger(__name__)

CONSOLE_URL = "https://console.aws.amazon.com/"
ISSUER = "iamwarden"


class FederationError(Exception):
    """The sign-in link could not be made; the message never contains credentials."""


def signin_url(federation_url: str, creds: IssuedCredentials, *, timeout: float = 10.0) -> str:
    """A console sign-in URL for ``creds`` (valid about 15 minutes, as AWS issues them)."""
    session = json.dumps(
        {
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key.get_secret_value(),
            "sessionToken": creds.session_token.get_secret_value(),
        }
    )
    query = urlencode({"Action": "getSigninToken", "Session": session})
    try:
        with urllib.request.urlopen(f"{federation_url}?{query}", timeout=timeout) as reply:  # noqa: S310 - configured https endpoint
            token = json.loads(reply.read())["SigninToken"]
    except urllib.error.HTTPError as exc:
        raise FederationError(f"the federation endpoint answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FederationError(f"could not reach the federation endpoint ({type(exc).__name__})") from None
    except (ValueError, KeyError, TypeError):
        raise FederationError("the federation endpoint's answer had no sign-in token") from None
    SCRUBBER.add(token, creds.expiration)
    return f"{federation_url}?" + urlencode(
        {"Action": "login", "Issuer": ISSUER, "Destination": CONSOLE_URL, "SigninToken": token}
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        query = parse_qs(urlsplit(self.path).query)
        action = (query.get("Action") or [""])[0]
        if action == "getSigninToken":
            try:
                session = json.loads((query.get("Session") or [""])[0])
                ok = all(session.get(k) for k in ("sessionId", "sessionKey", "sessionToken"))
            except ValueError:
                ok = False
            if not ok:
                self._reply(400, {"error": "bad session"})
                return
            token = "SigninToken-" + secrets.token_urlsafe(24)
            with self.server.lock:
                self.server.tokens[token] = session["sessionId"]
            self._reply(200, {"SigninToken": token})
        elif action == "login":
            self._reply(200, {"login": "ok"})
        else:
            self._reply(400, {"error": "unknown action"})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: URLs carry secrets
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tokens: dict[str, str]
    lock: threading.Lock


class FederationStandIn:
    """A loopback stand-in for ``signin.aws.amazon.com/federation`` (tests and the demo)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FederationStandIn:
        server = _Server((self.host, self.port), _Handler)
        server.tokens, server.lock = {}, threading.Lock()
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="federation", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/federation"

    def issued_for(self) -> list[str]:
        """Access key ids a sign-in token was issued for."""
        assert self._server is not None
        with self._server.lock:
            return list(self._server.tokens.values())

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
