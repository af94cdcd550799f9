"""The ``/iam`` slash command: one registry routes subcommands and generates the help from itself.

Feature modules declare subcommands with ``@subcommand(...)`` at import time. A handler takes the
parsed ``SlashCommand`` and a ``CommandIO`` and returns the ``Message`` to show (or None when it
answered another way, e.g. by opening a modal). Fast handlers' replies go back in the ack itself
(no Web API call); ``slow=True`` handlers are acked at once and answer through ``respond``.
"""

from __future__ import annotations

import difflib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import Services
from handlers.blocks import Message, code, context, escape, header, section
from handlers.models import SlashCommand

log = logging.getLogger(__name__)


class UserError(Exception):
    """Something the user can fix; the message is shown to them as is (already escaped)."""


@dataclass
class CommandIO:
    """What a subcommand may do besides returning a message."""

    services: Services
    client: WebClient
    respond: Respond | None = None

    def is_security_team(self, user_id: str) -> bool:
        """Whether the member is on the configured security team (ids and user groups)."""
        team = self.services.config.slack.security_team
        if user_id in team:
            return True
        handles = [h for h in team if h.startswith("@") or h.startswith("S")]
        if not handles:
            return False
        from handlers.directory import usergroup_members  # late import: optional feature module

        return any(user_id in usergroup_members(self.client, self.services, h) for h in handles)


Handler = Callable[[SlashCommand, CommandIO], Message | None]


@dataclass
class Subcommand:
    name: str
    usage: str
    summary: str
    handler: Handler
    team_only: bool = False
    slow: bool = False
    working_text: str = "Working on it…"
    aliases: tuple[str, ...] = ()
    # Slow commands only: checks that need no Web API or AWS call, run before the ack so a mistake is
    # answered in the ack itself (raise UserError); the handler then runs after the ack.
    validate: Handler | None = None

    def usage_message(self, problem: str | None = None) -> Message:
        first = f"{escape(problem)} " if problem else ""
        return Message(
            text=f"{first}Usage: /iam {self.usage}",
            blocks=[section(f"{first}Usage: {code('/iam ' + self.usage)}")],
        )


@dataclass
class CommandRegistry:
    commands: dict[str, Subcommand] = field(default_factory=dict)

    def add(self, sub: Subcommand) -> Subcommand:
        for name in (sub.name, *sub.aliases):
            if name in self.commands:
                raise ValueError(f"subcommand {name!r} registered twice")
            self.commands[name] = sub
        return sub

    def get(self, name: str) -> Subcommand | None:
        return self.commands.get(name)

    def visible(self) -> list[Subcommand]:
        seen: dict[str, Subcommand] = {}
        for sub in self.commands.values():
            seen.setdefault(sub.name, sub)
        return sorted(seen.values(), key=lambda s: s.name)

    def closest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self.commands), n=3, cutoff=0.5)


COMMANDS = CommandRegistry()


def subcommand(
    name: str,
    *,
    usage: str | None = None,
    summary: str,
    team_only: bool = False,
    slow: bool = False,
    working_text: str = "Working on it…",
    aliases: tuple[str, ...] = (),
    validate: Handler | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a ``/iam <name>`` subcommand. The help lists it from here, so it never drifts."""

    def register_handler(fn: Handler) -> Handler:
        COMMANDS.add(
            Subcommand(
                name=name,
                usage=usage or name,
                summary=summary,
                handler=fn,
                team_only=team_only,
                slow=slow,
                working_text=working_text,
                aliases=aliases,
                validate=validate,
            )
        )
        return fn

    return register_handler


def help_message(registry: CommandRegistry = COMMANDS, *, problem: str | None = None) -> Message:
    lines = [
        f"{code('/iam ' + sub.usage)}: {escape(sub.summary)}"
        + (" _(security team)_" if sub.team_only else "")
        for sub in registry.visible()
    ]
    blocks = []
    if problem:
        blocks.append(section(problem))
    blocks += [header("iamwarden: IAM hygiene and just-in-time access"), section("\n".join(lines))]
    blocks.append(
        context(
            "Answers come from the latest stored scan; nothing here changes AWS without a button and a confirmation."
        )
    )
    fallback = (
        (problem + " " if problem else "")
        + "iamwarden commands: "
        + ", ".join(s.name for s in registry.visible())
    )
    return Message(text=fallback, blocks=blocks)


@subcommand("help", summary="Show this list of commands.")
def show_help(cmd: SlashCommand, io: CommandIO) -> Message:
    return help_message()


def _error_reference() -> str:
    return uuid.uuid4().hex[:8]


def dispatch(cmd: SlashCommand, io: CommandIO, ack: Ack, respond: Respond) -> None:
    """Route one ``/iam`` invocation. Always acks exactly once, always answers something true."""
    name = cmd.subcommand
    if not name:
        ack(**help_message().as_kwargs(), response_type="ephemeral")
        return
    sub = COMMANDS.get(name)
    if sub is None:
        suggestion = COMMANDS.closest(name)
        hint = f" Did you mean {', '.join(code(s) for s in suggestion)}?" if suggestion else ""
        problem = f"Unknown command {code(name)}.{hint}"
        ack(**help_message(problem=problem).as_kwargs(), response_type="ephemeral")
        return
    if sub.team_only and not io.is_security_team(cmd.user_id):
        ack(
            text=f"`/iam {sub.name}` is for the security team. Ask them if you need this answer.",
            response_type="ephemeral",
        )
        return
    if sub.slow and sub.validate is not None:
        try:
            sub.validate(cmd, io)
        except UserError as exc:
            ack(text=str(exc), blocks=[section(str(exc))], response_type="ephemeral")
            return
    if sub.slow:
        ack(text=sub.working_text, response_type="ephemeral")
    io.respond = respond
    try:
        reply = sub.handler(cmd, io)
    except UserError as exc:
        reply = Message(text=str(exc), blocks=[section(str(exc))])
    except Exception:
        ref = _error_reference()
        log.exception("subcommand %s failed (ref %s, user %s)", sub.name, ref, cmd.user_id)
        reply = Message(
            text=f"Sorry, `/iam {sub.name}` failed on our side (reference {ref}). The error is logged; nothing was changed."
        )
    if sub.slow:
        if reply is not None:
            _respond(respond, reply)
    elif reply is None:
        ack()
    else:
        ack(**reply.as_kwargs(), response_type="ephemeral" if reply.ephemeral else "in_channel")


def _respond(respond: Respond, reply: Message) -> None:
    kwargs: dict[str, Any] = reply.as_kwargs()
    respond(**kwargs, response_type="ephemeral" if reply.ephemeral else "in_channel", replace_original=False)


def register(app: App, services: Services) -> None:
    @app.command("/iam")
    def on_iam(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
        cmd = SlashCommand.model_validate(body)
        dispatch(cmd, CommandIO(services=services, client=client), ack, respond)
