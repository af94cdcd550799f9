"""The one place the access domain announces things; the Slack side implements it.

Following Teleport's access plugins: the core decides, the messaging side only renders. Every
state change of a request reaches ``request_changed``, whoever made it (a click, a job, a restart),
so the request's messages always show what SQLite holds.
"""

from __future__ import annotations

from typing import Protocol

from bot.access.model import AccessRequest


class AlertFailed(Exception):
    """The security alert could not be posted; the message says why in words a person can act on
    (for example "the bot is not in #security")."""


class Notifier(Protocol):
    def alert_break_glass(self, request: AccessRequest) -> None:
        """Post the security alert for a break-glass use, before anything is granted. Raises
        AlertFailed when Slack would not take it (after its retries)."""
        ...

    def request_changed(self, request_id: str) -> None:
        """Re-render every message of the request (and of its extensions) from stored state. Must
        not raise: what Slack refuses is kept for the sweep to retry."""
        ...


class SilentNotifier:
    """For callers with nobody to tell (the CLI, unit tests): alerts fail closed."""

    def alert_break_glass(self, request: AccessRequest) -> None:
        raise AlertFailed("no Slack connection to alert the security team")

    def request_changed(self, request_id: str) -> None:
        return None
