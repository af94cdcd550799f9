"""The Slack Web API client the bot posts with: retries Slack's rate limits, 5xx and dropped connections."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.services import Services
from handlers.background import retry_handlers


def build_client(services: Services) -> WebClient:
    """A WebClient that retries Slack's rate limits (honouring Retry-After), 5xx and dropped connections.

    Inside a listener's slow work the retries stop at the work item's time budget (then the outbox
    takes over); in jobs they honour Retry-After as before."""
    settings = services.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(
        token=token, base_url=settings.slack_api_url, timeout=15, retry_handlers=retry_handlers()
    )
