"""The foundation: /iam help end to end, signatures, health, Slack retries, settings, store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from bot.store import Store
from handlers.client import build_client
from handlers.commands import COMMANDS, Subcommand

ROOT = Path(__file__).resolve().parents[1]


def _block_text(body: dict) -> str:
    parts = [body.get("text", "")]
    for block in body.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for el in block.get("elements", []) or []:
            if isinstance(el, dict) and isinstance(el.get("text"), str):
                parts.append(el["text"])
    return "\n".join(parts)


def test_help_lists_every_registered_subcommand_ephemerally(bot):
    response = bot.command("U0ALICE", "help")
    assert response.status == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    text = _block_text(body)
    for sub in COMMANDS.visible():
        assert f"/iam {sub.usage}" in text
    # Answered in the ack itself: no Web API call was needed.
    assert bot.slack.calls_to("chat.postMessage") == []


def test_bare_iam_shows_help(bot):
    body = bot.command("U0ALICE", "").json()
    assert "/iam help" in _block_text(body)


def test_unknown_subcommand_gets_help_and_a_suggestion(bot):
    body = bot.command("U0ALICE", "hlep").json()
    text = _block_text(body)
    assert "Unknown command" in text
    assert "`help`" in text


def test_mention_injection_in_unknown_subcommand_is_escaped(bot):
    body = bot.command("U0ALICE", "<!channel> <@U0SEC1>").json()
    text = _block_text(body)
    assert "<!channel>" not in text and "<@U0SEC1>" not in text
    assert "&lt;!channel&gt;" in text


def test_forged_signature_is_rejected_without_any_web_api_call(bot):
    before = len(bot.slack.calls)
    body = b"command=%2Fiam&text=help&user_id=U0ALICE&team_id=T0DEMO&channel_id=C0DEMO"
    response = bot.sender.send_raw(body, signature="v0=" + "0" * 64)
    assert response.status == 401
    time.sleep(0.2)
    assert len(bot.slack.calls) == before


def test_stale_timestamp_is_rejected(bot):
    before = len(bot.slack.calls)
    body = b"command=%2Fiam&text=help&user_id=U0ALICE&team_id=T0DEMO&channel_id=C0DEMO"
    stale = str(int(time.time()) - 6 * 60)
    response = bot.sender.send_raw(body, timestamp=stale)  # correctly signed, but too old
    assert response.status == 401
    time.sleep(0.2)
    assert len(bot.slack.calls) == before


def test_healthz_reports_database(bot):
    with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"db": "ok", "status": "ok"}


def test_rate_limited_post_is_retried_and_arrives(bot):
    bot.slack.fail_next("chat.postMessage", error="ratelimited", retry_after=1)
    client = build_client(bot.services)
    result = client.chat_postMessage(channel="C0SECURITY", text="hello")
    assert result["ok"]
    attempts = bot.slack.calls_to("chat.postMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert [m["text"] for m in bot.slack.messages("C0SECURITY")] == ["hello"]


def test_a_failing_subcommand_tells_the_user_something_short_and_true(bot, caplog):
    def explode(cmd, io):
        raise RuntimeError("boom xoxb-secret-token")

    COMMANDS.add(Subcommand(name="explode-test", usage="explode-test", summary="test only", handler=explode))
    try:
        body = bot.command("U0ALICE", "explode-test").json()
    finally:
        COMMANDS.commands.pop("explode-test")
    assert "failed on our side" in body["text"]
    assert "boom" not in body["text"]


def test_every_manifest_command_and_event_has_a_handler(bot):
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands
    for command in commands:
        assert bot.sender.command("U0ALICE", "help", command=command).status == 200
        for c in manifest["features"]["slash_commands"]:
            assert c["should_escape"] is True
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        response = bot.sender.event({"type": event, "user": "U0ALICE", "tab": "home"})
        assert response.status == 200
    assert "chat:write.public" not in manifest["oauth_config"]["scopes"]["bot"]
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_app_home_opened_publishes_a_home_view(bot):
    bot.sender.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    call = bot.slack.wait_for("views.publish")[0]
    assert call.args["user_id"] == "U0ALICE"


def test_every_action_id_has_a_listener(bot):
    from handlers.ids import ActionId

    for action_id in ActionId:
        response = bot.sender.block_action("U0ALICE", action_id.value, "x")
        assert response.status == 200, f"no listener for {action_id}"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


def test_missing_setting_is_one_line_and_exit_2():
    result = _cli("run")
    assert result.returncode == 2
    assert result.stderr.strip() == "iamwarden: SLACK_BOT_TOKEN: is required"


def test_invalid_setting_names_the_variable():
    result = _cli("run", env={"SLACK_BOT_TOKEN": "xoxb-x", "IAMWARDEN_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.startswith("iamwarden: IAMWARDEN_PORT:")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_invalid_config_file_names_the_field(tmp_path):
    cfg = tmp_path / "iamwarden.toml"
    cfg.write_text('[[roles]]\nname = "x"\narn = "arn:aws:iam::123456789012:role/x"\nmax_duration = "soon"\n')
    result = _cli("audit", env={"IAMWARDEN_CONFIG": str(cfg), "IAMWARDEN_DB": str(tmp_path / "a.db")})
    assert result.returncode == 2
    assert "roles.0.max_duration" in result.stderr and "not a duration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_secrets_are_secret_str_and_never_in_repr(tmp_path):
    from bot.settings import load_settings

    settings = load_settings(
        slack_bot_token="xoxb-very-secret", slack_signing_secret="shh", db=tmp_path / "x.db"
    )
    assert "xoxb-very-secret" not in repr(settings) and "shh" not in repr(settings)
    assert settings.slack_bot_token.get_secret_value() == "xoxb-very-secret"


def test_store_uses_wal_and_is_safe_across_threads(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    from datetime import UTC, datetime

    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                store.audit("test", actor=f"U{n}", at=datetime.now(UTC), reason=str(i))
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.execute("SELECT count(*) FROM audit").fetchone()[0] == 200
    # Migrations are recorded and re-applying them is a no-op.
    again = Store(tmp_path / "s.db")
    assert again.execute("SELECT count(*) FROM audit").fetchone()[0] == 200


def test_audit_export_jsonl_and_csv(tmp_path):
    from datetime import UTC, datetime

    db = tmp_path / "a.db"
    Store(db).audit(
        "requested", actor="U0ALICE", at=datetime(2026, 1, 2, tzinfo=UTC), request_id="r1", role="prod-admin"
    )
    out = _cli("audit", env={"IAMWARDEN_DB": str(db)})
    assert out.returncode == 0
    row = json.loads(out.stdout.splitlines()[0])
    assert row["action"] == "requested" and row["request_id"] == "r1"
    out = _cli("audit", "--format", "csv", env={"IAMWARDEN_DB": str(db)})
    assert out.stdout.splitlines()[0].startswith("id,at,actor,action")


@pytest.mark.parametrize("needle", ["make demo", "make test"])
def test_readme_starts_with_the_two_commands(needle):
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[: readme.find("\n## ", readme.find("## Quick start") + 5)]
    assert needle in quick_start


def test_cli_help_lists_every_command():
    from iamwarden.cli import build_parser

    text = build_parser().format_help()
    readme = (ROOT / "README.md").read_text()
    for name in ("run", "scan", "digest", "demo", "checks", "audit"):
        if f" {name} " in text or f"{name}," in text or f"{{{name}" in text:
            assert f"iamwarden {name}" in readme, f"README does not document iamwarden {name}"
