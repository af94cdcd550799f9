"""Ack first, work later: the bounded pool slow work runs on, its time budget, and its retry outbox.

Bolt acknowledges from its own small listener executor; a listener that makes a Web API call there
(and slack_sdk's rate-limit handler sleeps Retry-After inside it) holds a thread that every later
request needs for its ack. So listeners here only acknowledge and hand the rest to ``SlowWork``:

- a ``ThreadPoolExecutor`` owned by the app (not Bolt's), so a stuck Web API call can only ever
  delay other slow work, never an ack;
- each item runs with a total time budget for the Web API calls it makes: the retry handlers
  (``BudgetedRateLimitRetryHandler`` …) stop retrying when the next wait would overrun it;
- an item that then fails because Slack is rate limiting or unavailable is handed to the outbox,
  which runs it again after Slack's Retry-After (or a backoff) with a fresh budget, for up to
  ``max_age``. Items are therefore written to be safe to run again (answers are recomputed; state
  changes are conditional updates that a second run finds already made).

``ack_then(work)`` turns a function taking Bolt's listener arguments into a listener that acks at
once and runs the function on the pool; an item that fails for good tells the user (through
``respond``) in one short, true sentence.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import logging
import random
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from typing import Any

from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler

from bot.services import Services

log = logging.getLogger(__name__)

WORKERS = 8
# Total seconds the Web API calls of one work item may spend waiting on Slack before the item is
# handed to the outbox instead.
BUDGET_SECONDS = 8.0
# How long the outbox keeps re-running an item (a response_url lasts 30 minutes).
MAX_AGE_SECONDS = 30 * 60
MAX_BACKOFF_SECONDS = 60.0
MAX_QUEUED_RETRIES = 1000

# Slack answers that mean "later", not "no".
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)

_deadline = threading.local()


def budget_remaining() -> float | None:
    """Seconds left in the current work item's Web API budget (None outside a work item)."""
    deadline = getattr(_deadline, "at", None)
    return None if deadline is None else deadline - time.monotonic()


def _fits_budget(wait: float) -> bool:
    remaining = budget_remaining()
    return remaining is None or wait < remaining


def _retry_after(response: Any) -> float:
    for name, values in (getattr(response, "headers", None) or {}).items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list | tuple) else values
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return 1.0
    return 1.0


class BudgetedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Honours Retry-After, unless waiting would overrun the current work item's budget."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # noqa: ANN001
        return super()._can_retry(state=state, request=request, response=response, error=error) and (
            _fits_budget(_retry_after(response) + 1)
        )


class BudgetedServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retries Slack's 500/503 with backoff, within the current work item's budget."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # noqa: ANN001
        wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        return super()._can_retry(state=state, request=request, response=response, error=error) and (
            _fits_budget(wait)
        )


class BudgetedConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """Retries dropped connections with backoff, within the current work item's budget."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # noqa: ANN001
        wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        return super()._can_retry(state=state, request=request, response=response, error=error) and (
            _fits_budget(wait)
        )


def retry_handlers() -> list[RetryHandler]:
    """The WebClient's retry handlers: unlimited by time in jobs, budgeted inside a work item."""
    return [
        BudgetedConnectionErrorRetryHandler(max_retry_count=2),
        BudgetedRateLimitRetryHandler(max_retry_count=3),
        BudgetedServerErrorRetryHandler(max_retry_count=2),
    ]


class SlackUnavailable(Exception):
    """Slack refused for now (rate limit, outage, network); ``retry_after`` is its hint in seconds."""

    def __init__(self, what: str, retry_after: float = 1.0):
        super().__init__(what)
        self.retry_after = retry_after


def retry_hint(exc: BaseException) -> float | None:
    """Seconds to wait before trying again if ``exc`` means "Slack, later"; None if it is final."""
    if isinstance(exc, SlackUnavailable):
        return exc.retry_after
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None)
        error = response.get("error") if response is not None else None
        if status in RETRYABLE_STATUSES or error in RETRYABLE_ERRORS:
            return _retry_after(response)
        return None
    if isinstance(exc, urllib.error.HTTPError):
        return _retry_after(exc) if exc.code in RETRYABLE_STATUSES else None
    if isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError | RemoteDisconnected):
        return 1.0
    return None


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    item: _WorkItem = field(compare=False)


@dataclass
class _WorkItem:
    name: str
    fn: Callable[[], Any]
    on_failure: Callable[[str], None] | None
    first_at: float
    attempt: int = 0


