"""The offboarding alert and the Disable access answers, built from domain objects alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.identity import DisableOutcome, DisableResult, EndedAccess, HeldUser, OffboardingReport
from handlers.blocks import validate_blocks
from handlers.identity import MAX_USERS_SHOWN, alert_message, disable_outcome_text, disable_value
from handlers.ids import ActionId

ACCOUNT = "123456789012"


def report(**changes) -> OffboardingReport:
    fields = {
        "offboarding_id": 7,
        "user_id": "U0ALICE",
        "name": "Alice <!channel>",
        "email": "alice@example.com",
        "source": "user_change",
        "detected_at": datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        "ended": EndedAccess(
            revoked=[
                {"request_id": "r-1", "role": "prod-admin", "policy_written": True, "problem": None},
                {
                    "request_id": "r-2",
                    "role": "audit",
                    "policy_written": False,
                    "problem": "AccessDenied <x>",
                },
            ],
            withdrawn=[{"request_id": "r-3", "role": "audit-read", "kind": "request"}],
        ),
        "users": [HeldUser(ACCOUNT, "alice-iam", f"arn:aws:iam::{ACCOUNT}:user/alice-iam", ["access key 1"])],
        "roles": [f"arn:aws:iam::{ACCOUNT}:role/ops"],
        "snapshot_at": "2026-01-05T08:00:00+00:00",
    }
    fields.update(changes)
    return OffboardingReport(**fields)


def buttons(message) -> list[dict]:
    return [b["accessory"] for b in message.blocks if (b.get("accessory") or {}).get("type") == "button"]


def test_the_alert_names_the_leaver_escaped_and_what_was_ended_and_is_still_held():
    message = alert_message(report())
    assert validate_blocks(message.blocks) == []
    text = json.dumps(message.blocks)
    mrkdwn = json.dumps([b for b in message.blocks if b["type"] != "header"])  # a header is plain text
    assert "<!channel>" not in mrkdwn and "&lt;!channel&gt;" in mrkdwn  # a name never pings anyone
    assert "<@U0ALICE>" in text and "alice@example.com" in text
    assert "live sessions denied" in text and "could not deny live sessions" in text
    assert "AccessDenied &lt;x&gt;" in text
    assert "r-3" in text and "role/ops" in text
    assert message.text.startswith("Offboarding: Alice")
    assert "2 grant(s) revoked, 1 request(s) withdrawn, 1 IAM user(s)" in message.text


def test_each_held_iam_user_gets_a_confirmed_disable_access_button_up_to_the_limit():
    users = [
        HeldUser(ACCOUNT, f"u{i}", f"arn:aws:iam::{ACCOUNT}:user/u{i}", ["console password"])
        for i in range(25)
    ]
    message = alert_message(report(users=users))
    shown = buttons(message)
    assert len(shown) == MAX_USERS_SHOWN
    assert all(b["action_id"] == ActionId.OFFBOARDING_DISABLE_ACCESS and b.get("confirm") for b in shown)
    assert shown[0]["value"] == disable_value(7, ACCOUNT, "u0") == f"7|{ACCOUNT}|u0"
    assert "5 more IAM users" in json.dumps(message.blocks)
    assert validate_blocks(message.checked(overflow_name="offboarding.txt").blocks) == []


def test_a_leaver_with_nothing_says_so():
    message = alert_message(
        report(ended=EndedAccess(), users=[], roles=[], snapshot_at=None, source="directory_refresh")
    )
    text = json.dumps(message.blocks)
    assert "held no just-in-time access" in text
    assert "No IAM user with working credentials and no role" in text
    assert "no scan has run yet" in text and "directory refresh" in text
    assert buttons(message) == []


def test_disable_outcomes_read_as_one_true_sentence():
    done = DisableResult(
        ACCOUNT, "alice-iam", keys_deactivated=["AKIA1"], login_profile_deleted=True, had_login_profile=True
    )
    assert disable_outcome_text(
        DisableOutcome("disabled", ACCOUNT, "alice-iam", "U0ALICE", result=done), "U0SEC1"
    ) == (f"<@U0SEC1> used Disable access. {done.describe()}")
    refused = DisableOutcome("refused", ACCOUNT, "alice-iam", "U0ALICE", error="AWS denied <it>")
    assert disable_outcome_text(refused, "U0SEC1") == "<@U0SEC1> tried Disable access: AWS denied &lt;it&gt;"
    failed = DisableOutcome("failed", ACCOUNT, "alice-iam", "U0ALICE", error="EndpointConnectionError")
    assert "failed (EndpointConnectionError); nothing is confirmed changed" in disable_outcome_text(
        failed, "U0SEC1"
    )
    gone = DisableOutcome("not_linked", ACCOUNT, "ghost", "U0ALICE")
    assert disable_outcome_text(gone, "U0SEC1") == (
        "IAM user `ghost` is no longer linked to <@U0ALICE> with working credentials in the latest scan; "
        "nothing was changed."
    )
    assert "no longer stored" in disable_outcome_text(DisableOutcome("not_stored", ACCOUNT, ""), "U0SEC1")
