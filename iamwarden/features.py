"""Imports each feature's modules by kind, from the one list in ``bot/features.py``."""

from __future__ import annotations

import importlib
from types import ModuleType

from bot.features import FEATURES, Feature, commands, modules

__all__ = ["CLI_COMMANDS", "FEATURES", "Feature", "load"]

# CLI command name -> the module that declares it with @command. The CLI imports only the chosen
# command's module, so `iamwarden scan` loads no Slack library, scheduler or web server.
CLI_COMMANDS: dict[str, str] = commands()


def load(kind: str) -> list[ModuleType]:
    """Import every feature's modules of one kind (``slack``, ``jobs``, ``tables``, ``checks``), so
    their registrations (listeners, ``@job``, ``@migrations``, ``@check``) have run."""
    return [importlib.import_module(name) for name in modules(kind)]
