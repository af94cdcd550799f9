"""The HTTP front door: waitress, tuned so that nobody on the internet can stall the bot.

Why waitress (measured, see bench/front_door.py and the README's "HTTP mode"): its single asyncore
I/O thread buffers each request *completely* before a worker thread sees it, so a slow client holds
one socket, never a worker. cheroot (the previous server) hands the connection to a worker thread
as soon as it is accepted; 16 slow clients held all 16 workers and every later request timed out.

On top of waitress's own limits (``max_request_body_size`` answered with 413 from Content-Length
before the body is read, ``channel_timeout`` for idle connections, ``connection_limit``, a deep
listen ``backlog``), one limit waitress lacks: a request must arrive *completely* within
``request_read_timeout`` seconds of its first byte, so a client trickling one byte every few
seconds is cut off instead of holding a socket for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger(__name__)

# Slack's payloads are a few KB; a megabyte is generous. Larger bodies get 413 unread.
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
# A whole request (headers and body) must arrive within this many seconds of its first byte.
REQUEST_READ_TIMEOUT = 10.0
# A connection with nothing in flight is closed after this long (keep-alive or never spoke).
IDLE_TIMEOUT = 15
# Listen queue and open-connection ceiling: 200 concurrent new connections are accepted at once.
BACKLOG = 1024
CONNECTION_LIMIT = 1000


class _TimedRequestParser(HTTPRequestParser):
    """Remembers when the first byte of this request arrived (waitress creates one per request)."""

    def __init__(self, adj: Adjustments):
        super().__init__(adj)
        self.first_byte_at = time.monotonic()


class _TimedChannel(HTTPChannel):
    parser_class = _TimedRequestParser


class _FrontDoorServer(TcpWSGIServer):
    channel_class = _TimedChannel
    request_read_timeout: float = REQUEST_READ_TIMEOUT

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        # Runs on the I/O thread every cleanup_interval: close connections still sending a request
        # after the read timeout (slow headers or a trickled body).
        cutoff = time.monotonic() - self.request_read_timeout
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and not request.completed and request.first_byte_at < cutoff:
                log.info(
                    "closing a connection that took over %ss to send its request", self.request_read_timeout
                )
                channel.will_close = True

    def shutdown(self) -> None:
        """Stop from another thread: close every channel and this socket, then the workers."""
        self.accepting = False
        for channel in list(self._map.values()):
            try:
                channel.handle_close()
            except OSError:
                pass
        self.task_dispatcher.shutdown(timeout=5)


@dataclass
class HttpServer:
    """The bot's HTTP server on a thread: ``start()`` returns once it listens; ``port`` is the real one."""

    application: Callable
    host: str = "127.0.0.1"
    port: int = 0
    threads: int = 8
    max_body_bytes: int = MAX_BODY_BYTES
    request_read_timeout: float = REQUEST_READ_TIMEOUT
    idle_timeout: int = IDLE_TIMEOUT
    backlog: int = BACKLOG
    connection_limit: int = CONNECTION_LIMIT
    _server: _FrontDoorServer | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def _build(self) -> _FrontDoorServer:
        adj = Adjustments(
            host=self.host,
            port=str(self.port),
            threads=self.threads,
            backlog=self.backlog,
            connection_limit=self.connection_limit,
            channel_timeout=self.idle_timeout,
            cleanup_interval=1,
            # Waitress answers 413 when Content-Length is at or over this, so allow exactly 1 MB.
            max_request_body_size=self.max_body_bytes + 1,
            max_request_header_size=MAX_HEADER_BYTES,
            expose_tracebacks=False,
            ident="iamwarden",
            # poll(), not select(): select() cannot watch more than 1024 sockets.
            asyncore_use_poll=True,
            asyncore_loop_timeout=1,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        server = _FrontDoorServer(
            self.application, map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0]
        )
        server.request_read_timeout = self.request_read_timeout
        return server

    def start(self) -> HttpServer:
        self._server = self._build()
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name="iamwarden-http", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self._server = self._build()
        self.port = int(self._server.effective_port)
        self._server.run()

    def wait(self) -> None:
        """Block until the server thread ends (``stop()`` or a signal)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
