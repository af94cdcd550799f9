"""The layers hold: the import contracts in pyproject.toml ([tool.importlinter]) are kept."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " 0 broken" in result.stdout, result.stdout[-4000:]


def test_cli_registry_names_each_commands_module():
    from bot import cli

    cli.build_parser()  # imports every CLI module, so each @command has registered
    for name, module in cli.CLI_COMMANDS.items():
        assert name in cli._COMMANDS, f"{name} is in CLI_COMMANDS but no module registers it"
        assert cli._COMMANDS[name][2].__module__ == module, f"{name} is declared in another module"
    assert set(cli._COMMANDS) == set(cli.CLI_COMMANDS), "a @command is missing from CLI_COMMANDS"


def test_scan_imports_no_slack_scheduler_or_web_server():
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "try:\n    main(['scan', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('slack_bolt', 'slack_sdk', 'apscheduler', 'waitress') if m in sys.modules]\n"
        "print('LOADED', heavy, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "usage: iamwarden scan" in result.stdout
    assert "LOADED []" in result.stderr, result.stderr[-2000:]
