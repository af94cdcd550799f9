"""The demo tour's digest step."""

from __future__ import annotations

from typing import Any

from bot.scan import scan_accounts
from handlers.client import build_client
from handlers.digest.delivery import post_digest
from handlers.identity import refresh_directory


def demo_tour(session: Any) -> None:
    """The demo tour's digest step: cache the Slack directory, scan, post the digest, then Sam (security
    team) uses Disable access on Dana, who left (deactivated in Slack) with an active access key."""

    services = session.services
    client = build_client(services)
    session.say("\n── The daily digest: posted on schedule by `iamwarden run`; here, right now ──")
    refresh_directory(services, client)
    scan_accounts(services, directory=client)
    post_digest(services, client)
    session.settle()
    session.say(
        "\nSam, on the security team, presses Disable access on Dana's finding and confirms the dialog:"
    )
    session.click_label("Disable access", user="U0SAM")
