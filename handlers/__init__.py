"""The Slack surface: parse, authorize, call bot/, render. One module per surface or feature."""

from __future__ import annotations

import importlib

from slack_bolt import App

from bot.services import Services

# Each module exposes register(app, services). Order matters only for readability.
MODULES = (
    "handlers.commands",
    "handlers.home",
    "handlers.queries",
    "handlers.digest",
    "handlers.access",
    "handlers.alerts",
    "handlers.identity",
)


def register_all(app: App, services: Services) -> None:
    for name in MODULES:
        importlib.import_module(name).register(app, services)
