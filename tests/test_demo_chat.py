"""The demo chat driven through a pseudo-terminal, as a person at a terminal uses it:
request → approve (as another person) → credentials shown to the requester → wait → the access
ends → wait a day → the scheduled scan and digest are posted. One echo per command, names as
@display-name, mrkdwn rendered, a console link from the demo's federation stand-in."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    def __init__(self) -> None:
        master, slave = pty.openpty()
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TERM": "xterm", "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "iamwarden", "demo"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.pending = b""
        self.transcript = ""

    def expect(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        """Read until ``pattern`` appears; returns the match over what was read up to it."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while True:
            text = self.pending.decode(errors="replace")
            match = regex.search(text)
            if match:
                consumed = text[: match.end()]
                self.transcript += consumed
                self.pending = text[match.end() :].encode()
                return regex.search(consumed)  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; last output:\n{text[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.pending += os.read(self.master, 65536)
                except OSError:
                    pass

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.master)


@pytest.fixture
def terminal():
    term = Terminal()
    yield term
    term.close()


@pytest.mark.timeout(600)
def test_request_approve_credentials_wait_expiry_digest_through_a_terminal(terminal):
    t = terminal
    t.expect(r"ada> ")
    t.type("/iam request prod-admin 1h rotate the *payments* db password")
    request = t.expect(r"bot in #approvals ──(.*?)\[(\d+)\] Approve.*?ada> ")
    assert "@ada" in request.group(1) and "U0ADA" not in request.group(1)  # names, not ids
    approve = request.group(2)

    t.type("As Bob")  # any case
    t.expect(r"bob> ")
    t.type(approve)
    granted = t.expect(r"bob clicks \[\d+\] Approve(.*?)bob> ")
    # The credentials appear at once, shown as the requester's, not under whoever types next.
    assert re.search(r"only @ada sees this.*?Credentials for prod-admin", granted.group(1), re.S)
    assert "export AWS_SESSION_TOKEN=" in granted.group(1)
    console = re.search(r"\[(\d+)\] Open the AWS console", granted.group(1))
    assert console, granted.group(1)
    t.type(console.group(1))
    t.expect(r"\(opens http://127\.0\.0\.1:\d+/.*?bob> ")  # the demo's federation stand-in

    t.type("wait 2h")
    ended = t.expect(r"time passes: 2h(.*?)bob> ", timeout=180)
    assert "a DM to @ada" in ended.group(1) and "ended" in ended.group(1)

    t.type("wait 1d")
    day = t.expect(r"time passes: 1d(.*?)bob> ", timeout=400)
    assert "bot in #security" in day.group(1)  # the scheduled scan's digest was posted
    assert "🔴" in day.group(1) and ":red_circle:" not in day.group(1)

    t.type("home")
    t.expect(r"publish view.*?bob> ")
    t.type("/iamx help")
    refused = t.expect(r"/iamx help(.*?)bob> ")
    assert "not a valid command" in refused.group(1) and "def " not in refused.group(1)
    t.type("quit")
    assert t.process.wait(timeout=60) == 0
    # One echo per command: the terminal's own, never a second copy from the demo.
    assert t.transcript.count("/iam request prod-admin 1h rotate") == 1
    assert "Traceback" not in t.transcript and "URLError" not in t.transcript


@pytest.mark.timeout(300)
def test_a_modal_is_filled_in_and_submitted_through_a_terminal(terminal):
    t = terminal
    t.expect(r"ada> ")
    t.type("/iam request")
    t.expect(r"\[ Request access \].*?Role\s+\[1\] prod-admin  \[2\] prod-readonly\s+> ")
    t.type("2")
    t.expect(r"For how long.*?> ")
    t.type("1h")
    t.expect(r"Reason\s+> ")
    t.type("read the *audit* logs")
    t.expect(r"Ticket \(optional\)\s+> ")
    t.type("")
    submitted = t.expect(r"ada submits \[Request\](.*?)ada> ")
    assert "bot in #approvals" in submitted.group(1) and "prod-readonly" in submitted.group(1)
    t.type("quit")
    assert t.process.wait(timeout=60) == 0
    # The terminal shows each answer once (its own echo); the chat adds no second copy.
    assert t.transcript.count("read the *audit* logs") == 1
    assert "Traceback" not in t.transcript
