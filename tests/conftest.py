"""The real-parts harness: moto over HTTP, a local Slack Web API server, signed inbound requests,
the bot in HTTP mode on a real port, and a real SQLite file per test.

Fixtures:
- ``aws``: a reset moto server (MotoSandbox) with boto3 pointed at it through AWS_ENDPOINT_URL.
- ``slack``: a reset FakeSlack with the test workspace's members and user groups.
- ``clock``: a FrozenClock at 2026-11-29T12:00Z that tests move instead of sleeping.
- ``make_bot(config=...)``: start the bot on its own port and SQLite file; returns a ``BotUnderTest``.
- ``bot``: ``make_bot()`` with the default test config.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from bot.clock import FrozenClock
from bot.services import Services
from bot.settings import Config, load_settings
from iamwarden.app import Health, HttpServer, build_app, wsgi_app
from sandbox.aws import DUMMY_ENV, MotoSandbox
from sandbox.slack_api import FakeSlack
from sandbox.slack_sender import SlackSender

ACCOUNT_ID = "123456789012"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-testing"
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)

# The test workspace.
MEMBERS = {
    "U0SEC1": ("sec1", "sec1@example.com"),
    "U0SEC2": ("sec2", "sec2@example.com"),
    "U0LEAD1": ("lead1", "lead1@example.com"),
    "U0LEAD2": ("lead2", "lead2@example.com"),
    "U0ALICE": ("alice", "alice@example.com"),
    "U0BOB": ("bob", "bob@example.com"),
}
USERGROUPS = {"security": ["U0SEC2"], "sre-leads": ["U0LEAD2"]}

DEFAULT_CONFIG: dict[str, Any] = {
    "slack": {
        "approvals_channel": "C0APPROVALS",
        "security_channel": "C0SECURITY",
        "digest_channel": "C0SECURITY",
        "alerts_channel": "C0SECURITY",
        "security_team": ["U0SEC1", "@security"],
    },
    "roles": [
        {
            "name": "prod-admin",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/prod-admin",
            "max_duration": "2h",
            "approvers": ["U0LEAD1", "@sre-leads"],
            "approvals_required": 1,
        }
    ],
}

# Property tests are deterministic like every other test: the same examples on every run, so a
# failure reproduces and CI never turns red by the draw of a seed.
hypothesis.settings.register_profile("deterministic", derandomize=True, print_blob=True)
hypothesis.settings.load_profile("deterministic")

# Nothing in the test process may reach real AWS.
for _key, _value in DUMMY_ENV.items():
    os.environ[_key] = _value
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
# Nor write to the real home: the precompiled action catalog (bot.policy) is kept in a cache directory
# of this run, shared by the test process and the bot processes it starts.
_CACHE_HOME = tempfile.mkdtemp(prefix="iamwarden-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoSandbox]:
    sandbox = MotoSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def aws(moto_server: MotoSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoSandbox]:
    moto_server.reset()
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    yield moto_server


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def slack(slack_server: FakeSlack) -> Iterator[FakeSlack]:
    from handlers.identity import clear_cache

    slack_server.reset(users=True)
    for user_id, (name, email) in MEMBERS.items():
        slack_server.add_user(user_id, name=name, real_name=name.title(), email=email)
    for handle, members in USERGROUPS.items():
        slack_server.set_usergroup(handle, members)
    clear_cache()
    yield slack_server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@dataclass
class BotUnderTest:
    services: Services
    server: HttpServer
    sender: SlackSender
    slack: FakeSlack
    app: Any

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store(self):  # noqa: ANN201
        return self.services.store

    def command(self, user_id: str, text: str, **kwargs: Any):  # noqa: ANN201
        return self.sender.command(user_id, text, **kwargs)

    def answer(self, user_id: str, text: str, *, timeout: float = 15.0, **kwargs: Any):  # noqa: ANN201
        """The answer the member finally sees: the ack's, or (when the ack said "working…") the
        reply that follows through response_url."""
        import json as _json

        from handlers.commands import COMMANDS
        from sandbox.slack_sender import SlackResponse

        before = len(self.slack.calls_to("response_url"))
        response = self.sender.command(user_id, text, **kwargs)
        words = text.split()
        sub = COMMANDS.get(words[0].lower()) if words else None
        body = response.json() or {}
        if sub is None or body.get("text") != sub.working_text:
            return response
        reply = self.slack.wait_for("response_url", count=before + 1, timeout=timeout)[before]
        return SlackResponse(200, _json.dumps(reply.args), {})


def make_services(
    tmp_path: Path,
    slack: FakeSlack,
    clock: FrozenClock,
    config: dict | Config | None = None,
    db: Path | None = None,
) -> Services:
    cfg = (
        config
        if isinstance(config, Config)
        else Config.model_validate(config if config is not None else DEFAULT_CONFIG)
    )
    settings = load_settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.base_url,
        db=db or tmp_path / "iamwarden.db",
        config=cfg,
    )
    return Services.from_settings(settings, clock=clock)


@pytest.fixture
def make_bot(tmp_path: Path, slack: FakeSlack, aws: MotoSandbox, clock: FrozenClock) -> Iterator[Any]:
    started: list[BotUnderTest] = []

    def start(config: dict | Config | None = None, *, db: Path | None = None) -> BotUnderTest:
        services = make_services(tmp_path, slack, clock, config, db)
        app = build_app(services)
        server = HttpServer(wsgi_app(app, Health(services))).start()
        sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET, fake_slack=slack)
        bot = BotUnderTest(services=services, server=server, sender=sender, slack=slack, app=app)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.server.stop()
        # Work still running after the ack belongs to this test: finish it before the next test
        # resets the shared Slack server, so it can never post into someone else's test.
        work = bot.services.extras.get("slow_work")
        if work is not None:
            work.shutdown(wait=True)


@pytest.fixture
def bot(make_bot: Any) -> BotUnderTest:
    return make_bot()
