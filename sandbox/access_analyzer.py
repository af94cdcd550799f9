"""A local IAM Access Analyzer endpoint (moto has no Access Analyzer), for tests and the demo.

A real HTTP server on loopback speaking the service's REST-JSON protocol for the two operations
the scan uses, ``ListAnalyzers`` (``GET /analyzer``) and ``ListFindingsV2`` (``POST /findingv2``),
with paging through ``nextToken``. Point boto3 at it with ``AWS_ENDPOINT_URL_ACCESSANALYZER``.
``deny()`` makes every request answer ``AccessDeniedException`` (the bot's role lacks the
permission), the case the scan must report as "could not evaluate", never as a pass.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC).isoformat()


class AccessAnalyzerStub:
    """ListAnalyzers + ListFindingsV2 over HTTP on 127.0.0.1 (port 0)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, page_size: int = 2):
        self.page_size = page_size
        self.analyzers: list[dict[str, Any]] = []
        self.findings: dict[str, list[dict[str, Any]]] = {}  # analyzer arn -> findings
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, params/body)
        self.denied: str | None = None
        self.throttled: int | None = 0  # requests still to throttle; None throttles every one
        self._lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                self._reply(*stub._answer("GET", url.path, params))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                self._reply(*stub._answer("POST", urllib.parse.urlsplit(self.path).path, body))

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AccessAnalyzerStub:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for key, value in self._saved_env.items():  # undo apply_env
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_ACCESSANALYZER": self.url}

    def apply_env(self) -> None:
        """Point this process's boto3 at the stub until ``stop()`` (the demo; tests use monkeypatch)."""
        for key, value in self.env().items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    # -- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.analyzers.clear()
            self.findings.clear()
            self.requests.clear()
            self.denied = None
            self.throttled = 0

    def deny(self, message: str = "User is not authorized to perform: access-analyzer:ListAnalyzers") -> None:
        self.denied = message

    def throttle(self, times: int | None = None) -> None:
        """Answer the next ``times`` requests (every request when None) with 429 ThrottlingException."""
        with self._lock:
            self.throttled = times

    def add_analyzer(
        self,
        name: str = "account-analyzer",
        *,
        account_id: str = "123456789012",
        type: str = "ACCOUNT",  # noqa: A002 - the API's field name
        status: str = "ACTIVE",
        region: str = "us-east-1",
    ) -> str:
        arn = f"arn:aws:access-analyzer:{region}:{account_id}:analyzer/{name}"
        with self._lock:
            self.analyzers.append(
                {"arn": arn, "name": name, "type": type, "createdAt": _EPOCH, "status": status, "tags": {}}
            )
            self.findings.setdefault(arn, [])
        return arn

    def add_finding(
        self,
        analyzer_arn: str,
        resource: str,
        *,
        resource_type: str = "AWS::IAM::Role",
        status: str = "ACTIVE",
        finding_type: str = "ExternalAccess",
        finding_id: str | None = None,
        owner_account: str = "123456789012",
    ) -> str:
        with self._lock:
            findings = self.findings.setdefault(analyzer_arn, [])
            fid = finding_id or f"finding-{len(findings) + 1:04d}"
            findings.append(
                {
                    "id": fid,
                    "resource": resource,
                    "resourceType": resource_type,
                    "resourceOwnerAccount": owner_account,
                    "status": status,
                    "findingType": finding_type,
                    "analyzedAt": _EPOCH,
                    "createdAt": _EPOCH,
                    "updatedAt": _EPOCH,
                }
            )
        return fid

    # -- the API ------------------------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], token: str | None, key: str) -> dict[str, Any]:
        start = int(token or 0)
        out: dict[str, Any] = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            out["nextToken"] = str(start + self.page_size)
        return out

    def _answer(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], str | None]:
        with self._lock:
            self.requests.append((method, path, params))
            if self.throttled is None or self.throttled > 0:
                if self.throttled is not None:
                    self.throttled -= 1
                return 429, {"message": "Rate exceeded"}, "ThrottlingException"
            if self.denied is not None:
                return 403, {"message": self.denied}, "AccessDeniedException"
            if method == "GET" and path == "/analyzer":
                items = [a for a in self.analyzers if not params.get("type") or a["type"] == params["type"]]
                return 200, self._page(items, params.get("nextToken"), "analyzers"), None
            if method == "POST" and path == "/findingv2":
                arn = params.get("analyzerArn")
                if arn not in self.findings:
                    return 404, {"message": f"Analyzer {arn} not found"}, "ResourceNotFoundException"
                items = list(self.findings[arn])
                wanted = ((params.get("filter") or {}).get("status") or {}).get("eq")
                if wanted:
                    items = [f for f in items if f["status"] in wanted]
                return 200, self._page(items, params.get("nextToken"), "findings"), None
        return (
            404,
            {"message": f"{method} {path} is not implemented by the stub"},
            "UnknownOperationException",
        )


def start_demo_access_analyzer(account_id: str = "123456789012") -> AccessAnalyzerStub:
    """The demo company's analyzer: one active finding, the vendor role another account can assume."""
    stub = AccessAnalyzerStub().start()
    stub.apply_env()
    arn = stub.add_analyzer("demo-company", account_id=account_id)
    stub.add_finding(arn, f"arn:aws:iam::{account_id}:role/vendor-audit", owner_account=account_id)
    return stub
