"""The demo chat's identity steps: cache the directory as ``iamwarden run`` does, and ``deactivate
NAME`` (Slack deactivates a person and sends ``user_change``). The demo hands in its own people:
the product never imports the sandbox."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from handlers.identity.jobs import refresh_directory


def demo_cache_directory(session: Any) -> None:
    """The demo chat caches the directory itself, as ``iamwarden run`` does before it serves."""
    count = refresh_directory(session.services, session.app.client)
    session.say(f"  (cached {count} Slack members with users.list, as `iamwarden run` does at start-up)")


def demo_deactivate(session: Any, name: str, people: Iterable[Any]) -> None:
    """``deactivate NAME`` in the demo chat: Slack deactivates the person and sends user_change.
    ``people``: the demo's directory (``name``, ``slack_id``, ``real_name`` each)."""
    people = list(people)
    person = next((p for p in people if name.lower() in (p.name, p.slack_id.lower())), None)
    if person is None:
        session.say("unknown person; try " + ", ".join(p.name for p in people))
        return
    session.slack.deactivate_user(person.slack_id)
    session.say(f"\n── Slack deactivates {person.real_name}; Slack sends the bot a user_change event ──")
    session.sender.event({"type": "user_change", "user": session.slack.user(person.slack_id)})
    session.settle(quiet_for=1.0, limit=30.0)
