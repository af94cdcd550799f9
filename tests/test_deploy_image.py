"""A lean, reproducible image: the runtime lock the Dockerfile installs carries no dev or test
tools, covers every runtime dependency, and agrees with the dev lock on every shared pin."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"moto", "pytest", "pytest-timeout", "ruff", "cfn-lint", "flask", "werkzeug", "pip-tools"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            out[match.group(1).lower().replace("_", "-")] = match.group(2)
    return out


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_requirement_set_excludes_moto_pytest_and_ruff():
    runtime = pins(ROOT / "requirements.lock")
    assert not DEV_TOOLS & set(runtime), DEV_TOOLS & set(runtime)
    # Every line of the lock is a pin or a comment: nothing unpinned, no local index or wheel paths.
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        assert not line.strip() or line.lstrip().startswith("#") or "==" in line, line


def test_the_dockerfile_installs_the_runtime_lock_without_resolving_anything_else():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-deps -r requirements.lock" in dockerfile
    assert "requirements-dev.lock" not in dockerfile.replace(
        "# ruff or cfn-lint; those are in requirements-dev.lock", ""
    )
    assert "USER iamwarden" in dockerfile


def test_runtime_lock_covers_every_runtime_dependency_and_dev_lock_the_dev_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    for requirement in project["dependencies"]:
        assert name_of(requirement) in runtime, requirement
    for requirement in project["optional-dependencies"]["dev"]:
        assert name_of(requirement) in dev, requirement
    assert "cfn-lint" in dev and "moto" in dev


def test_both_locks_pin_the_same_version_of_every_shared_package():
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    assert set(runtime) <= set(dev)
    assert {name: (v, dev[name]) for name, v in runtime.items() if dev[name] != v} == {}


def test_make_installs_the_dev_lock_so_make_test_and_make_demo_work_from_a_fresh_clone():
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK := requirements-dev.lock" in makefile and "-r $(LOCK)" in makefile


def _demo_without(module: str) -> subprocess.CompletedProcess:
    # As in the image: the module is not installed (None in sys.modules makes it unimportable).
    code = f"import sys; sys.modules[{module!r}] = None; from iamwarden.cli import main; sys.exit(main(['demo']))"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("module", ["moto", "sandbox"])
def test_the_demo_without_the_demo_extra_says_so_in_one_line(module):
    result = _demo_without(module)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"iamwarden: the demo needs the demo extra (pip install 'iamwarden[demo]'): {module} is missing"
    )


def test_the_image_ships_the_product_without_the_sandbox():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    for package in ("bot", "handlers", "iamwarden"):
        assert package in copied, f"the image must ship {package}/"
    assert "sandbox" not in copied, "the sandbox (demo stand-ins) is not part of the product image"


def test_the_demo_extra_is_pinned_in_the_dev_lock():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lock = (ROOT / "requirements-dev.lock").read_text().lower()
    for requirement in extras["demo"]:
        name = requirement.split("[")[0].split("=")[0].split(">")[0].strip().lower()
        assert f"\n{name}==" in lock, f"{name} (the demo extra) is not pinned in requirements-dev.lock"
