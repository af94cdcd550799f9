"""Every action_id, callback_id and block_id the bot uses, in one place (no magic strings).

A test proves each ActionId and CallbackId has a listener registered on the app.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    # Feature modules add members here; each must have a listener (tests/test_manifest.py).
    HOME_REFRESH = "home_refresh"


class CallbackId(StrEnum):
    pass


class BlockId(StrEnum):
    pass
