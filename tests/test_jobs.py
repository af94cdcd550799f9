"""Scheduling: crontab expressions mean what cron means, and every declared job gets a trigger."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.jobs import crontab_trigger


@pytest.mark.parametrize(
    ("expr", "expected_weekdays"),
    [
        ("0 9 * * 1-5", {0, 1, 2, 3, 4}),  # Monday..Friday (Python weekday numbers)
        ("0 9 * * 0", {6}),  # Sunday, as cron reads 0
        ("0 9 * * 7", {6}),  # Sunday again
        ("0 9 * * *", set(range(7))),
    ],
)
def test_day_of_week_reads_like_cron(expr, expected_weekdays):
    trigger = crontab_trigger(expr, "UTC")
    fire = None
    seen = set()
    now = datetime(2026, 11, 29, tzinfo=UTC)  # a Sunday
    for _ in range(14):
        fire = trigger.get_next_fire_time(fire, fire or now)
        seen.add(fire.weekday())
        fire = fire.replace(minute=1)
    assert seen == expected_weekdays


def test_a_malformed_crontab_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="5-field"):
        crontab_trigger("every day", "UTC")
