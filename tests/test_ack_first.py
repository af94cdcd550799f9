"""Ack first, always: while Slack's Web API refuses (429 / 503), every request is still acknowledged
within Slack's 3 seconds, and the work they started completes once Slack recovers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from handlers.commands import COMMANDS
from handlers.ids import ActionId

PROBES = ["help", "whoami-risks", "grants", "keys"]
REFRESHERS = ["U0ALICE", "U0BOB", "U0SEC1"]


def _timed(fn, *args, **kwargs):
    started = time.monotonic()
    response = fn(*args, **kwargs)
    return response, time.monotonic() - started


def _working_texts() -> set[str]:
    return {sub.working_text for sub in COMMANDS.visible()}


@pytest.mark.parametrize(("error", "status"), [("ratelimited", 429), ("service_unavailable", 503)])
def test_every_request_is_acked_during_a_slack_outage_and_the_work_completes_after(bot, error, status):
    outage_seconds = 30
    bot.slack.fail_for(outage_seconds, error=error, status=status, retry_after=5)
    started = time.monotonic()
    acks: list[tuple[str, int, float, dict | None]] = []
    lock = threading.Lock()

    def record(what: str, response, elapsed: float) -> None:
        with lock:
            acks.append((what, response.status, elapsed, response.json()))

    def click_refresh(user: str) -> None:
        response, elapsed = _timed(bot.sender.block_action, user, ActionId.HOME_REFRESH.value, "x")
        record(f"refresh {user}", response, elapsed)

    def open_home(user: str) -> None:
        response, elapsed = _timed(bot.sender.app_home_opened, user)
        record(f"home {user}", response, elapsed)

    def command(user: str, text: str) -> None:
        response, elapsed = _timed(bot.command, user, text)
        record(f"/iam {text}", response, elapsed)

    with ThreadPoolExecutor(max_workers=12) as pool:
        # First the work that gets stuck on Slack (clicks, a Home, a request that posts)…
        futures = [pool.submit(click_refresh, user) for user in REFRESHERS]
        futures.append(pool.submit(open_home, "U0LEAD1"))
        futures.append(pool.submit(command, "U0ALICE", "request prod-admin 1h deploy hotfix"))
        time.sleep(2)
        # …then probes spread over the outage, each of which must still be acked in time.
        while time.monotonic() - started < outage_seconds - 2:
            for text in PROBES:
                futures.append(pool.submit(command, "U0BOB", text))
            time.sleep(3)
        for f in futures:
            f.result(timeout=60)

    assert len(acks) >= 5 + 2 * len(PROBES)
    late = [(what, status, round(elapsed, 2)) for what, status, elapsed, _ in acks if elapsed >= 3.0]
    failed = [(what, status) for what, status, _, _ in acks if status != 200]
    assert late == [] and failed == []
    # /iam help never needs Slack: it is answered in the ack itself, outage or not.
    helps = [body for what, _, _, body in acks if what == "/iam help"]
    assert helps and all("/iam help" in (body or {}).get("text", "") + str(body) for body in helps)

    # Once Slack recovers, the work finishes: each member's Home is published…
    def published_for(user: str) -> bool:
        return any(
            c.status == 200 and c.response.get("ok") and c.args.get("user_id") == user
            for c in bot.slack.calls_to("views.publish")
        )

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(published_for(u) for u in [*REFRESHERS, "U0LEAD1"]):
        time.sleep(0.5)
    assert all(published_for(u) for u in [*REFRESHERS, "U0LEAD1"])
    # …and every command that was acked "working…" gets its answer through response_url.
    working = sum(1 for _, _, _, body in acks if (body or {}).get("text") in _working_texts())
    while time.monotonic() < deadline:
        delivered = {
            c.key
            for c in bot.slack.calls_to("response_url")
            if c.status == 200 and (c.key or "").startswith("commands-")
        }
        if len(delivered) >= working:
            break
        time.sleep(0.5)
    assert len(delivered) >= working
    # The requester was told something definite about their request (what the access flow does
    # when Slack refuses the approvals post is the access domain's; here: never left unanswered).
    request_acks = [body for what, _, _, body in acks if what.startswith("/iam request")]
    assert request_acks and all(body for body in request_acks)


def test_a_stuck_web_api_call_never_holds_the_threads_that_ack(bot):
    """More stuck clicks than the work pool has threads: commands are still acked in time."""
    bot.slack.fail_for(20, retry_after=5, methods=("views.publish",))
    with ThreadPoolExecutor(max_workers=24) as pool:
        clicks = [
            pool.submit(bot.sender.block_action, "U0ALICE", ActionId.HOME_REFRESH.value, "x")
            for _ in range(20)
        ]
        time.sleep(1)
        probes = [pool.submit(_timed, bot.command, "U0BOB", "help") for _ in range(10)]
        for f in clicks:
            assert f.result(timeout=30).status == 200
        for f in probes:
            response, elapsed = f.result(timeout=30)
            assert response.status == 200 and elapsed < 3.0
            assert "/iam help" in str(response.json())
