"""A loopback stand-in for AWS's federation endpoint (``getSigninToken`` and ``login``), for the
demo and the tests: console sign-in links without the network."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


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
