"""The Slack surface: parse, authorize, call bot/, render. One package per feature (bot/features.py)."""

from __future__ import annotations

import importlib

from slack_bolt import App

from bot.features import modules
from bot.services import Services

# Each module exposes register(app, services): every feature's ``slack`` modules (bot/features.py).
MODULES = modules("slack")


def register_all(app: App, services: Services) -> None:
    for name in MODULES:
        importlib.import_module(name).register(app, services)
