"""Local stand-ins for AWS services moto does not implement, as pytest fixtures.

``access_analyzer``: a started ``AccessAnalyzerStub`` (ListAnalyzers, ListFindingsV2, AccessDenied on
demand) with ``AWS_ENDPOINT_URL_ACCESSANALYZER`` pointing boto3 at it; reset for every test.
``stalling_proxy``: a ``StallingProxy`` in front of moto that holds one account's IAM calls, or its
AssumeRole, as a slow AWS endpoint would (``AWS_ENDPOINT_URL`` points at it).
Import the fixtures into a test module with ``from tests.aws_stubs import access_analyzer, analyzer_server``.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.access_analyzer import AccessAnalyzerStub

__all__ = ["AccessAnalyzerStub", "StallingProxy", "access_analyzer", "analyzer_server", "stalling_proxy"]


@pytest.fixture(scope="session")
def analyzer_server() -> Iterator[AccessAnalyzerStub]:
    stub = AccessAnalyzerStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def access_analyzer(
    analyzer_server: AccessAnalyzerStub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AccessAnalyzerStub]:
    analyzer_server.reset()
    for key, value in analyzer_server.env().items():
        monkeypatch.setenv(key, value)
    yield analyzer_server


class StallingProxy:
    """An HTTP proxy in front of moto that holds one account's requests until released (or 120 s).

    ``hold="iam"``: IAM requests signed with the credentials AssumeRole handed out for
    ``account_id`` (learnt from the AssumeRole answers passing through: every account's assumed
    credentials differ). ``hold="assume"``: AssumeRole of a role in ``account_id``. Everything else
    is forwarded at once. ``held`` is set when the first request is held."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.account_id: str | None = None
        self.hold: str | None = None
        self.keys: set[str] = set()
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = re.search(
                    r"Credential=([A-Z0-9]+)/[^/]+/[^/]+/(\w+)/", self.headers.get("Authorization", "")
                )
                role = urllib.parse.parse_qs(body.decode("latin-1")).get("RoleArn", [""])[0]
                assume = b"Action=AssumeRole&" in body or body.startswith(b"Action=AssumeRole")
                mine = bool(proxy.account_id) and f":{proxy.account_id}:" in role
                if (proxy.hold == "assume" and assume and mine) or (
                    proxy.hold == "iam" and key and key.group(1) in proxy.keys and key.group(2) == "iam"
                ):
                    proxy.held.set()
                    proxy.release.wait(120)
                status, headers, answer = proxy.forward(self.command, self.path, dict(self.headers), body)
                if assume and mine:
                    proxy.keys.update(re.findall(r"<AccessKeyId>(\w+)</AccessKeyId>", answer.decode()))
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up on this request (its read timeout)

            do_GET = do_POST  # noqa: N815
            do_PUT = do_POST  # noqa: N815
            do_DELETE = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        target = urllib.parse.urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def stall(self, account_id: str, hold: str) -> None:
        self.account_id, self.hold = account_id, hold

    def start(self) -> StallingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stalling_proxy(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[StallingProxy]:
    """boto3 pointed at a ``StallingProxy`` in front of the test's moto server (nothing held yet)."""
    proxy = StallingProxy(aws.endpoint_url).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield proxy
    proxy.stop()
