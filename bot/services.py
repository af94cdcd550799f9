"""The bot's shared parts, built once at start-up and handed to every handler and job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.aws import AwsFactory
from bot.clock import Clock, SystemClock
from bot.settings import Settings
from bot.store import Store, open_store


@dataclass
class Services:
    settings: Settings
    store: Store
    aws: AwsFactory
    clock: Clock = field(default_factory=SystemClock)
    # Feature modules may park long-lived helpers here (e.g. a scheduler); keyed by feature name.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self):  # noqa: ANN201 - the TOML Config
        return self.settings.config

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> Services:
        return cls(
            settings=settings,
            store=open_store(settings.db),
            aws=AwsFactory(region=settings.aws_region),
            clock=clock or SystemClock(),
        )
