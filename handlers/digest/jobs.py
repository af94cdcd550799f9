"""The scheduled digest (registered with bot.jobs; tests call the parts directly with a moved clock),
and the catch-up of slots missed while the bot was down."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import digest as digests
from bot.jobs import job
from bot.services import Services
from bot.store import iso
from handlers.digest.delivery import PostedDigest, digest_channel, post_digest
from handlers.scan import run_scan_job

log = logging.getLogger(__name__)


def run_digest_job(services: Services, client: WebClient) -> PostedDigest | None:
    """The scheduled digest: post the due slot once per channel, however many instances run.

    Called by the cron trigger at the slot, and every minute to catch up a slot missed while the bot
    was down (within ``schedule.catch_up_grace``). Returns None when there is nothing to do.
    """
    channel = digest_channel(services)
    if not channel:
        log.warning("no digest channel configured ([slack] digest_channel); skipping the digest")
        return None
    schedule = services.config.schedule
    now = services.clock.now()
    slot = digests.due_slot(schedule.digest_cron, schedule.timezone, now, schedule.catch_up_grace)
    if slot is None:
        return None
    store = services.store
    if not digests.claim_slot(store, kind="digest", channel=channel, slot=slot, now=now):
        return None
    try:
        posted = post_digest(services, client, channel=channel, slot=iso(slot))
    except Exception as exc:
        # Only a digest that never reached the channel may be retried; once the headline is out the
        # slot counts as posted (record_digest happened inside post_digest).
        posted_already = digests.previous_digest(store, channel)
        if posted_already and posted_already["slot"] == iso(slot):
            digests.finish_slot(
                store,
                kind="digest",
                channel=channel,
                slot=slot,
                now=services.clock.now(),
                ts=posted_already["ts"],
            )
        else:
            digests.finish_slot(
                store,
                kind="digest",
                channel=channel,
                slot=slot,
                now=services.clock.now(),
                error=type(exc).__name__,
            )
        raise
    digests.finish_slot(
        store, kind="digest", channel=channel, slot=slot, now=services.clock.now(), ts=posted.ts
    )
    return posted


@job("digest", cron=lambda s: s.config.schedule.digest_cron)
def scheduled_digest(services: Services, client: WebClient) -> None:
    run_digest_job(services, client)


@job("schedule_catch_up", every_seconds=lambda s: 60.0)
def catch_up(services: Services, client: WebClient) -> None:
    """A slot missed while the bot was down runs once, within the grace period (scan first)."""
    run_scan_job(services, client)
    run_digest_job(services, client)
