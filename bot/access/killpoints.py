"""Test-only pauses between the steps of a grant, so a test can SIGKILL ``iamwarden run`` there.

Honoured only when ``IAMWARDEN_TEST_PAUSE_AT`` names the step (read once into Settings); then the
process writes ``<db>.paused-<step>`` and sleeps until it is killed. Unset, this does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.services import Services

STEPS = ("approved", "assume_started", "assumed", "granted")


def marker_path(db: Path | str, step: str) -> Path:
    return Path(f"{db}.paused-{step}")


def pause_at(services: Services, step: str) -> None:
    wanted = getattr(services.settings, "test_pause_at", None)
    if not wanted or wanted != step:
        return
    marker_path(services.settings.db, step).write_text(str(os.getpid()))
    while True:  # until SIGKILL: this is the crash the test makes
        time.sleep(3600)
