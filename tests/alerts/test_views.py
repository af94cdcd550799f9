"""The alert views on their own: pure builders over stored alerts and rules, valid Block Kit."""

from __future__ import annotations

from bot import alerts as alert_store
from bot.alerts import Alert
from bot.settings import Config
from handlers.alerts.views import alert_message, open_alerts_message, rules_message
from handlers.blocks import validate_blocks
from handlers.ids import ActionId


def stored_alert(**row) -> Alert:
    return Alert.from_row(
        {
            "id": 7,
            "rule_id": alert_store.KEY_QUARANTINED,
            "severity": "critical",
            "title": "AWS quarantined bob's access key: it found the key exposed",
            "account_id": "123456789012",
            "region": "us-east-1",
            "event_name": "AttachUserPolicy",
            "event_source": "iam.amazonaws.com",
            "first_seen": "2026-11-29T12:00:00+00:00",
            "last_seen": "2026-11-29T12:00:00+00:00",
            "context": '{"user": "bob"}',
            "state": "open",
            **row,
        }
    )


def action_ids(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_rules_message_shows_each_rules_effective_limits_and_which_are_off():
    config = Config.model_validate(
        {
            "alerts": {
                "rules": {"PASSWORD_SPRAY": {"enabled": False}, "CONSOLE_LOGIN_FAILURES": {"threshold": 3}}
            }
        }
    )
    message = rules_message(alert_store.rule_catalog(config))
    text = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "`PASSWORD_SPRAY` · high _(disabled)_" in text
    assert "threshold 3, window 15m, dedupe 1h" in text
    assert all(f"`{rule_id}` · " in text for rule_id in alert_store.RULES)
    assert validate_blocks(message.blocks, max_blocks=100) == []


def test_a_quarantined_key_alert_offers_disable_access_and_a_handled_one_does_not_ask_again():
    fresh = alert_message(stored_alert())
    assert action_ids(fresh.blocks) == [
        ActionId.ALERT_ACKNOWLEDGE.value,
        ActionId.ALERT_ASK_ACTOR.value,
        ActionId.ALERT_DISABLE_ACCESS.value,
    ]
    assert validate_blocks(fresh.blocks) == []
    handled = alert_message(
        stored_alert(
            rule_id=alert_store.ROOT_ACTIVITY,
            state="acknowledged",
            acknowledged_by="U0SEC1",
            actor_status="asked",
        )
    )
    assert action_ids(handled.blocks) == []
    assert "Acknowledged by <@U0SEC1>" in str(handled.blocks)


def test_no_open_alerts_says_so():
    message = open_alerts_message([], 0)
    assert message.text == "No open alerts: every alert has been acknowledged."
