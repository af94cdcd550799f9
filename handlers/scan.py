"""The scheduled scan (registered with bot.jobs): every configured account scanned once per slot of
``schedule.scan_cron``, however many instances run; a slot missed while the bot was down is caught up
by the digest's ``schedule_catch_up`` job (scan first, then the digest)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.digest.slots import claim_slot, due_slot, finish_slot
from bot.jobs import job
from bot.scan import scan_accounts
from bot.services import Services


def run_scan_job(services: Services, client: WebClient) -> bool:
    """The scheduled scan: once per slot across instances. True when this call ran it."""
    schedule = services.config.schedule
    now = services.clock.now()
    slot = due_slot(schedule.scan_cron, schedule.timezone, now, schedule.catch_up_grace)
    if slot is None:
        return False
    store = services.store
    if not claim_slot(store, kind="scan", channel="*", slot=slot, now=now):
        return False
    try:
        scan_accounts(services, directory=client)  # a stale directory is refreshed first
    except Exception as exc:
        finish_slot(
            store, kind="scan", channel="*", slot=slot, now=services.clock.now(), error=type(exc).__name__
        )
        raise
    finish_slot(store, kind="scan", channel="*", slot=slot, now=services.clock.now())
    return True


@job("scan", cron=lambda s: s.config.schedule.scan_cron)
def scheduled_scan(services: Services, client: WebClient) -> None:
    run_scan_job(services, client)
