"""The identity jobs: ``directory-refresh`` (which also offboards members it finds deactivated) and
``offboarding-sweep`` (finishes what a crash or a Slack outage interrupted). Registered with
``bot.jobs``; tests call them directly with a moved clock."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient

from bot import identity
from bot.jobs import job
from bot.services import Services
from handlers.identity.notifier import SlackOffboardingNotifier

log = logging.getLogger(__name__)

# The job wakes every few minutes but calls users.list only when the cache is stale: a new
# deployment gets its directory within minutes instead of after the first full interval. It also
# runs once before ``iamwarden run`` serves, so the first answer already knows who is who.
_DIRECTORY_CHECK_SECONDS = 300.0


def sweep_offboardings(services: Services, client: WebClient) -> int:
    return identity.sweep(services, SlackOffboardingNotifier(services, client))


def refresh_directory(services: Services, client: WebClient, *, page_size: int = 200) -> int:
    """Cache the directory now (paged users.list), then offboard members it found deactivated.
    Returns how many members were stored. Raises bot.identity.DirectoryUnavailable."""
    changes = identity.refresh_directory(services, client, page_size=page_size)
    sweep_offboardings(services, client)
    return changes.stored


@job(
    "directory-refresh",
    every_seconds=lambda s: min(
        _DIRECTORY_CHECK_SECONDS, s.config.identity.directory_refresh.total_seconds()
    ),
    at_start=True,
)
def directory_refresh_job(services: Services, client: Any) -> None:
    if not identity.directory_is_stale(services):
        return
    try:
        refresh_directory(services, client)
    except identity.DirectoryUnavailable as exc:
        log.warning("%s; the cached directory stays in use and the job retries", exc)


@job("offboarding-sweep", every_seconds=lambda s: 60.0)
def offboarding_sweep_job(services: Services, client: Any) -> None:
    sweep_offboardings(services, client)
