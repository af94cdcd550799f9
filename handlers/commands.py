"""The ``/iam`` slash command: one registry routes subcommands and generates the help from itself.

Feature modules declare subcommands with ``@subcommand(...)`` at import time. A handler takes the
parsed ``SlashCommand`` and a ``CommandIO`` and returns the ``Message`` to show (or None when it
answered another way, e.g. by opening a modal). Fast handlers' replies go back in the ack itself
(no Web API call); ``slow=True`` handlers are acked at once and answer through ``respond``.
"""

from __future__ import annotations

import difflib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import Services
from handlers.background import RETRYABLE_STATUSES, SlackUnavailable, retry_hint, slow_work
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
    # Set by dispatch: sends a message as the answer now (in the ack if it has not gone out).
    _answer_now: Callable[[Message], None] | None = None

    def answer_now(self, message: Message) -> None:
        """Answer the member now, then keep working: validate, ``answer_now(...)``, then make the
        Web API calls (they go out after the ack) and return None or a follow-up message."""
        if self._answer_now is None:
            raise RuntimeError("answer_now is only available while dispatching a command")
        self._answer_now(message)

    def is_security_team(self, user_id: str, *, strict: bool = False) -> bool:
        """Whether the member is on the configured security team (ids and user groups); ``strict``
        raises DirectoryError when Slack cannot list a group instead of answering no."""
        team = self.services.config.slack.security_team
        if user_id in team:
            return True
        handles = [h for h in team if h.startswith("@") or h.startswith("S")]
        if not handles:
            return False
        from handlers.identity import usergroup_members  # late: handlers.identity imports this module

        return any(
            user_id in usergroup_members(self.client, self.services, h, strict=strict) for h in handles
        )

    def known_security_team(self, user_id: str) -> bool | None:
        """``is_security_team`` from what needs no Web API call (ids, cached groups): True/False,
        or None when only Slack can tell."""
        team = self.services.config.slack.security_team
        if user_id in team:
            return True
        handles = [h for h in team if h.startswith("@") or h.startswith("S")]
        from handlers.identity import cached_usergroup_members  # late, as above

        unknown = False
        for handle in handles:
            members = cached_usergroup_members(self.services, handle)
            if members is None:
                unknown = True
            elif user_id in members:
                return True
        return None if unknown else False


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


# A quick, quiet subcommand (no Web API call) is answered in the ack itself if it finishes within
# this long; otherwise the ack says "working…" and the answer follows through response_url.
FAST_ANSWER_SECONDS = 1.5


class _Answer:
    """Who answers one invocation: the ack (quick and quiet) or respond (after "working…").

    Acks exactly once, from whichever thread gets there first, and before any Web API call."""

    def __init__(self, ack: Ack, working_text: str):
        self._ack = ack
        self._working_text = working_text
        self._lock = threading.Lock()
        self._state = "pending"  # -> "answered" (reply went in the ack) or "working"
        self._settled = threading.Event()

    def working(self) -> None:
        with self._lock:
            if self._state == "pending":
                self._ack(text=self._working_text, response_type="ephemeral")
                self._state = "working"
                self._settled.set()

    def in_ack(self, reply: Message | None) -> bool:
        """Put ``reply`` in the ack if it has not gone out yet; False when respond must carry it."""
        with self._lock:
            if self._state != "pending":
                return False
            if reply is None:
                self._ack()
            else:
                self._ack(**reply.as_kwargs(), response_type="ephemeral" if reply.ephemeral else "in_channel")
            self._state = "answered"
            self._settled.set()
            return True

    def wait(self, seconds: float) -> None:
        if not self._settled.wait(seconds):
            self.working()


# Look-ups that change nothing in Slack may run while the ack is pending (the listener thread
# acks within FAST_ANSWER_SECONDS whatever they do), so "is this member on the security team"
# can still be answered in the ack. Every other method acknowledges first.
READ_ONLY_METHODS = frozenset(
    {"usergroups.list", "usergroups.users.list", "users.info", "users.lookupByEmail", "conversations.info"}
)


