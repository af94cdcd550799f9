"""/healthz that means it: a database that stops accepting writes, a dead scheduler and a dropped
Socket Mode connection each turn it 503, and it recovers when they do."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.error
import urllib.request

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from iamwarden.app import Health


def _health(bot) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(bot.url + "/healthz", timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz_is_503_while_another_process_holds_the_database_and_recovers(bot):
    assert _health(bot) == (200, {"db": "ok", "status": "ok"})
    other = sqlite3.connect(str(bot.store.path), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        status, body = _health(bot)
        assert (status, body) == (503, {"db": "not writable", "status": "unhealthy"})
        assert time.monotonic() - started < 10  # a short lock wait, not the 30 s writers use
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _health(bot)[0] == 200


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_healthz_is_503_when_the_database_file_is_read_only(bot):
    path = bot.store.path
    bot.store.close()
    os.chmod(path, 0o444)
    try:
        assert _health(bot)[0] == 503
    finally:
        os.chmod(path, 0o644)


def test_healthz_reports_a_dead_scheduler(bot):
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    bot.services.extras["scheduler"] = scheduler
    assert _health(bot) == (200, {"db": "ok", "scheduler": "running", "status": "ok"})
    scheduler.shutdown(wait=True)
    assert _health(bot) == (503, {"db": "ok", "scheduler": "stopped", "status": "unhealthy"})


def test_healthz_reports_a_dropped_socket(bot):
    connected = [True]
    health = Health(bot.services, socket_connected=lambda: connected[0])
    assert health.report() == (200, {"db": "ok", "socket_mode": "connected", "status": "ok"})
    connected[0] = False
    assert health.report() == (503, {"db": "ok", "socket_mode": "disconnected", "status": "unhealthy"})
