"""The digest's Block Kit builders alone: domain objects in, blocks out, no Slack and no store."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.digest import AccountDigest, Digest
from bot.findings import Severity
from handlers.blocks import validate_blocks
from handlers.digest import headline_message, nudge_message, snooze_modal, thread_messages
from handlers.ids import BlockId, CallbackId
from tests.conftest import ACCOUNT_ID
from tests.digest.support import finding, texts

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_an_account_never_scanned_is_shown_as_unknown_never_as_zero_critical():
    never = AccountDigest(
        account_id=ACCOUNT_ID,
        account_name="prod",
        snapshot_id=None,
        scanned_at=None,
        previous_snapshot_id=None,
        scan_error="AWS denied sts:AssumeRole <b>",
    )
    digest = Digest("C0SECURITY", NOW, [never], None, {}, {}, {})
    headline = headline_message(digest)
    text = texts({"text": headline.text, "blocks": headline.blocks})
    assert "no successful scan yet: AWS denied sts:AssumeRole &lt;b&gt; (no earlier snapshot)" in text
    assert "0 critical" not in text.split("\n", 1)[1]  # only the fallback text totals the counts
    assert validate_blocks(headline.blocks) == []
    assert thread_messages(digest) == []


def test_the_snooze_modal_defaults_to_two_weeks_and_names_the_limit():
    f = finding("USER_CONSOLE_NO_MFA", "ada", Severity.HIGH)
    modal = snooze_modal(f, today=date(2026, 11, 29), metadata='{"fingerprint": "x"}')
    assert modal["callback_id"] == CallbackId.DIGEST_SNOOZE_MODAL
    until = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.SNOOZE_UNTIL)
    assert until["element"]["initial_date"] == "2026-12-13"
    assert "at most 90 days" in until["label"]["text"]
    assert validate_blocks(modal["blocks"], max_blocks=100) == []


def test_a_nudge_shows_at_most_ten_findings_and_says_the_rest_come_later():
    findings = [finding("ACCESS_KEY_UNUSED", f"user-{i}", detail_key=f"key-{i}") for i in range(12)]
    message, shown = nudge_message(findings, every_days=7)
    assert len(shown) == 10
    text = texts({"text": message.text, "blocks": message.blocks})
    assert "2 more: I will remind you of them in the next digest." in text
    assert "at most once every 7 days" in text
    assert validate_blocks(message.blocks) == []
