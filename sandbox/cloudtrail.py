"""A local CloudTrail ``LookupEvents`` endpoint (moto does not implement it), for tests and the demo.

A real HTTP server on loopback speaking CloudTrail's JSON 1.1 protocol; point boto3 at it with
``AWS_ENDPOINT_URL_CLOUDTRAIL``. It holds CloudTrail records, filters them the way the API does
(time range, one lookup attribute), pages with ``NextToken``, returns newest first, records every
request (with its arrival time) and can answer errors such as ``ThrottlingException``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."


@dataclass
class LookupRequest:
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


def _username(record: dict[str, Any]) -> str:
    ident = record.get("userIdentity") or {}
    if ident.get("type") == "Root":
        return "root"
    if ident.get("userName"):
        return ident["userName"]
    arn = ident.get("arn") or ""
    return arn.rsplit("/", 1)[-1] if "/" in arn else ""


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


class CloudTrailStub:
    """LookupEvents over HTTP on 127.0.0.1 (port 0)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._records: list[dict[str, Any]] = []
        self.requests: list[LookupRequest] = []
        self._failures: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                status, payload = stub._answer(target.removeprefix(TARGET_PREFIX), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CloudTrailStub:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cloudtrail-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, *records: dict[str, Any]) -> None:
        """Make CloudTrail records visible in the event history."""
        with self._lock:
            self._records.extend(records)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self.requests.clear()
            self._failures.clear()

    def fail_next(self, code: str = "ThrottlingException", status: int = 400, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([(code, status)] * times)

    def _answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(LookupRequest(params=body))
            if self._failures:
                code, status = self._failures.pop(0)
                return status, {"__type": code, "message": f"stubbed {code}"}
            records = list(self._records)
        if operation != "LookupEvents":
            return 400, {"__type": "UnknownOperationException", "message": operation}
        start = float(body.get("StartTime", 0))
        end = float(body.get("EndTime", time.time() + 10**9))
        attrs = body.get("LookupAttributes") or []
        if len(attrs) > 1:
            return 400, {"__type": "InvalidLookupAttributesException", "message": "one attribute only"}

        def keep(rec: dict[str, Any]) -> bool:
            if not start <= _epoch(rec["eventTime"]) <= end:
                return False
            if not attrs:
                return True
            key, value = attrs[0]["AttributeKey"], attrs[0]["AttributeValue"]
            if key == "ReadOnly":
                return str(bool(rec.get("readOnly", False))).lower() == value
            if key == "Username":
                return _username(rec) == value
            if key == "EventName":
                return rec.get("eventName") == value
            if key == "EventSource":
                return rec.get("eventSource") == value
            return False

        matched = sorted((r for r in records if keep(r)), key=lambda r: _epoch(r["eventTime"]), reverse=True)
        offset = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or 50), 50)
        page = matched[offset : offset + size]
        result: dict[str, Any] = {
            "Events": [
                {
                    "EventId": r["eventID"],
                    "EventName": r["eventName"],
                    "ReadOnly": str(bool(r.get("readOnly", False))).lower(),
                    "AccessKeyId": (r.get("userIdentity") or {}).get("accessKeyId", ""),
                    "EventTime": _epoch(r["eventTime"]),
                    "EventSource": r.get("eventSource", ""),
                    "Username": _username(r),
                    "Resources": [],
                    "CloudTrailEvent": json.dumps(r),
                }
                for r in page
            ]
        }
        if offset + size < len(matched):
            result["NextToken"] = str(offset + size)
        return 200, result
