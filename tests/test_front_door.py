"""The HTTP front door under attack: slow clients, oversized bodies, connection floods.

Bounds here are generous (the machine is shared); latency figures live in bench/front_door.py.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def _slow_client(port: int, stop: threading.Event, outcome: list[str]) -> None:
    """Headers promising a body, then one body byte every 2 s (an unauthenticated slowloris)."""
    try:
        sock = _connect(port)
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        while not stop.is_set():
            sock.sendall(b"a")
            stop.wait(2)
        outcome.append("open")
    except OSError:
        outcome.append("cut off")  # the server closed it (read timeout), as it should


def test_signed_help_is_answered_while_32_slow_clients_hold_connections(bot):
    stop = threading.Event()
    outcomes: list[str] = []
    slow = [
        threading.Thread(target=_slow_client, args=(bot.server.port, stop, outcomes), daemon=True)
        for _ in range(32)
    ]
    for t in slow:
        t.start()
    time.sleep(1)
    answered = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = bot.command("U0ALICE", "help")
            answered.append((response.status, time.monotonic() - started))
            time.sleep(1)
    finally:
        stop.set()
        for t in slow:
            t.join(timeout=10)
    assert answered and all(status == 200 for status, _ in answered)
    assert max(elapsed for _, elapsed in answered) < 3.0
    # A request that has not fully arrived within the read timeout is cut off.
    assert outcomes.count("cut off") == 32


def test_oversized_body_gets_413_without_being_read(bot):
    sock = _connect(bot.server.port)
    try:
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        # Not one body byte is sent: the answer comes from Content-Length alone.
        assert _read_status(sock) == 413
    finally:
        sock.close()
    # A chunked body that grows past the limit is cut off too.
    sock = _connect(bot.server.port)
    try:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        status = 0
        try:
            for _ in range(40):  # 2.5 MB in 64 KB chunks
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass
        status = _read_status(sock)
        assert status == 413
    finally:
        sock.close()


def test_exactly_one_megabyte_is_not_refused_for_size(bot):
    body = b"a" * (1024 * 1024)
    response = bot.sender.send_raw(body, signature="v0=" + "0" * 64)
    assert response.status == 401  # read and refused for its signature, not its size


def test_200_concurrent_new_connections_are_all_accepted(bot):
    def probe(_: int) -> int:
        sock = _connect(bot.server.port)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return _read_status(sock)
        finally:
            sock.close()

    barrier_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(probe, range(200)))
    assert statuses.count(200) == 200, statuses
    assert time.monotonic() - barrier_start < 60


@pytest.mark.parametrize("path", ["/", "/slack/events/../etc", "/nope"])
def test_unknown_paths_are_404_not_500(bot, path):
    sock = _connect(bot.server.port)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert _read_status(sock) in (404, 405)
    finally:
        sock.close()