class SlowWork:
    """The app's bounded pool for work done after the ack, with budget and retry outbox."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        budget_seconds: float = BUDGET_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
    ):
        self.budget_seconds = budget_seconds
        self.max_age_seconds = max_age_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iamwarden-work")
        # Slash commands compute their answers on a lane of their own, so clicks stuck on Slack's
        # rate limit cannot delay an answer that needs nothing from Slack (help, snapshot answers).
        self._answers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iamwarden-answer")
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._timer = threading.Thread(target=self._release_due, name="iamwarden-outbox", daemon=True)
        self._timer.start()

    def submit(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        on_failure: Callable[[str], None] | None = None,
        lane: str = "work",
    ) -> Future | None:
        """Run ``fn`` on the pool (``lane="answers"`` for computing a command's answer).
        ``on_failure(text)`` tells the user when it fails for good. None once shut down."""
        item = _WorkItem(name=name, fn=fn, on_failure=on_failure, first_at=time.monotonic())
        pool = self._answers if lane == "answers" else self._pool
        try:
            return pool.submit(self._run, item)
        except RuntimeError:  # shut down (the process is exiting)
            log.warning("work %s dropped: the bot is shutting down", name)
            return None

    def pending_retries(self) -> int:
        with self._cond:
            return len(self._retries)

    def shutdown(self, *, wait: bool = False) -> None:
        """Stop taking work; ``wait`` also lets the items already running finish."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._answers.shutdown(wait=wait, cancel_futures=True)

    # -- internals ----------------------------------------------------------------------------

    def _run(self, item: _WorkItem) -> Any:
        _deadline.at = time.monotonic() + self.budget_seconds
        try:
            return item.fn()
        except Exception as exc:
            hint = retry_hint(exc)
            if hint is not None and self._requeue(item, hint):
                return None
            ref = uuid.uuid4().hex[:8]
            log.error(
                "work %s failed (ref %s, attempt %s): %s: %s",
                item.name,
                ref,
                item.attempt + 1,
                type(exc).__name__,
                exc,
                exc_info=hint is None,
            )
            if item.on_failure is not None:
                text = (
                    f"Slack kept refusing for {int(self.max_age_seconds // 60)} minutes, so I gave up (reference {ref})."
                    if hint is not None
                    else f"Sorry, that failed on our side (reference {ref}). It is logged."
                )
                try:
                    item.on_failure(text)
                except Exception as tell_exc:  # Slack is still down: the log line above is the record
                    log.warning("could not tell the user that %s failed: %s", item.name, tell_exc)
            return None
        finally:
            _deadline.at = None

    def _requeue(self, item: _WorkItem, retry_after: float) -> bool:
        backoff = min(MAX_BACKOFF_SECONDS, max(retry_after, 2.0**item.attempt)) + random.random()
        if time.monotonic() + backoff - item.first_at > self.max_age_seconds:
            return False
        with self._cond:
            if self._stopped or len(self._retries) >= MAX_QUEUED_RETRIES:
                return False
            item.attempt += 1
            heapq.heappush(self._retries, _Retry(time.monotonic() + backoff, next(self._seq), item))
            self._cond.notify_all()
        log.info(
            "work %s: Slack unavailable; retrying in %.0fs (attempt %s)", item.name, backoff, item.attempt
        )
        return True

    def _release_due(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._retries or self._retries[0].due > time.monotonic()):
                    timeout = self._retries[0].due - time.monotonic() if self._retries else None
                    self._cond.wait(timeout=timeout)
                if self._stopped:
                    return
                due = heapq.heappop(self._retries).item
            try:
                self._pool.submit(self._run, due)
            except RuntimeError:  # the pool is shut down
                return


def slow_work(services: Services) -> SlowWork:
    """The app's SlowWork (made by ``iamwarden.app.build_app``; made here for code built without it)."""
    work = services.extras.get("slow_work")
    if work is None:
        work = services.extras.setdefault("slow_work", SlowWork())
    return work


def _private_reply(body: Any, respond: Any, client: Any) -> Callable[[str], None]:
    """How to tell the member who acted something privately: response_url, else an ephemeral
    message in the channel, else a DM."""
    body = body if isinstance(body, dict) else {}
    user = (body.get("user") or {}).get("id") if isinstance(body.get("user"), dict) else None
    channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
    channel_id = channel.get("id") if isinstance(channel.get("id"), str) else None

    def tell(text: str) -> None:
        if respond is not None:
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif client is not None and isinstance(user, str) and user:
            if channel_id and not channel_id.startswith("D"):
                client.chat_postEphemeral(channel=channel_id, user=user, text=text)
            else:
                client.chat_postMessage(channel=user, text=text)
        else:
            log.warning("nobody to tell: the payload names no user")

    return tell


def ack_then(
    services: Services, name: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a Bolt listener body: the listener acks at once and the body runs on ``SlowWork``.

    The body takes Bolt's usual keyword arguments (``body``, ``client``, ``respond``, ``event`` …)
    except ``ack``. It may be run again by the outbox when Slack is unavailable.
    """

    def decorate(work: Callable[..., None]) -> Callable[..., None]:
        params = list(inspect.signature(work).parameters.values())
        if any(p.name == "ack" for p in params):
            raise TypeError(f"{work.__name__}: ack_then acknowledges for you; drop the ack parameter")
        label = name or work.__name__

        @functools.wraps(work)
        def listener(**kwargs: Any) -> None:
            ack = kwargs.pop("ack", None)
            if ack is not None:
                ack()
            respond = kwargs.get("respond")
            if respond is not None and getattr(respond, "response_url", None) is None:
                respond = None  # Bolt's Respond without a response_url raises when called
            tell = _private_reply(kwargs.get("body"), respond, kwargs.get("client"))
            if "respond" in kwargs and respond is None:
                # A payload without response_url (from a modal or Home, or odd): answer privately
                # another way instead of calling None.
                kwargs["respond"] = lambda text="", **_: tell(text)

            def run() -> None:
                try:
                    work(**kwargs)
                except ValidationError as exc:
                    log.warning(
                        "ignored %s: the payload lacks what Slack always sends (%s)", label, exc.error_count()
                    )

            slow_work(services).submit(label, run, on_failure=tell)

        # Bolt passes the arguments a listener names: the body's, plus ack.
        # (Bolt reads getfullargspec().args, so they are positional-or-keyword.)
        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        listener.__signature__ = inspect.Signature(
            [inspect.Parameter("ack", positional)]
            + [p.replace(kind=positional, default=inspect.Parameter.empty) for p in params]
        )
        del listener.__wrapped__
        return listener

    return decorate
