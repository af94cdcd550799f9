"""The embedded default: `iamwarden demo` runs its tour without a terminal, and chats with one."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from sandbox.demo import run_demo

ROOT = Path(__file__).resolve().parents[1]


def test_demo_tour_runs_without_a_terminal_and_exits_0():
    result = subprocess.run(
        [sys.executable, "-m", "iamwarden", "demo"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ada> /iam help" in result.stdout
    assert "Tour finished" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_chat_switches_person_and_answers():
    out = io.StringIO()
    inp = io.StringIO("/iam help\nas sam\n/iam nonsense\nquit\n")
    assert run_demo(interactive=True, out=out, inp=inp) == 0
    text = out.getvalue()
    assert "/iam help" in text
    assert "sam> /iam nonsense" in text
    assert "Unknown command" in text


def test_demo_chat_deactivate_shows_the_offboarding_alert():
    # Its own process: the demo's in-process moto keeps its state for the life of the process.
    script = (
        "import io, sys; from sandbox.demo import run_demo; "
        "sys.exit(run_demo(interactive=True, inp=io.StringIO('deactivate carlos\\ndeactivate nobody\\nquit\\n')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert "cached" in text and "users.list" in text  # the chat caches the directory itself
    assert "Offboarding" in text and "Carlos" in text
    assert "unknown person" in text
    assert "Traceback" not in text + result.stderr


def test_readme_demo_section_names_every_chat_command():
    from sandbox.demo import CHAT_HELP

    readme = (ROOT / "README.md").read_text()
    section = readme.split("`make demo` in a terminal", 1)[1].split("\n## ", 1)[0]
    commands = [line.split()[0] for line in CHAT_HELP.splitlines()[3:]]
    assert {"as", "home", "wait", "deactivate", "tour", "quit"} <= set(commands)
    for word in [*commands, "cancel", "view_submission", "view_closed"]:
        assert f"`{word}" in section, word
