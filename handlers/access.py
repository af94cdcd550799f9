"""Slack surface for the access feature (being built)."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services


def register(app: App, services: Services) -> None:
    """Registers this feature's listeners."""
