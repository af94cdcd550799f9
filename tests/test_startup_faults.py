"""Start-up faults, each through the real ``iamwarden run`` subprocess: exit 2 and one line that
names the file or setting and what to do. Never a traceback."""

from __future__ import annotations

import os
import resource
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import Store
from tests.conftest import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _good_db(path: Path) -> Path:
    store = Store(path)
    store.audit("test", actor="U0ALICE", at=datetime.now(UTC))
    store.close()
    return path


def _run(env: dict, *, preexec=None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "iamwarden", "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=preexec,
    )
    return result, time.monotonic() - started


def _db_directory(tmp: Path) -> dict:
    (tmp / "dir.db").mkdir()
    return {"IAMWARDEN_DB": str(tmp / "dir.db")}


def _db_text_file(tmp: Path) -> dict:
    (tmp / "notes.db").write_text("these are my notes, not a database\n" * 20)
    return {"IAMWARDEN_DB": str(tmp / "notes.db")}


def _db_truncated(tmp: Path) -> dict:
    data = _good_db(tmp / "full.db").read_bytes()
    (tmp / "trunc.db").write_bytes(data[: len(data) // 3])
    return {"IAMWARDEN_DB": str(tmp / "trunc.db")}


def _db_corrupted(tmp: Path) -> dict:
    data = bytearray(_good_db(tmp / "full.db").read_bytes())
    data[100:4096] = os.urandom(3996)
    (tmp / "bad.db").write_bytes(bytes(data))
    return {"IAMWARDEN_DB": str(tmp / "bad.db")}


def _db_under_a_file(tmp: Path) -> dict:
    (tmp / "plainfile").write_text("x")
    return {"IAMWARDEN_DB": str(tmp / "plainfile" / "iamwarden.db")}


def _config_not_utf8(tmp: Path) -> dict:
    (tmp / "iamwarden.toml").write_bytes(b'[slack]\napprovals_channel = "C0\xff\xfe"\n')
    return {"IAMWARDEN_CONFIG": str(tmp / "iamwarden.toml")}


def _config_is_a_directory(tmp: Path) -> dict:
    (tmp / "conf.d").mkdir()
    return {"IAMWARDEN_CONFIG": str(tmp / "conf.d")}


def _slack_unreachable(tmp: Path) -> dict:
    return {"IAMWARDEN_SLACK_API_URL": f"http://127.0.0.1:{_free_port()}/api/"}


def _invalid_token(tmp: Path) -> dict:
    return {"SLACK_BOT_TOKEN": "xoxb-not-the-right-token"}


def _port_in_use(tmp: Path) -> dict:
    return {}  # the port is taken by the test itself (see below)


FAULTS = [
    ("database path is a directory", _db_directory, "is a directory"),
    ("database is a text file", _db_text_file, "is not an SQLite database"),
    ("database truncated", _db_truncated, "is corrupted"),
    ("database corrupted", _db_corrupted, "is corrupted"),
    # The path is named, whichever check (missing directory, cannot create) fires first.
    ("database directory cannot be created", _db_under_a_file, "plainfile"),
    ("config file not UTF-8", _config_not_utf8, "is not UTF-8"),
    ("config path is a directory", _config_is_a_directory, "is a directory"),
    ("Slack unreachable", _slack_unreachable, "cannot reach Slack"),
    ("invalid bot token", _invalid_token, "Slack refused the token (invalid_auth)"),
    ("port already in use", _port_in_use, "cannot listen on"),
]


def fault_lines(stderr: str) -> list[str]:
    """The fault's lines: start-up warnings about a config that cannot do much (one line each) are not it."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("iamwarden: warning:")]


@pytest.mark.parametrize(("name", "make", "says"), FAULTS, ids=[f[0] for f in FAULTS])
def test_startup_fault_is_one_line_and_exit_2(slack, tmp_path, name, make, says):
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "IAMWARDEN_SLACK_API_URL": slack.base_url,
        "IAMWARDEN_PORT": str(port),
        "IAMWARDEN_HOST": "127.0.0.1",
        "IAMWARDEN_DB": str(tmp_path / "iamwarden.db"),
        **make(tmp_path),
    }
    blocker = None
    if make is _port_in_use:
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
    try:
        result, _ = _run(env)
    finally:
        if blocker is not None:
            blocker.close()
    lines = fault_lines(result.stderr)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("iamwarden: "), result.stderr[-2000:]
    assert says in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert BOT_TOKEN not in result.stderr


def _env(slack, tmp_path, db: Path) -> dict:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "IAMWARDEN_SLACK_API_URL": slack.base_url,
        "IAMWARDEN_PORT": str(_free_port()),
        "IAMWARDEN_HOST": "127.0.0.1",
        "IAMWARDEN_DB": str(db),
    }


def test_a_database_locked_by_another_process_is_reported_quickly(slack, tmp_path):
    db = _good_db(tmp_path / "locked.db")
    holder = sqlite3.connect(str(db), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result, elapsed = _run(_env(slack, tmp_path, db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lines = fault_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "is locked by another process" in lines[0]
    assert elapsed < 20  # generous on a shared machine; the lock wait itself is 3 s


def test_a_full_disk_is_one_line(slack, tmp_path):
    def small_disk() -> None:  # files may not grow past 32 KB (Python ignores SIGXFSZ: writes fail)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    result, _ = _run(_env(slack, tmp_path, tmp_path / "big.db"), preexec=small_disk)
    lines = fault_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("iamwarden: IAMWARDEN_DB:") and "Traceback" not in result.stderr
