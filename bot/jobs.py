"""Periodic jobs (scan, digest, expiry sweep, alert polling) on APScheduler, in ``iamwarden run``.

Features declare jobs with ``@job(...)``; each job gets the Services and the Slack WebClient.
Jobs must be idempotent per slot (claim the slot in SQLite before posting) because two instances
may run and a restart may replay a missed slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services

log = logging.getLogger(__name__)


@dataclass
class JobSpec:
    name: str
    run: Callable[[Services, Any], None]
    # Either a cron expression read from config (callable so config decides) or an interval in seconds.
    cron: Callable[[Services], str | None] | None = None
    every_seconds: Callable[[Services], float | None] | None = None
    # Also run once, synchronously, before ``iamwarden run`` serves (e.g. cache the directory so the
    # first answer after start-up already knows who is who).
    at_start: bool = False


JOBS: list[JobSpec] = []

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_days(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as names APScheduler reads the same way.

    APScheduler 3's ``CronTrigger.from_crontab`` takes numbers as 0 = Monday, so ``1-5`` would mean
    Tuesday to Saturday; names are unambiguous.
    """
    if field == "*" or not any(ch.isdigit() for ch in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            lo_text, hi_text = rng.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = hi = int(rng)
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
            raise ValueError(f"'{field}' is not a crontab day-of-week field")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def crontab_trigger(cron: str, timezone: str) -> CronTrigger:
    """A CronTrigger for a standard 5-field crontab expression (Sunday = 0 or 7)."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"'{cron}' is not a 5-field crontab expression")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_days(dow), timezone=timezone
    )


def job(
    name: str,
    *,
    cron: Callable[[Services], str | None] | None = None,
    every_seconds: Callable[[Services], float | None] | None = None,
    at_start: bool = False,
) -> Callable:
    def register_job(fn: Callable[[Services, Any], None]) -> Callable[[Services, Any], None]:
        JOBS.append(JobSpec(name=name, run=fn, cron=cron, every_seconds=every_seconds, at_start=at_start))
        return fn

    return register_job


def _safe(spec: JobSpec, services: Services, client: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            spec.run(services, client)
        except Exception:
            log.exception("job %s failed; it will run again at its next slot", spec.name)

    return run


def start_background_jobs(services: Services, client: Any) -> Callable[[], None]:
    """Run the ``at_start`` jobs once (before the caller starts serving), then start the scheduler
    with every declared job; returns a function that stops it. A failing start-up job is logged and
    retried at its next slot: Slack being slow must not keep the bot from starting. The caller
    imports the modules that declare jobs first (``iamwarden.features.load("jobs")``)."""
    for spec in JOBS:
        if spec.at_start:
            _safe(spec, services, client)()
    tz = services.config.schedule.timezone
    scheduler = BackgroundScheduler(timezone=tz)
    for spec in JOBS:
        trigger = None
        if spec.cron is not None and (expr := spec.cron(services)):
            trigger = crontab_trigger(expr, tz)
        elif spec.every_seconds is not None and (seconds := spec.every_seconds(services)):
            trigger = IntervalTrigger(seconds=seconds)
        if trigger is None:
            continue
        scheduler.add_job(
            _safe(spec, services, client),
            trigger,
            id=spec.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(services.config.schedule.catch_up_grace.total_seconds()),
        )
        log.info("scheduled job %s", spec.name)
    scheduler.start()
    services.extras["scheduler"] = scheduler  # /healthz reports whether it is still alive
    return lambda: scheduler.shutdown(wait=False)
