"""Where alert events come from: an SQS queue fed by EventBridge (primary), or CloudTrail LookupEvents.

SQS contract: a message is deleted only after ``bot.alerts.ingest`` has committed its event (or the
event was already processed: a redelivery). A message we cannot read (a poison message) is logged
and left alone, so the queue's redrive policy moves it to the dead-letter queue after
``maxReceiveCount`` receives; one poll never re-reads the same message twice, so it cannot loop.

LookupEvents: reads ``[checkpoint - overlap, now]`` (CloudTrail adds events to its history late),
within AWS's 2 requests/second budget, and stores the checkpoint in SQLite only after every page
was read. Re-read events are skipped by event id, so overlapping reads are free of repeats.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.alerts.events import CloudTrailEvent, EventParseError, parse_eventbridge, parse_lookup
from bot.alerts.recording import ingest
from bot.aws import AwsFactory, describe_aws_error
from bot.services import Services
from bot.store import iso

log = logging.getLogger(__name__)

LOOKUP_CHECKPOINT_KEY = "alerts.lookup_events.checkpoint"
# Writes (including ConsoleLogin) plus everything root did, reads included: two queries per poll
# instead of paging through every read-only call in the account.
LOOKUP_QUERIES: tuple[dict[str, str], ...] = (
    {"AttributeKey": "ReadOnly", "AttributeValue": "false"},
    {"AttributeKey": "Username", "AttributeValue": "root"},
)


@dataclass
class PollReport:
    """What one poll did (logged, and what tests assert on)."""

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    ignored: int = 0
    poison: int = 0
    failed: int = 0
    deleted: int = 0
    requests: int = 0
    alert_ids: list[int] = field(default_factory=list)
    error: str | None = None


def _record(services: Services, event: CloudTrailEvent, source: str, report: PollReport) -> None:
    result = ingest(services.config, services.store, event, source=source, now=services.clock.now())
    if result.duplicate:
        report.duplicates += 1
    else:
        report.processed += 1
        report.alert_ids += result.alert_ids


def _regional(services: Services, region: str | None) -> AwsFactory:
    """The bot's AWS factory, in ``region`` when that differs from the bot's own."""
    if not region or region == services.aws.region:
        return services.aws
    return AwsFactory(region=region, session=services.aws.session, counter=services.aws.counter)


def queue_region(queue_url: str) -> str | None:
    """``https://sqs.eu-west-1.amazonaws.com/…`` → ``eu-west-1`` (None for other hosts, e.g. local)."""
    host = urlsplit(queue_url).hostname or ""
    match = re.fullmatch(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?", host)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# SQS


def consume_queue(
    services: Services,
    *,
    queue_url: str | None = None,
    wait_seconds: int | None = None,
    max_batches: int | None = None,
) -> PollReport:
    """Receive and process what is on the alerts queue now (long-polling once when it is empty)."""
    cfg = services.config.alerts
    queue_url = queue_url or cfg.queue_url
    report = PollReport()
    if not queue_url:
        return report
    sqs = _regional(services, queue_region(queue_url)).client("sqs")
    wait = cfg.sqs_wait_seconds if wait_seconds is None else wait_seconds
    seen: set[str] = set()
    for batch in range(max_batches or cfg.sqs_max_batches):
        try:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                # Long-poll only for the first batch; after that, drain what is already there.
                WaitTimeSeconds=wait if batch == 0 else 0,
                # SentTimestamp stands in for a record's missing or unreadable eventTime.
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:
            report.error = describe_aws_error(exc, "sqs:ReceiveMessage")
            log.warning("alerts queue: %s", report.error)
            break
        messages = response.get("Messages") or []
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        done: list[dict[str, str]] = []
        readable: list[tuple[dict[str, Any], CloudTrailEvent]] = []
        for message in fresh:
            seen.add(message["MessageId"])
            report.received += 1
            try:
                event = _parse_message(message, report)
            except EventParseError:
                continue  # poison: left for the dead-letter queue
            if event is None:
                done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
            else:
                readable.append((message, event))
        # Oldest first within a batch, so windowed rules see bursts in order.
        for message, event in sorted(readable, key=lambda pair: pair[1].event_time):
            if _record_message(services, message, event, report):
                done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            report.deleted += _delete(sqs, queue_url, done)
    if report.received:
        log.info(
            "alerts queue: %d received, %d processed, %d duplicate, %d ignored, %d poison, %d failed",
            report.received,
            report.processed,
            report.duplicates,
            report.ignored,
            report.poison,
            report.failed,
        )
    return report


def _parse_message(message: dict[str, Any], report: PollReport) -> CloudTrailEvent | None:
    """The message's event; None when it is irrelevant (delete it). Raises EventParseError for a
    poison message, after logging it."""
    try:
        event = parse_eventbridge(
            message.get("Body") or "", delivered_at=(message.get("Attributes") or {}).get("SentTimestamp")
        )
    except EventParseError as exc:
        report.poison += 1
        log.warning(
            "alerts queue: poison message %s (receive %s) left for the dead-letter queue: %s",
            message.get("MessageId"),
            (message.get("Attributes") or {}).get("ApproximateReceiveCount", "?"),
            exc,
        )
        raise
    if event is None:
        report.ignored += 1
    return event


def _record_message(
    services: Services, message: dict[str, Any], event: CloudTrailEvent, report: PollReport
) -> bool:
    """True when the message may be deleted: its event is recorded now, or was already."""
    try:
        _record(services, event, "sqs", report)
    except Exception:
        report.failed += 1
        log.exception(
            "alerts queue: could not record event %s from message %s (receive %s); it will be retried",
            event.event_id,
            message.get("MessageId"),
            (message.get("Attributes") or {}).get("ApproximateReceiveCount", "?"),
        )
        return False
    return True


def _delete(sqs: Any, queue_url: str, entries: list[dict[str, str]]) -> int:
    try:
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception as exc:
        # Recorded already: a redelivery will be recognised by its event id and only deleted.
        log.warning("alerts queue: %s", describe_aws_error(exc, "sqs:DeleteMessageBatch"))
        return 0
    for failure in response.get("Failed") or []:
        log.warning("alerts queue: could not delete a message: %s", failure.get("Code"))
    return len(response.get("Successful") or [])


# ---------------------------------------------------------------------------------------------
# CloudTrail LookupEvents


class RateLimiter:
    """At most ``rate`` calls a second across threads (LookupEvents allows 2/s per account and region)."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def lookup_limiter(services: Services) -> RateLimiter:
    """The process-wide limiter (the 2/s budget is shared by everything calling LookupEvents)."""
    limiter = services.extras.get("alerts.lookup_limiter")
    if limiter is None:
        limiter = RateLimiter(services.config.alerts.lookup_rate_per_second)
        services.extras["alerts.lookup_limiter"] = limiter
    return limiter


def lookup_checkpoint(services: Services) -> str | None:
    return services.store.get_kv(LOOKUP_CHECKPOINT_KEY)


def poll_lookup_events(services: Services, *, limiter: RateLimiter | None = None) -> PollReport:
    """Read new management events from CloudTrail's event history and ingest them."""
    cfg = services.config.alerts
    report = PollReport()
    limiter = limiter or lookup_limiter(services)
    now = services.clock.now()
    checkpoint = lookup_checkpoint(services)
    start = (
        datetime.fromisoformat(checkpoint) - cfg.lookup_overlap
        if checkpoint
        else now - cfg.lookup_initial_lookback
    )
    client = _regional(services, cfg.lookup_region).client("cloudtrail")
    # History pages come newest first; windowed rules need the events in time order, so collect
    # every page, then ingest oldest first.
    collected: dict[str, CloudTrailEvent] = {}
    for query in LOOKUP_QUERIES:
        token: str | None = None
        while report.error is None:
            params: dict[str, Any] = {
                "LookupAttributes": [query],
                "StartTime": start,
                "EndTime": now,
                "MaxResults": 50,
            }
            if token:
                params["NextToken"] = token
            limiter.wait()
            report.requests += 1
            try:
                page = client.lookup_events(**params)
            except Exception as exc:
                # Unavailable is "unknown", never a crash; the checkpoint stays so nothing is skipped.
                report.error = describe_aws_error(exc, "cloudtrail:LookupEvents")
                log.warning("LookupEvents: %s", report.error)
                break
            for record in page.get("Events") or []:
                report.received += 1
                try:
                    event = parse_lookup(record)
                except EventParseError as exc:
                    report.poison += 1
                    log.warning("LookupEvents: skipped unreadable event %s: %s", record.get("EventId"), exc)
                    continue
                if event.event_id in collected:
                    report.duplicates += 1
                collected[event.event_id] = event
            token = page.get("NextToken")
            if not token:
                break
    for event in sorted(collected.values(), key=lambda e: e.event_time):
        try:
            _record(services, event, "lookup", report)
        except Exception:
            report.failed += 1
            report.error = report.error or f"could not record event {event.event_id}"
            log.exception("LookupEvents: could not record event %s", event.event_id)
    if report.error is not None:
        return report  # checkpoint not moved: the next poll reads the same range again
    services.store.set_kv(LOOKUP_CHECKPOINT_KEY, iso(now), at=now)
    return report
