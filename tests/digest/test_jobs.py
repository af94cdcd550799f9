"""The scheduled digest: slots claimed once across instances and restarts, missed slots caught up
within the grace period, the schedule read from the config."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.digest import claim_slot, due_slot, slot_rows
from bot.jobs import JOBS
from bot.settings import Config
from handlers.client import build_client
from handlers.digest import run_digest_job
from tests.conftest import DEFAULT_CONFIG
from tests.digest.support import CHANNEL, finding, headlines, store_scan


def test_scheduled_slot_is_posted_once_across_a_restart(make_bot, tmp_path, clock):
    first = make_bot(db=tmp_path / "shared.db")
    store_scan(first, [finding("USER_CONSOLE_NO_MFA", "ada")])
    posted = run_digest_job(first.services, build_client(first.services))
    assert posted is not None
    # The same process again, and a restarted instance on the same database: nothing new.
    assert run_digest_job(first.services, build_client(first.services)) is None
    first.server.stop()
    restarted = make_bot(db=tmp_path / "shared.db")
    assert run_digest_job(restarted.services, build_client(restarted.services)) is None
    assert len(headlines(restarted.slack)) == 1
    [slot] = slot_rows(restarted.store, kind="digest")
    assert (
        slot["slot"] == "2026-11-29T07:30:00+00:00" and slot["status"] == "posted" and slot["ts"] == posted.ts
    )
    # Tomorrow's slot is a new one.
    clock.advance(days=1)
    assert run_digest_job(restarted.services, build_client(restarted.services)) is not None
    assert len(headlines(restarted.slack)) == 2


def test_two_concurrent_posters_post_one_digest(make_bot, tmp_path):
    bots = [make_bot(db=tmp_path / "shared.db") for _ in range(2)]
    store_scan(bots[0], [finding("USER_CONSOLE_NO_MFA", "ada")])
    start = threading.Barrier(4)
    results: list = []

    def poster(b) -> None:
        client = build_client(b.services)
        start.wait()
        results.append(run_digest_job(b.services, client))

    threads = [threading.Thread(target=poster, args=(b,)) for b in (*bots, *bots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(r is not None for r in results) == 1
    assert len(headlines(bots[0].slack)) == 1
    assert len(bots[0].slack.files()) == 1


def test_missed_slot_is_caught_up_within_grace_once_and_not_after(bot, clock):
    schedule = bot.services.config.schedule
    # 12:00 is 4.5 h after the 07:30 slot: within the default 6 h grace.
    assert due_slot(schedule.digest_cron, schedule.timezone, clock.now(), schedule.catch_up_grace).hour == 7
    store_scan(bot, [finding("USER_CONSOLE_NO_MFA", "ada")])
    client = build_client(bot.services)
    assert run_digest_job(bot.services, client) is not None
    clock.advance(minutes=1)
    assert run_digest_job(bot.services, client) is None
    # Tomorrow the bot is down until 14:00: the 07:30 slot is beyond the grace and is skipped.
    clock.advance(days=1, hours=2)
    assert run_digest_job(bot.services, client) is None
    assert len(headlines(bot.slack)) == 1


def test_a_failed_post_can_be_retried_but_a_posted_slot_cannot(bot, clock):
    store = bot.store
    now = clock.now()
    assert claim_slot(store, kind="digest", channel=CHANNEL, slot="s1", now=now, instance="a")
    assert not claim_slot(store, kind="digest", channel=CHANNEL, slot="s1", now=now, instance="b")
    # The first poster vanished mid-post: after the lease another may take over.
    assert claim_slot(
        store, kind="digest", channel=CHANNEL, slot="s1", now=now + timedelta(minutes=16), instance="b"
    )
    bot.slack.fail_next("chat.postMessage", error="channel_not_found")
    store_scan(bot, [finding("USER_CONSOLE_NO_MFA", "ada")])
    with pytest.raises(Exception, match="channel_not_found"):
        run_digest_job(bot.services, build_client(bot.services))
    assert slot_rows(store, kind="digest")[0]["status"] == "failed"
    assert run_digest_job(bot.services, build_client(bot.services)) is not None
    assert len(headlines(bot.slack)) == 1


def test_iamwarden_run_schedules_scan_digest_and_catch_up_from_config(bot):
    config = Config.model_validate(
        {
            **DEFAULT_CONFIG,
            "schedule": {
                "scan_cron": "0 6 * * 1-5",
                "digest_cron": "15 6 * * 1-5",
                "timezone": "Europe/Paris",
            },
        }
    )
    bot.services.settings.config = config
    jobs = {spec.name: spec for spec in JOBS}
    assert jobs["scan"].cron(bot.services) == "0 6 * * 1-5"
    assert jobs["digest"].cron(bot.services) == "15 6 * * 1-5"
    assert jobs["schedule_catch_up"].every_seconds(bot.services) == 60.0
    # Monday 2026-11-30 07:00 Paris is 06:00 UTC: the 06:15 Paris slot (05:15 UTC) is the one due.
    slot = due_slot(
        "15 6 * * 1-5", "Europe/Paris", datetime(2026, 11, 30, 6, 0, tzinfo=UTC), timedelta(hours=6)
    )
    assert slot.astimezone(UTC) == datetime(2026, 11, 30, 5, 15, tzinfo=UTC)
    # Sunday has no slot at all.
    assert (
        due_slot(
            "15 6 * * 1-5", "Europe/Paris", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), timedelta(hours=6)
        )
        is None
    )
