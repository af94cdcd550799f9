"""``iamwarden digest``: --dry-run and --json print without posting; posting needs the token."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.findings import save_snapshot
from bot.store import Store
from tests.conftest import ACCOUNT_ID
from tests.digest.support import finding, headlines


def test_cli_digest_dry_run_prints_text_and_json_without_posting(tmp_path, slack):
    db = tmp_path / "cli.db"
    store = Store(db)
    save_snapshot(
        store,
        account_id=ACCOUNT_ID,
        account_name="prod",
        scanned_at=datetime(2026, 11, 29, 7, 0, tzinfo=UTC),
        api_calls=3,
        inventory=None,
        findings=[finding("USER_CONSOLE_NO_MFA", "ada")],
    )
    cfg = tmp_path / "iamwarden.toml"
    cfg.write_text('[slack]\ndigest_channel = "C0SECURITY"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "IAMWARDEN_DB": str(db), "IAMWARDEN_CONFIG": str(cfg)}
    exe = str(Path(sys.executable).parent / "iamwarden")
    text = subprocess.run([exe, "digest", "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Account prod (123456789012)" in text.stdout and "USER_CONSOLE_NO_MFA ada" in text.stdout
    as_json = subprocess.run([exe, "digest", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["channel"] == "C0SECURITY" and document["headline"]["blocks"][0]["type"] == "header"
    assert document["summary"]["counts"]["high"] == 1
    # Posting needs the token: one line, exit 2.
    post = subprocess.run([exe, "digest"], capture_output=True, text=True, env=env, timeout=60)
    assert post.returncode == 2 and post.stderr.strip() == "iamwarden: SLACK_BOT_TOKEN: is required"
    # And with it, it posts to the (local) Slack.
    env |= {"SLACK_BOT_TOKEN": "xoxb-testing", "IAMWARDEN_SLACK_API_URL": slack.base_url}
    post = subprocess.run([exe, "digest"], capture_output=True, text=True, env=env, timeout=60)
    assert post.returncode == 0, post.stderr
    assert "Posted the digest to C0SECURITY" in post.stdout
    assert len(headlines(slack)) == 1 and len(slack.files()) == 1
