"""An HTTP proxy that records AWS answers, then replays them without the server behind it.

moto is a faithful AWS, but a costly one: serving one 100-account scan takes it ~21 s of CPU in a
single process (its GIL), more than the scanner's own work, so on a 2-core machine moto's CPU,
not the bot's, sets the wall time. ``bench.scan --org N --replay`` records every answer of a scan
against moto, then scans again against the recording: the second run shows what the scanner
costs when AWS answers at the speed of a lookup (plus ``latency`` seconds a request, to stand in
for the network round trip to a real endpoint).

Requests are matched by (path, body, the access key id that signed them): the body of an IAM or
STS Query request is deterministic, and AssumeRole's recorded answer hands the replayed scan the
same access key ids, so each account's requests match its own recording. The n-th identical
request gets the n-th recorded answer (the last one thereafter): GenerateCredentialReport's
"STARTED" then "COMPLETE" replay in order. An AssumeRole recorded more than once (an attempt
retried after a read timeout, whose slow first attempt may finish last) replays the answer whose
credentials signed the account's later requests.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNER = re.compile(rb"Credential=([A-Z0-9]+)/")
ACCESS_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")
SKIPPED_HEADERS = frozenset({"transfer-encoding", "connection", "content-length", "date", "server"})


class RecordReplayProxy:
    def __init__(self, upstream: str, *, latency: float = 0.0) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.latency = latency
        self.replaying = False
        self.answers: dict[tuple, list[tuple[int, list, bytes]]] = defaultdict(list)
        self._served: dict[tuple, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.misses = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                signer = SIGNER.search(self.headers.get("Authorization", "").encode())
                key = (self.command, self.path, body, signer.group(1) if signer else b"")
                status, headers, answer = proxy.answer(key, dict(self.headers))
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in SKIPPED_HEADERS:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up on this request

            do_GET = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def answer(self, key: tuple, headers: dict) -> tuple[int, list, bytes]:
        if self.replaying:
            if self.latency:
                time.sleep(self.latency)
            with self._lock:
                recorded = self.answers.get(key)
                if not recorded:
                    self.misses += 1
                    return 500, [], b"<ErrorResponse><Error><Code>NotRecorded</Code></Error></ErrorResponse>"
                n = self._served[key]
                self._served[key] = n + 1
                return recorded[min(n, len(recorded) - 1)]
        result = self._forward(key[0], key[1], headers, key[2])
        with self._lock:
            self.answers[key].append(result)
        return result

    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(
                self.upstream.hostname, self.upstream.port, timeout=120
            )
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException):
            self._local.conn = None
            conn.close()
            raise

    def replay(self) -> None:
        """From now on answer from the recording only (each key's answers from the first again)."""
        with self._lock:
            self._served.clear()
            # An AssumeRole answered twice (a retry, the slow first attempt finishing last): keep
            # the answer whose credentials signed the account's later requests.
            signers = {key[3] for key in self.answers}
            for key, recorded in self.answers.items():
                if b"Action=AssumeRole&" in key[2] and len(recorded) > 1:
                    used = [a for a in recorded if set(ACCESS_KEY.findall(a[2])) & signers]
                    self.answers[key] = used[-1:] or recorded[-1:]
            self.replaying = True

    def start(self) -> RecordReplayProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
