"""The queries' stop on the demo's tour (``sandbox.demo.TOUR``)."""

from __future__ import annotations

from typing import Any

from bot.findings import latest_snapshots
from bot.identity import directory_refreshed_at
from handlers.identity import refresh_directory


def demo_tour(s: Any) -> None:
    """The demo (``sandbox.demo.TOUR``): Ada's own risks, Carlos's keys, ``can`` and ``who-can``."""
    s.say("\nAsking the bot: every answer comes from the latest scan, in the ack, with no AWS call.")
    if directory_refreshed_at(s.services.store) is None:
        count = refresh_directory(s.services, s.app.client)
        s.say(f"  (the directory job cached {count} Slack members with users.list)")
    if not latest_snapshots(s.services.store):
        done = len(s.slack.calls_to("response_url")) + 1
        s.command("/iam scan", user="U0SAM")
        s.slack.wait_for("response_url", count=done, timeout=180)  # the scan answers after the ack
        s.settle()
    s.command("/iam whoami-risks", user="U0ADA")
    s.command("/iam keys", user="U0CARLOS")
    s.command("/iam can carlos iam:PassRole", user="U0ADA")
    s.command("/iam can bob iam:CreateUser", user="U0ADA")
    s.command("/iam who-can iam:CreateUser", user="U0ADA")
    s.command("/iam findings critical", user="U0ADA")  # not on the security team: refused politely
