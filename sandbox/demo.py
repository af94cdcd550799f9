"""``iamwarden demo``: the whole bot on its embedded default, in a terminal.

An in-process AWS (moto) seeded with the demo company, a local Slack Web API stand-in, and the bot
itself in HTTP mode on loopback, driven by correctly signed requests exactly as Slack would send
them. With a terminal it is a chat: type ``/iam …`` as a demo person, click buttons by number.
Without one (stdin not a TTY) it runs a scripted tour and exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from bot import access
from bot.access import REVOCATION_POLICY_NAME
from bot.clock import FrozenClock
from bot.jobs import JOBS, crontab_trigger
from bot.services import Services
from bot.settings import Config, load_settings, parse_duration
from iamwarden.app import Health, HttpServer, build_app, build_client, wsgi_app
from iamwarden.features import load
from sandbox.access_analyzer import start_demo_access_analyzer
from sandbox.aws import MotoSandbox
from sandbox.demo_account import DEMO_CONFIG, PEOPLE, seed_demo_account
from sandbox.federation import FederationStandIn
from sandbox.render import Button, input_fields, render_message, render_view
from sandbox.slack_api import FakeSlack
from sandbox.slack_sender import SlackSender
from sandbox.tour import alerts as alerts_tour
from sandbox.tour import digest as digest_tour
from sandbox.tour import identity as identity_tour
from sandbox.tour import queries as queries_tour
from sandbox.tour import scan as scan_tour

SIGNING_SECRET = "demo-signing-secret"  # noqa: S105 - the local stand-in's, not a real secret
BOT_TOKEN = "xoxb-testing"  # noqa: S105

# The demo workspace's channels, by id.
_CHANNELS = {"C0APPROVALS": "#approvals", "C0SECURITY": "#security", "C0GENERAL": "#general"}

# Web API methods whose calls are shown to the person at the terminal.
_SHOWN = {
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "response_url",
    "views.open",
    "views.update",
    "views.push",
    "views.publish",
    "files.completeUploadExternal",
}


@dataclass
class OpenModal:
    """A modal Slack is showing to ``user``: the view as Slack stored it (with its id)."""

    view: dict
    user: str


@dataclass
class DemoSession:
    """A running demo: sandbox AWS, fake Slack, the bot, and a sender acting as a demo person."""

    out: TextIO = sys.stdout
    workdir: Path | None = None
    user: str = "U0ADA"
    buttons: list[Button] = field(default_factory=list)
    # Terminal colour (bold, code, severity): on a TTY unless NO_COLOR is set (no-color.org).
    colour: bool = False
    # In the chat the terminal already shows what was typed: do not echo it a second time.
    echo: bool = True
    # The modal the bot last opened and not yet submitted or closed, with who it was opened for.
    modal: OpenModal | None = None
    _seen: int = 0
    _show_lock: threading.Lock = field(default_factory=threading.Lock)
    _actor: str = ""

    def start(self) -> DemoSession:
        self.workdir = self.workdir or Path(tempfile.mkdtemp(prefix="iamwarden-demo-"))
        self.sandbox = MotoSandbox().start()
        # moto's backends live in the process, not the server: a second demo in one process (tests)
        # starts from an empty account like the first.
        self.sandbox.reset()
        self.sandbox.apply_env()
        # moto has no Access Analyzer: a local stand-in (the scan would otherwise report it unknown).
        self.access_analyzer = start_demo_access_analyzer()
        self.slack = FakeSlack(bot_token=BOT_TOKEN).start()
        for person in PEOPLE:
            self.slack.add_user(
                person.slack_id,
                name=person.name,
                real_name=person.real_name,
                email=person.email,
                deleted=person.deleted,
            )
        self.group_names = {self.slack.set_usergroup("security", ["U0SAM"])["id"]: "security"}
        settings = load_settings(
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=self.slack.base_url,
            db=self.workdir / "iamwarden.db",
            config=Config.model_validate(DEMO_CONFIG),
        )
        # The demo's own clock: `wait 1h` moves it and runs the jobs that fall due (expiry, window
        # end, digest, alerts), instead of waiting an hour.
        self.clock = FrozenClock(datetime.now().astimezone().replace(microsecond=0))
        self.services = Services.from_settings(settings, clock=self.clock)
        # Console links come from a loopback stand-in for AWS's federation endpoint (no network).
        self.federation = FederationStandIn().start()
        self.services.config.access.federation_url = self.federation.url
        seed_demo_account(self.services.aws, self.sandbox, now=self.services.clock.now())
        self.app = build_app(self.services)
        self.server = HttpServer(wsgi_app(self.app, Health(self.services))).start()
        self.sender = SlackSender(self.server.url + "/slack/events", SIGNING_SECRET, fake_slack=self.slack)
        self._seen = len(self.slack.calls)
        # Like `iamwarden run`, the demo knows who is who before the first answer (tour and chat).
        identity_tour.demo_cache_directory(self)
        return self

    def stop(self) -> None:
        self._watching = False
        for part in ("server", "slack", "federation", "access_analyzer", "sandbox"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.stop()

    # -- acting as a person -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def command(self, text: str, *, user: str | None = None) -> None:
        user = self._actor = user or self.user
        if self.echo:
            self.say(f"\n{self.name_of(user)}> {text}")
        words = text.strip().split(None, 1)
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        if command != "/iam":
            # Slack itself answers an unknown slash command; the app never sees it.
            self.say(
                f"  Slack: {command} is not a valid command. This app's command is /iam (try /iam help)."
            )
            return
        response = self.sender.command(user, rest, command=command, channel_id="C0GENERAL")
        self._show_http(response)
        self.settle()

    def click(self, number: int, *, user: str | None = None) -> None:
        user = self._actor = user or self.user
        button = next((b for b in self.buttons if b.number == number), None)
        if button is None:
            self.say(f"(no button {number})")
            return
        self.say(f"\n{self.name_of(user)} clicks [{number}] {button.text}")
        if button.url:
            # A link button opens the browser in Slack; here it is the address to open.
            self.say(f"  (opens {button.url})")
            return
        message = getattr(button, "message", None)
        response = self.sender.block_action(
            user,
            button.action_id,
            button.value,
            block_id=button.block_id,
            channel_id=getattr(button, "channel", None) or "C0GENERAL",
            message=message,
        )
        self._show_http(response)
        self.settle()

    def click_label(self, label: str, *, user: str | None = None) -> bool:
        for b in reversed(self.buttons):
            if label.lower() in b.text.lower():
                self.click(b.number, user=user)
                return True
        self.say(f"(no button like {label!r})")
        return False

    def name_of(self, user_id: str) -> str:
        return next((p.name for p in PEOPLE if p.slack_id == user_id), user_id)

    def display_names(self) -> dict[str, str]:
        """Slack shows members and groups by name, never by id: @ada, @security."""
        names = {p.slack_id: p.name for p in PEOPLE}
        names[self.slack.bot_user_id] = "iamwarden"
        names |= {channel: name.lstrip("#") for channel, name in _CHANNELS.items()}
        return names | getattr(self, "group_names", {})

    def home(self, *, user: str | None = None) -> None:
        """Open the App Home tab as ``user`` (Slack sends app_home_opened; the bot publishes it)."""
        user = self._actor = user or self.user
        self.say(f"\n{self.name_of(user)} opens the iamwarden App Home")
        self._show_http(self.sender.app_home_opened(user))
        self.settle()

    # -- modals: filled in at the terminal, submitted or cancelled as Slack would -------------------

    def fill_modal(self, read: Callable[[str], str | None]) -> bool:
        """Ask for each input of the open modal (label, numbered options), then send Slack's
        ``view_submission`` signed through the same app; ``cancel`` closes it instead (Slack tells
        the app with ``view_closed`` only when the modal asked for it). Errors the listener answers
        with (``response_action: errors``) are shown and those inputs asked for again.
        Returns False when the input ends."""
        modal, self.modal = self.modal, None
        if modal is None:
            return True
        view, user = modal.view, modal.user
        fields = input_fields(view)
        names = self.display_names()
        values: dict[str, dict] = {}
        errors: dict[str, str] = {}
        self.say(f"  (the modal is open for @{self.name_of(user)}: answer each input; `cancel` closes it)")
        while True:
            for f in fields:
                if errors and f.block_id not in errors and f.block_id in values:
                    continue
                if f.block_id in errors:
                    self.say(f"  ⚠ {f.label}: {errors[f.block_id]}")
                while True:
                    self.say(f"  {f.question(names)}")
                    answer = read("  > ")
                    if answer is None:
                        return False
                    if self.echo:  # no terminal showed what was typed: show it once
                        self.say(answer)
                    if answer.strip().lower() == "cancel":
                        self._close_modal(view, user)
                        return True
                    try:
                        values[f.block_id] = {f.action_id: f.answer(answer, names)}
                        break
                    except ValueError as exc:
                        self.say(f"  ⚠ {exc}")
            self._actor = user
            self.say(f"\n{self.name_of(user)} submits [{_plain(view.get('submit')) or 'Submit'}]")
            response = self.sender.view_submission(
                user,
                view.get("callback_id") or "",
                values,
                private_metadata=view.get("private_metadata") or "",
                view_id=view.get("id") or "V0001",
            )
            if response.status != 200:
                self.say(f"  (Slack would show an error: HTTP {response.status})")
                return True
            body = response.json() or {}
            action = body.get("response_action")
            if action == "errors":
                errors = {k: str(v) for k, v in (body.get("errors") or {}).items()}
                unknown = [msg for k, msg in errors.items() if k not in {f.block_id for f in fields}]
                for msg in unknown:  # Slack shows only errors on input blocks; say so honestly
                    self.say(f"  ⚠ {msg}")
                if len(unknown) == len(errors):
                    self.say("  (Slack would reject this response: no input block matches the errors)")
                    return True
                continue
            self.settle()
            if action in ("update", "push") and isinstance(body.get("view"), dict):
                view = {**body["view"], "id": view.get("id")}
                text, buttons = render_view(view, first_number=len(self.buttons) + 1, names=names)
                self._print_block(f"bot ({action} view)", text, buttons, None, None)
                fields, values, errors = input_fields(view), {}, {}
                if fields:
                    continue
            return True

    def _close_modal(self, view: dict, user: str) -> None:
        self.say(f"\n{self.name_of(user)} closes the modal [{_plain(view.get('close')) or 'Cancel'}]")
        if view.get("notify_on_close"):
            self._actor = user
            self._show_http(
                self.sender.view_closed(user, view.get("callback_id") or "", view_id=view.get("id") or "")
            )
            self.settle()
        else:
            self.say("  (nothing is sent: the modal did not ask to be told when it closes)")

    # -- the scheduler on the demo's clock ----------------------------------------------------------

    def wait(self, duration: timedelta) -> None:
        """Move the demo's clock forward, running each job whenever it falls due on the way
        (every 5 minutes of demo time at most, as the real scheduler's interval jobs would)."""
        load("jobs")  # every feature's @job, as `iamwarden run` schedules them
        client = build_client(self.services)
        end = self.clock.now() + duration
        tz = self.services.config.schedule.timezone
        self.say(f"  (time passes: {_human(duration)}, until {end.strftime('%Y-%m-%d %H:%M %Z')})")
        while self.clock.now() < end:
            before = self.clock.now()
            after = self.clock.advance(min(timedelta(minutes=5), end - before))
            for spec in JOBS:
                due = False
                if spec.cron is not None and (expr := spec.cron(self.services)):
                    fire = crontab_trigger(expr, tz).get_next_fire_time(None, before)
                    due = fire is not None and fire <= after
                elif spec.every_seconds is not None and (seconds := spec.every_seconds(self.services)):
                    due = int(after.timestamp() // seconds) != int(before.timestamp() // seconds)
                if due:
                    try:
                        spec.run(self.services, client)
                    except Exception as exc:  # a job failing must not end the demo
                        self.say(f"  (job {spec.name} failed: {type(exc).__name__})")
            self.settle(quiet_for=0.1)

    # -- showing what the bot did -------------------------------------------------------------------

    def _show_http(self, response: object) -> None:
        status = getattr(response, "status", 0)
        if status != 200:
            self.say(f"  (Slack would show an error: HTTP {status})")
            return
        body = response.json() if hasattr(response, "json") else None
        # An ack with nothing to show (a modal opens instead): Slack shows nothing either.
        if body and (body.get("text") or body.get("blocks") or body.get("attachments")):
            self._show_message("bot (only you)", body)

    def settle(self, quiet_for: float = 0.3, limit: float = 15.0) -> None:
        """Wait until the bot stops making Web API calls, then show what it sent."""
        deadline = time.monotonic() + limit
        last = len(self.slack.calls)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now_count = len(self.slack.calls)
            if now_count != last:
                last, quiet_since = now_count, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_for:
                break
        self.flush()

    def flush(self) -> None:
        """Show every Web API call the bot made since the last flush, as it would appear in Slack."""
        with self._show_lock:
            self._flush()

    def _flush(self) -> None:
        calls = self.slack.calls[self._seen :]
        self._seen += len(calls)
        for call in calls:
            if (
                call.method not in _SHOWN
                or not call.response.get("ok", True)
                and call.method != "response_url"
            ):
                continue
            where = call.args.get("channel") or call.args.get("channel_id") or ""
            if call.method in ("views.open", "views.update", "views.push", "views.publish"):
                view = call.args.get("view")
                if isinstance(view, str):
                    view = json.loads(view)
                text, buttons = render_view(
                    view or {},
                    first_number=len(self.buttons) + 1,
                    names=self.display_names(),
                    colour=self.colour,
                )
                self._print_block(f"bot ({call.method.split('.')[1]} view)", text, buttons, None, None)
                stored = call.response.get("view") or view or {}
                if call.method != "views.publish" and stored.get("type", "modal") == "modal":
                    # Slack now shows this modal to whoever acted: the chat asks for its inputs next.
                    self.modal = OpenModal(view=stored, user=self._actor or self.user)
                continue
            if call.method == "files.completeUploadExternal":
                self.say(f"  [file uploaded to {where}]")
                continue
            label = self._label(call.method, call.args, where)
            message = dict(call.args)
            ts = call.response.get("ts") or call.args.get("ts")
            self._show_message(label, message, channel=where or None, ts=ts)

    def _label(self, method: str, args: dict, where: str) -> str:
        """Where the message appears and who sees it: an ephemeral is shown under its recipient."""
        if method == "chat.postEphemeral":
            return f"bot → only @{self.name_of(args.get('user', ''))} sees this (in {self._where(where)})"
        if method == "response_url":
            return "bot → only you see this"
        if method == "chat.update":
            return f"bot updated its message in {self._where(where)}"
        return f"bot in {self._where(where)}"

    def _where(self, channel: str) -> str:
        if channel.startswith("D") or channel.startswith("U"):
            person = next((p for p in PEOPLE if p.slack_id[1:] == channel[1:]), None)
            return f"a DM to @{person.name}" if person else "a DM"
        return _CHANNELS.get(channel, channel or "Slack")

    def watch(self) -> None:
        """Show asynchronous results (a grant after an approval, a job's post) when they happen."""
        self._watching = True

        def loop() -> None:
            while self._watching:
                time.sleep(0.2)
                if len(self.slack.calls) > self._seen:
                    time.sleep(0.2)  # let a burst finish so one action's output stays together
                    self.flush()

        threading.Thread(target=loop, name="demo-watch", daemon=True).start()

    def _show_message(
        self, label: str, message: dict, *, channel: str | None = None, ts: str | None = None
    ) -> None:
        blocks = message.get("blocks")
        if isinstance(blocks, str):
            message = {**message, "blocks": json.loads(blocks)}
        text, buttons = render_message(
            message, first_number=len(self.buttons) + 1, names=self.display_names(), colour=self.colour
        )
        self._print_block(label, text, buttons, channel, {**message, "ts": ts} if ts else message)

    def _print_block(
        self, label: str, text: str, buttons: list[Button], channel: str | None, message: dict | None
    ) -> None:
        self.say(f"  ── {label} ──")
        for line in text.splitlines():
            self.say(f"  {line}")
        # Buttons are numbered across the whole chat, so "7" always means the same button.
        for b in buttons:
            b.channel = channel  # type: ignore[attr-defined]
            b.message = message  # type: ignore[attr-defined]
            self.buttons.append(b)


def _jit_access_tour(s: DemoSession) -> None:
    """Ada asks for prod-admin, Bob approves, Sam (security) revokes: the whole lifecycle."""
    if True:  # the console link comes from the session's federation stand-in
        s.say("\nJust-in-time access: Ada needs prod-admin for an hour; Bob approves; Sam revokes early.")
        s.command("/iam request prod-admin 1h rotate the payments DB password (OPS-42)", user="U0ADA")
        s.click_label("Approve", user="U0BOB")
        s.command("/iam grants", user="U0ADA")
        s.click_label("Revoke", user="U0SAM")
        policy = s.services.aws.client("iam").get_role_policy(
            RoleName="prod-admin", PolicyName=REVOCATION_POLICY_NAME
        )["PolicyDocument"]
        for identity, before in access.denied_identities(policy).items():
            s.say(
                f"  (AWS: prod-admin now denies sessions with SourceIdentity {identity} issued before {before})"
            )


# The scripted tour: features append steps. Each step acts on a running DemoSession.
TOUR: list[Callable[[DemoSession], None]] = [
    lambda s: s.say(
        "iamwarden demo: the demo company's AWS runs in-process (moto); Slack is a local stand-in."
    ),
    lambda s: s.command("/iam help", user="U0ADA"),
    lambda s: s.command("/iam frobnicate", user="U0ADA"),
    # -- scan (issue: hygiene scan) --
    scan_tour.demo_tour,
    # -- queries: whoami-risks, can, who-can --
    queries_tour.demo_tour,
    # -- digest --
    digest_tour.demo_tour,
    # -- just-in-time access --
    lambda s: _jit_access_tour(s),
    # -- alerts --
    alerts_tour.demo_tour,
]

CHAT_HELP = """Type /iam … to talk to the bot as the current person; a number clicks a button.
A modal the bot opens asks for each input in turn (Enter keeps a default or skips an optional
one; `cancel` closes it), then is submitted.
  as NAME      act as another demo person (ada, bob, carlos, sam)
  home         open the App Home tab
  wait 1h      let demo time pass (30m, 2h, 1d): jobs run as they fall due
  deactivate NAME Slack deactivates that person: watch the offboarding alert
  tour         run the scripted tour
  quit         leave"""


def _plain(obj: object) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _human(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    return " ".join(f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "0m"


def _wants_colour(out: TextIO) -> bool:
    return (
        hasattr(out, "isatty")
        and out.isatty()
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def chat_line(session: DemoSession, line: str) -> bool:
    """One line typed in the chat; False to leave."""
    word = line.split(None, 1)[0].lower() if line.split() else ""
    rest = line[len(word) :].strip()
    if word in ("quit", "exit"):
        return False
    if word == "tour":
        for step in TOUR:
            step(session)
    elif word == "as":
        name = rest.lower()
        person = next((p for p in PEOPLE if p.name == name or p.slack_id == name.upper()), None)
        if person is None:
            session.say("unknown person; try ada, bob, carlos or sam")
        else:
            session.user = person.slack_id
    elif word == "home":
        session.home()
    elif word == "wait":
        try:
            duration = parse_duration(rest or "1h")
        except ValueError as exc:
            session.say(f"  {exc}")
        else:
            session.wait(duration)
    elif line.startswith("deactivate "):
        identity_tour.demo_deactivate(session, line.removeprefix("deactivate ").strip(), PEOPLE)
    elif line.isdigit():
        session.click(int(line))
    elif line.startswith("/"):
        session.command(line)
    else:
        session.say(CHAT_HELP)
    return True


def chat(session: DemoSession, read: Callable[[str], str | None]) -> int:
    """The chat loop: ``read(prompt)`` returns the next line typed (None at the end of input).
    A modal the bot opens is filled in (or cancelled) before the next command."""
    while True:
        if session.modal is not None:
            if not session.fill_modal(read):
                return 0
            continue
        line = read(f"{session.name_of(session.user)}> ")
        if line is None:
            return 0
        if line and not chat_line(session, line):
            return 0


def run_demo(*, interactive: bool | None = None, out: TextIO = sys.stdout, inp: TextIO = sys.stdin) -> int:
    interactive = inp.isatty() if interactive is None else interactive
    session = DemoSession(out=out, colour=_wants_colour(out), echo=not (interactive and inp.isatty()))
    try:
        session.start()
        if not interactive:
            for step in TOUR:
                step(session)
            session.say("\nTour finished. Run `make demo` in a terminal to chat with the bot yourself.")
            return 0
        session.say(CHAT_HELP)
        session.watch()

        def read(prompt: str) -> str | None:
            out.write(prompt)
            out.flush()
            raw = inp.readline()
            return raw.strip() if raw else None

        return chat(session, read)
    finally:
        session.stop()
