"""The member's part of the App Home: their open findings and access keys, with the next steps."""

from __future__ import annotations

from slack_sdk import WebClient

from bot import queries
from bot.services import Services
from handlers.queries.views import home_blocks


def home_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    """The member's risks and keys, both from one book (``handlers.home.HOME_SECTIONS`` calls it)."""
    book = queries.current_book(services)
    return home_blocks(
        queries.member_risks(services, user_id, book=book),
        queries.member_keys(services, user_id, book=book),
        services.clock.now(),
    )
