"""Configuration checked whole before anything runs: every bad value through the real CLI is one
line naming the key, exit 2, and nothing is written; warnings for a config that cannot do anything;
the README's complete example loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Config, SettingsError, load_config

ROOT = Path(__file__).resolve().parents[1]
ROLE = '[[roles]]\nname = "prod-admin"\narn = "arn:aws:iam::123456789012:role/prod-admin"\napprovers = ["U0LEAD1"]\n'


def cli(
    *args: str, config: str | None, tmp_path: Path, env: dict | None = None
) -> subprocess.CompletedProcess:
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IAMWARDEN_DB": str(tmp_path / "iamwarden.db"),
        "PYTHONPATH": str(ROOT),  # this tree's code, not whichever copy the interpreter has installed
    }
    if config is not None:
        path = tmp_path / "iamwarden.toml"
        path.write_text(config)
        base["IAMWARDEN_CONFIG"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=tmp_path,
        timeout=60,
    )


# (what is wrong, the TOML, what the one line must name)
BAD_CONFIGS = [
    ("unknown timezone", '[schedule]\ntimezone = "Mars/Olympus"\n', "schedule.timezone"),
    ("cron in words", '[schedule]\nscan_cron = "every morning"\n', "schedule.scan_cron"),
    ("cron out of range", '[schedule]\ndigest_cron = "61 7 * * *"\n', "schedule.digest_cron"),
    ("cron bad weekday", '[schedule]\nscan_cron = "0 7 * * someday"\n', "schedule.scan_cron"),
    ("session over 12h", ROLE + 'max_duration = "48h"\n', "roles.0.max_duration"),
    ("negative duration", ROLE + "max_duration = -3600\n", "roles.0.max_duration"),
    ("zero duration", ROLE + 'max_duration = "0m"\n', "roles.0.max_duration"),
    ("overflowing duration", ROLE + 'max_duration = "99999999999h"\n', "roles.0.max_duration"),
    ("shorter than min_duration", ROLE + 'max_duration = "10m"\n', "roles.0.max_duration"),
    ("not a duration", ROLE + 'max_duration = "soon"\n', "roles.0.max_duration"),
    ("more approvals than approvers", ROLE + "approvals_required = 3\n", "roles.0"),
    ("approver neither id nor group", ROLE.replace('["U0LEAD1"]', '["sam"]'), "roles.0.approvers"),
    ("security_team neither id nor group", '[slack]\nsecurity_team = ["sam"]\n', "slack.security_team"),
    ("invalid ticket regex", ROLE + 'require_ticket = "(["\n', "roles.0.require_ticket"),
    ("duplicate role names", ROLE + ROLE, "roles.1.name"),
    (
        "role arn not an ARN",
        ROLE.replace("arn:aws:iam::123456789012:role/prod-admin", "prod-admin"),
        "roles.0.arn",
    ),
    ("account id not 12 digits", '[[accounts]]\nid = "prod"\n', "accounts.0.id"),
    (
        "account role_arn not an ARN",
        '[[accounts]]\nid = "123456789012"\nrole_arn = "iamwarden-audit"\n',
        "accounts.0.role_arn",
    ),
    ("queue_url not a URL", '[alerts]\nqueue_url = "not a url"\n', "alerts.queue_url"),
    (
        "suppression expiry not ISO",
        '[[suppressions]]\ncheck_id = "ROLE_UNUSED"\nreason = "r"\nexpires = "31/03/2027"\n',
        "suppressions.0.expires",
    ),
    ("suppression of nothing", '[[suppressions]]\nreason = "r"\n', "suppressions.0"),
    ("keep no snapshot", "[scan]\nkeep_snapshots = 0\n", "scan.keep_snapshots"),
    ("keep_snapshots not a number", '[scan]\nkeep_snapshots = "all"\n', "scan.keep_snapshots"),
    ("negative weekly retention", "[scan]\nkeep_weekly_days = -7\n", "scan.keep_weekly_days"),
    ("unknown key", '[slack]\napproval_channel = "C0X"\n', "slack.approval_channel"),
    ("unknown alert rule", "[alerts.rules.NOPE]\nenabled = false\n", "alerts.rules"),
    ("not TOML", "[slack\n", "IAMWARDEN_CONFIG"),
    ("zero account_timeout", "[scan]\naccount_timeout = 0\n", "scan.account_timeout"),
    ("negative account_timeout", '[scan]\naccount_timeout = "-5m"\n', "scan.account_timeout"),
    ("account_timeout not a duration", '[scan]\naccount_timeout = "a while"\n', "scan.account_timeout"),
    ("zero scan_timeout", '[scan]\nscan_timeout = "0m"\n', "scan.scan_timeout"),
    ("negative scan_timeout", "[scan]\nscan_timeout = -60\n", "scan.scan_timeout"),
]


@pytest.mark.parametrize(("what", "toml", "key"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_every_bad_configuration_is_one_line_naming_the_key_and_exit_2(what, toml, key, tmp_path):
    result = cli("audit", config=toml, tmp_path=tmp_path)
    assert result.returncode == 2, (what, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert key in lines[0] and lines[0].startswith("iamwarden: "), lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "iamwarden.db").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize(
    "command",
    [["run"], ["scan"], ["digest", "--dry-run"], ["audit"], ["policy"], ["check"]],
    ids=lambda c: c[0],
)
def test_every_command_checks_the_configuration_before_it_runs(command, tmp_path):
    result = cli(
        *command,
        config='[schedule]\ntimezone = "Mars/Olympus"\n',
        tmp_path=tmp_path,
        env={"SLACK_BOT_TOKEN": "xoxb-x"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "iamwarden: "
        + str(tmp_path / "iamwarden.toml")
        + ": schedule.timezone: 'Mars/Olympus' is not an IANA time zone (e.g. UTC, Europe/Berlin)"
    ]
    assert not (tmp_path / "iamwarden.db").exists()


def test_db_in_a_missing_directory_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    result = cli("audit", config=None, tmp_path=tmp_path, env={"IAMWARDEN_DB": str(missing)})
    assert result.returncode == 2
    assert result.stderr.strip() == f"iamwarden: IAMWARDEN_DB: directory {missing.parent} does not exist"
    assert not (tmp_path / "nonexistent").exists()


def test_a_config_that_cannot_do_anything_useful_warns_one_line_each(tmp_path):
    from bot.settings import Config

    warnings = Config.model_validate(
        {"roles": [{"name": "lonely", "arn": "arn:aws:iam::123456789012:role/lonely"}]}
    ).warnings()
    assert len(warnings) == 4
    assert any("no channel" in w for w in warnings)
    assert any("security_team" in w for w in warnings)
    assert any("approvals_channel" in w for w in warnings)
    assert any("lonely" in w and "no approvers" in w for w in warnings)
    result = cli(
        "run", config="", tmp_path=tmp_path, env={"SLACK_BOT_TOKEN": "xoxb-x", "IAMWARDEN_PORT": "x"}
    )
    assert result.returncode == 2  # the setting error still stops it; warnings need a valid config


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example-config -->\n```toml\n(.*?)```", readme, re.S)
    assert match, "README's complete example config is missing"
    return match.group(1)


def test_the_readme_complete_example_loads_and_warns_about_nothing(tmp_path):
    path = tmp_path / "iamwarden.toml"
    path.write_text(readme_example())
    config = load_config(path)
    assert isinstance(config, Config)
    assert [r.name for r in config.roles] == ["prod-admin", "breakglass-admin"]
    assert config.alerts.queue_url and config.schedule.timezone == "Europe/Berlin"
    assert config.warnings() == []
    # Every top-level section the product knows appears in it.
    assert set(Config.model_fields) <= set(re.findall(r"^\[\[?(\w+)", readme_example(), re.M))
    result = cli("policy", config=readme_example(), tmp_path=tmp_path)
    assert result.returncode == 0 and result.stderr == ""


def test_bad_values_raise_settings_error_from_load_config_too(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[schedule]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(SettingsError, match="schedule.timezone"):
        load_config(path)
