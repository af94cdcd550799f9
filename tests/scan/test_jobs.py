"""The scheduled scan: once per slot across instances."""

from __future__ import annotations

from bot.digest import slot_rows
from handlers.client import build_client
from handlers.scan import run_scan_job


def test_the_scheduled_scan_runs_once_per_slot(make_bot, tmp_path):
    bots = [make_bot(db=tmp_path / "shared.db") for _ in range(2)]
    results = [run_scan_job(b.services, build_client(b.services)) for b in (*bots, *bots)]
    assert results == [True, False, False, False]
    assert bots[0].store.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
    assert [r["status"] for r in slot_rows(bots[0].store, kind="scan")] == ["posted"]
