"""The daily digest end to end: stored snapshots → headline + thread + CSV in the local Slack."""

from __future__ import annotations

from datetime import timedelta

from bot.findings import Severity, save_snapshot
from handlers.blocks import validate_blocks
from handlers.client import build_client
from handlers.digest import post_digest, text_size
from tests.conftest import ACCOUNT_ID
from tests.digest.support import CHANNEL, buttons_in, csv_rows, finding, headlines, store_scan, texts, thread


def test_digest_shows_new_and_resolved_between_two_snapshots(bot, two_scans):
    posted = post_digest(bot.services, build_client(bot.services))
    [head] = headlines(bot.slack)
    assert head["ts"] == posted.ts
    text = texts(head)
    assert "IAM hygiene digest" in text
    assert "prod (123456789012)" in text
    # Counts by severity with the change since the previous snapshot.
    assert "2 critical (+1)" in text and "1 high" in text and "0 medium (−1)" in text
    assert "1 new" in text and "1 resolved" in text
    # Offboarding first, with Disable access on the headline.
    assert "Needs offboarding first (1)" in text
    assert [b["text"]["text"] for b in buttons_in(head)] == [
        "Disable access",
        "Notify owner",
        "Acknowledge",
        "Snooze",
    ]
    replies = thread(bot.slack, posted.ts)
    titles = [r["blocks"][0]["text"]["text"] for r in replies]
    assert titles == [
        "Needs offboarding (1)",
        "Resolved since the previous digest (1)",
        "Oldest unresolved critical (2)",
    ]
    resolved = texts(replies[1])
    assert "carlos" in resolved
    oldest = texts(replies[2])
    assert oldest.index("root") < oldest.index("dana")  # root was first seen four days ago
    rows = csv_rows(bot.slack)
    assert {(r["principal_name"], r["state"]) for r in rows} == {
        ("ada", "open"),
        ("dana", "new"),
        ("root", "open"),
        ("carlos", "resolved"),
    }
    [upload] = bot.slack.files()
    assert upload["thread_ts"] == posted.ts and upload["channel"] == CHANNEL
    for message in bot.slack.messages(CHANNEL):
        assert validate_blocks(message["blocks"]) == []
    assert bot.slack.formatting_violations() == []
    assert [r["action"] for r in bot.store.audit_rows()] == ["digest.post"]


def test_second_digest_diffs_against_the_first(bot, two_scans, clock):
    client = build_client(bot.services)
    post_digest(bot.services, client)
    clock.advance(days=1)
    store_scan(bot, [two_scans["ada"], two_scans["root"]])  # dana's access was removed
    second = post_digest(bot.services, client)
    text = texts(headlines(bot.slack)[-1])
    assert "1 critical (−1)" in text and "0 new" in text and "1 resolved" in text
    assert "Changes since the previous digest (2026-11-29T12:00:00+00:00)" in text
    resolved = thread(bot.slack, second.ts)[0]
    assert "Resolved since the previous digest (1)" in texts(resolved) and "dana" in texts(resolved)


def test_failed_scans_and_several_accounts_are_reported_per_account(bot, clock):
    store_scan(bot, [finding("USER_CONSOLE_NO_MFA", "ada")], at=clock.now() - timedelta(hours=3))
    save_snapshot(
        bot.store,
        account_id=ACCOUNT_ID,
        account_name="prod",
        scanned_at=clock.now(),
        api_calls=1,
        inventory=None,
        findings=[],
        status="failed",
        error="AWS denied sts:AssumeRole <b>",
    )
    other = "210987654321"
    save_snapshot(
        bot.store,
        account_id=other,
        account_name="staging",
        scanned_at=clock.now(),
        api_calls=1,
        inventory=None,
        findings=[finding("ROOT_MFA_DISABLED", "root", Severity.CRITICAL, account_id=other)],
    )
    posted = post_digest(bot.services, build_client(bot.services))
    text = texts(headlines(bot.slack)[0])
    assert "prod (123456789012)" in text and "staging (210987654321)" in text
    assert "the latest scan failed (AWS denied sts:AssumeRole &lt;b&gt;); showing the previous one" in text
    # The reason and how old the snapshot shown instead is.
    assert "showing the previous one (last good snapshot 3 h old)" in text
    # With several accounts each item says which account it is in.
    new = thread(bot.slack, posted.ts)[0]
    assert "in `210987654321`" in texts(new)


def test_a_refused_reply_does_not_stop_the_rest_of_the_digest(bot, two_scans):
    client = build_client(bot.services)
    bot.slack.fail_next("files.getUploadURLExternal", error="not_allowed_token_type")
    posted = post_digest(bot.services, client)
    replies = thread(bot.slack, posted.ts)
    assert len(replies) == 4  # the three categories and a note about the missing CSV
    assert "Slack refused part of this digest (the CSV file)" in replies[-1]["text"]
    assert bot.slack.files() == []


def test_a_duplicated_finding_cannot_break_the_message(bot):
    ada = finding("OFFBOARDED_USER_ACTIVE", "ada", Severity.CRITICAL, owner="U0ALICE")
    store_scan(bot, [ada, ada])  # a check that yields the same hit twice
    posted = post_digest(bot.services, build_client(bot.services))  # FakeSlack refuses duplicate block ids
    assert "Needs offboarding first (2)" in texts(headlines(bot.slack)[0])
    assert thread(bot.slack, posted.ts)


def test_a_digest_with_thousands_of_findings_fits_slack_and_the_csv_has_all(bot, clock):
    many = [
        finding(
            ["ACCESS_KEY_UNUSED", "USER_CONSOLE_NO_MFA", "OFFBOARDED_USER_ACTIVE", "UNOWNED_USER"][i % 4],
            f"user-{i:05d}-with-a-rather-long-name",
            list(Severity)[i % 4],
            owner=f"U{i:07d}" if i % 3 else None,
            title="A finding title <b>&</b> long " * 3,
            detail="Detail " * 60,
            remediation="Console: do this\nCLI: " + "aws iam something " * 20,
        )
        for i in range(4000)
    ]
    store_scan(bot, many[:1000], at=clock.now() - timedelta(days=1))
    store_scan(bot, many[500:])  # 500 resolved, 1,000 new
    posted = post_digest(bot.services, build_client(bot.services))  # FakeSlack validates every message
    messages = [headlines(bot.slack)[0], *thread(bot.slack, posted.ts)]
    for message in messages:
        assert len(message["blocks"]) <= 50
        assert text_size(message["blocks"]) <= 12_000
        assert validate_blocks(message["blocks"]) == []
    replies = texts({"blocks": [b for m in messages[1:] for b in m["blocks"]]})
    assert "more: every one is in the CSV file in this thread" in replies
    rows = csv_rows(bot.slack)
    assert len(rows) == 3500 + 500
    assert sum(r["state"] == "resolved" for r in rows) == 500
    assert sum(r["state"] == "new" for r in rows) == 3000
    assert "<b>&</b>" in rows[0]["title"]  # the CSV keeps the raw text; only Slack text is escaped
