"""Fixtures of the access tests: a federation stand-in and a bot with the prod-admin role in moto."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.federation import FederationStandIn
from tests.access.support import AssumeRoleLog, create_role, make_config


@pytest.fixture
def federation():
    stand_in = FederationStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def jit(make_bot, federation, aws):
    """A bot with the prod-admin role in moto and a federation stand-in; returns (bot, sts log)."""

    def start(**changes: Any):
        create_role(max_session=changes.pop("max_session", 7200))
        bot = make_bot(make_config(federation, **changes))
        return bot, AssumeRoleLog(bot.services)

    return start
