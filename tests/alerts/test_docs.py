"""The README's alerts setup is the one the tests run, and its examples are valid; the demo shows an alert."""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

import yaml

from bot.alerts import RULES
from bot.settings import Config
from tests.alerts.support import EVENT_PATTERN

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def alerts_section() -> str:
    start = README.index("\n## Alerts\n")
    end = README.index("\n## ", start + 5)
    return README[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", alerts_section(), re.S)


class _CfnLoader(yaml.SafeLoader):
    pass


for _tag in ("!GetAtt", "!Ref", "!Sub"):
    _CfnLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def test_readme_event_pattern_is_the_one_the_tests_deliver_through():
    pattern, policy = (json.loads(b) for b in blocks("json"))
    assert pattern == EVENT_PATTERN
    assert policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    template = yaml.load(blocks("yaml")[0], Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    assert template["Resources"]["AlertsRule"]["Properties"]["EventPattern"] == EVENT_PATTERN
    redrive = template["Resources"]["AlertsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] >= 2


def test_readme_config_example_is_valid_and_every_rule_is_documented():
    config = Config.model_validate(tomllib.loads(blocks("toml")[0]))
    assert config.alerts.rules["CONSOLE_LOGIN_FAILURES"].threshold == 3
    for rule_id in RULES:
        assert f"| `{rule_id}` |" in alerts_section()


def test_demo_tour_shows_an_alert():
    from sandbox.demo import DemoSession
    from sandbox.tour.alerts import demo_tour

    out = io.StringIO()
    session = DemoSession(out=out).start()
    try:
        demo_tour(session)
    finally:
        session.stop()
    text = out.getvalue()
    assert "CRITICAL: Root user signed in to the console without MFA" in text
    assert "Acknowledged by @sam" in text  # the demo shows display names, as Slack does
    assert "Traceback" not in text
