"""Fixtures of the digest tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.findings import Severity
from tests.digest.support import finding, store_scan


@pytest.fixture
def two_scans(bot, clock):
    """Yesterday: carlos (old key) and ada (no MFA). Today: carlos fixed, ada still, dana new (critical)."""
    yesterday = clock.now() - timedelta(days=1)
    carlos = finding(
        "ACCESS_KEY_NOT_ROTATED", "carlos", Severity.MEDIUM, detail_key="access_key_1", owner="U0BOB"
    )
    ada = finding("USER_CONSOLE_NO_MFA", "ada", Severity.HIGH, owner="U0ALICE")
    dana = finding("OFFBOARDED_USER_ACTIVE", "dana", Severity.CRITICAL, owner="U0DANA")
    root = finding("ROOT_MFA_DISABLED", "root", Severity.CRITICAL)
    store_scan(bot, [carlos, ada, root], at=yesterday - timedelta(days=3))
    store_scan(bot, [carlos, ada, root], at=yesterday)
    store_scan(bot, [ada, dana, root])
    return {"carlos": carlos, "ada": ada, "dana": dana, "root": root}
