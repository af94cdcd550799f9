"""A CLI that behaves: --version, a closed pipe, checks as CSV, audit time ranges as instants,
no credentials, and a digest that never calls a scan that did not run an all-clear."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.checks.catalog import iter_checks
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
# No AWS credentials anywhere in the chain (environment, files, instance metadata).
NO_AWS = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def cli(*args: str, tmp_path: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "IAMWARDEN_DB": str(tmp_path / "iamwarden.db")}
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env={**base, **NO_AWS, **(env or {})},
        cwd=tmp_path,
        timeout=60,
        **kwargs,
    )


def test_version(tmp_path):
    from importlib.metadata import version

    result = cli("--version", tmp_path=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"iamwarden {version('iamwarden')}"


def test_a_closed_pipe_ends_quietly(tmp_path):
    # The reader is gone before the command writes a byte: like `iamwarden checks --format json | head`
    # with a head that has already exited.
    read, write = os.pipe()
    os.close(read)
    process = subprocess.run(
        [sys.executable, "-m", "iamwarden", "checks", "--format", "json"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        timeout=60,
    )
    os.close(write)
    assert process.returncode == 0
    assert process.stderr == ""


def test_a_pipe_closed_part_way_ends_quietly(tmp_path):
    result = subprocess.run(
        f"{sys.executable} -m iamwarden checks --format json | head -c 20",
        shell=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        timeout=60,
    )
    assert result.stdout.startswith("[")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_checks_as_csv_lists_the_catalog(tmp_path):
    result = cli("checks", "--format", "csv", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == [c.id for c in iter_checks()]
    admin = next(r for r in rows if r["id"] == "ADMIN_NO_MFA")
    assert admin["severity"] == "critical" and admin["cis"] == "1.10" and admin["remediation_cli"]


# -- audit --since / --until --------------------------------------------------------------------------


@pytest.fixture
def audit_db(tmp_path):
    store = Store(tmp_path / "iamwarden.db")
    now = datetime.now(UTC).replace(microsecond=0)
    times = {
        "ten-days-ago": now - timedelta(days=10),
        "two-hours-ago": now - timedelta(hours=2),
        "fixed": datetime(2026, 11, 29, 20, 21, tzinfo=UTC),
    }
    for reason, at in times.items():
        store.audit("requested", actor="U0ALICE", at=at, reason=reason)
    return times


def reasons(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return sorted(json.loads(line)["reason"] for line in result.stdout.splitlines())


def test_audit_since_is_compared_as_an_instant_whatever_the_offset(audit_db, tmp_path):
    # 21:21+01:00 is 20:21Z: the same instant, spelled differently.
    same = [
        cli("audit", "--since", since, tmp_path=tmp_path)
        for since in ("2026-11-29T21:21:00+01:00", "2026-11-29T20:21:00Z")
    ]
    assert reasons(same[0]) == reasons(same[1])
    assert "fixed" in reasons(same[0])
    later = cli("audit", "--since", "2026-11-29T21:22:00+01:00", tmp_path=tmp_path)
    assert "fixed" not in reasons(later)


def test_audit_since_and_until_take_durations(audit_db, tmp_path):
    recent = reasons(cli("audit", "--since", "24h", tmp_path=tmp_path))
    assert "two-hours-ago" in recent and "ten-days-ago" not in recent
    week = reasons(cli("audit", "--since", "30d", "--until", "7d", tmp_path=tmp_path))
    assert "ten-days-ago" in week and "two-hours-ago" not in week


@pytest.mark.parametrize("bad", ["yesterday", "zzz", "2026-13-45", "12", ""])
def test_audit_refuses_a_time_it_cannot_read(bad, audit_db, tmp_path):
    for flag in ("--since", "--until"):
        result = cli("audit", flag, bad, tmp_path=tmp_path)
        assert result.returncode == 2, (flag, bad, result.stdout)
        assert result.stdout == ""
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"iamwarden: {flag}: ")


def test_audit_of_a_database_that_does_not_exist_is_an_error(tmp_path):
    result = cli("audit", tmp_path=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "iamwarden.db").exists()


# -- no credentials, no scan ----------------------------------------------------------------------------


def test_scan_without_credentials_says_so_in_one_line_and_writes_no_database(tmp_path):
    result = cli("scan", tmp_path=tmp_path)
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert "no AWS credentials" in line and "nothing was scanned" in line
    assert not (tmp_path / "iamwarden.db").exists()
    assert list(tmp_path.iterdir()) == []


def test_digest_with_no_successful_scan_says_exactly_that_never_zero_critical(tmp_path):
    from bot.findings import save_snapshot

    none_yet = cli("digest", "--dry-run", tmp_path=tmp_path)
    assert none_yet.returncode == 0 and "No scan has been stored yet" in none_yet.stdout
    store = Store(tmp_path / "iamwarden.db")
    save_snapshot(
        store,
        account_id="123456789012",
        account_name="production",
        scanned_at=datetime(2026, 11, 29, 7, tzinfo=UTC),
        api_calls=1,
        inventory=None,
        findings=[],
        status="failed",
        error="Could not reach AWS (NoCredentialsError).",
    )
    failed = cli("digest", "--dry-run", tmp_path=tmp_path)
    assert failed.returncode == 0, failed.stderr
    assert "no successful scan yet" in failed.stdout and "NoCredentialsError" in failed.stdout
    assert "0 critical" not in failed.stdout