class _AckBeforeWebApi(WebClient):
    """The command's WebClient: a call that writes to Slack acknowledges ("working…") before it goes out."""

    def __init__(self, client: WebClient, before: Callable[[], None]):
        super().__init__(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            ssl=client.ssl,
            proxy=client.proxy,
            headers=client.headers,
            logger=client.logger,
            retry_handlers=client.retry_handlers,
        )
        self._before = before

    def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:
        if api_method not in READ_ONLY_METHODS:
            self._before()
        return super().api_call(api_method, *args, **kwargs)


def _run_subcommand(
    sub: Subcommand, cmd: SlashCommand, io: CommandIO, working: Callable[[], None]
) -> Message | None:
    # Who may ask is settled before "working…" is shown (a refusal goes in the ack when it can).
    if sub.team_only and not io.is_security_team(cmd.user_id):
        return Message(text=f"`/iam {sub.name}` is for the security team. Ask them if you need this answer.")
    if sub.validate is not None:
        # Validation answers in the ack, before "working…" is shown.
        try:
            sub.validate(cmd, io)
        except UserError as exc:
            return Message(text=str(exc), blocks=[section(str(exc))])
    if sub.slow:
        working()
    try:
        return sub.handler(cmd, io)
    except UserError as exc:
        return Message(text=str(exc), blocks=[section(str(exc))])
    except Exception as exc:
        if retry_hint(exc) is not None:
            raise  # Slack is unavailable: the outbox runs the command again later
        ref = _error_reference()
        log.exception("subcommand %s failed (ref %s, user %s)", sub.name, ref, cmd.user_id)
        return Message(
            text=f"Sorry, `/iam {sub.name}` failed on our side (reference {ref}). The error is logged; nothing was changed."
        )


def dispatch(cmd: SlashCommand, io: CommandIO, ack: Ack, respond: Respond) -> None:
    """Route one ``/iam`` invocation. Always acks exactly once, within Slack's 3 seconds, and before
    any Web API call; always answers something true.

    The subcommand runs on the app's SlowWork pool, never on the thread that acks: a quick quiet
    answer goes in the ack; ``slow=True`` subcommands, ones that call the Web API, and ones that take
    longer than FAST_ANSWER_SECONDS are acked "working…" and answer through ``respond``.
    """
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
    answer = _Answer(ack, sub.working_text)
    if io.client is not None:
        io.client = _AckBeforeWebApi(io.client, answer.working)

    def respond_after_ack(*args: Any, **kwargs: Any) -> Any:
        answer.working()
        return _checked(respond(*args, **kwargs))

    io.respond = respond_after_ack
    io._answer_now = lambda message: None if answer.in_ack(message) else _respond(respond, message)
    work = slow_work(io.services)

    def run() -> None:
        reply = _run_subcommand(sub, cmd, io, answer.working)
        if reply is not None and not answer.in_ack(reply):
            # Its own work item, so a rate-limited reply is retried without recomputing the answer.
            work.submit(f"/iam {sub.name} reply", lambda: _respond(respond, reply))

    work.submit(
        f"/iam {sub.name}",
        run,
        on_failure=lambda text: respond(text=text, response_type="ephemeral", replace_original=False),
        lane="answers",
    )
    answer.wait(FAST_ANSWER_SECONDS)


def _checked(result: Any) -> Any:
    """response_url answers with a status instead of raising: a 429 or 5xx means "later"."""
    status = getattr(result, "status_code", None)
    if status in RETRYABLE_STATUSES:
        headers = getattr(result, "headers", None) or {}
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        if isinstance(retry_after, list | tuple):
            retry_after = retry_after[0] if retry_after else None
        try:
            wait = float(retry_after) if retry_after is not None else 1.0
        except ValueError:
            wait = 1.0
        raise SlackUnavailable(f"response_url answered {status}", retry_after=wait)
    return result


def _respond(respond: Respond, reply: Message) -> None:
    kwargs: dict[str, Any] = reply.as_kwargs()
    _checked(
        respond(
            **kwargs, response_type="ephemeral" if reply.ephemeral else "in_channel", replace_original=False
        )
    )


def register(app: App, services: Services) -> None:
    @app.command("/iam")
    def on_iam(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
        try:
            cmd = SlashCommand.model_validate(body)
        except ValidationError:
            log.warning("ignored a /iam payload without the fields Slack always sends")
            ack(text="Sorry, I could not read that command.", response_type="ephemeral")
            return
        dispatch(cmd, CommandIO(services=services, client=client), ack, respond)
