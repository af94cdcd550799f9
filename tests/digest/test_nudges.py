"""Owners' nudges: opt-in, at most one DM per finding per ``every_days``, answered Fixed or Not mine."""

from __future__ import annotations

from bot.settings import Config
from handlers.client import build_client
from handlers.digest import finding_line, post_digest
from handlers.ids import ActionId
from tests.conftest import DEFAULT_CONFIG
from tests.digest.support import (
    CHANNEL,
    buttons_in,
    click,
    csv_rows,
    finding,
    headlines,
    nudge_dms,
    store_scan,
    texts,
    thread,
)


def test_nudges_are_opt_in(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    assert nudge_dms(bot.slack, "U0ALICE") == []


def test_nudges_are_rate_limited_per_finding(make_bot, clock):
    config = Config.model_validate({**DEFAULT_CONFIG, "nudges": {"enabled": True, "every_days": 3}})
    bot = make_bot(config)
    ada = finding("USER_CONSOLE_NO_MFA", "ada", owner="U0ALICE")
    store_scan(bot, [ada])
    client = build_client(bot.services)
    assert post_digest(bot.services, client).nudges == 1
    [dm] = nudge_dms(bot.slack, "U0ALICE")
    assert "USER CONSOLE NO MFA".lower() in texts(dm).lower() and "aws iam fix --user-name ada" in texts(dm)
    assert [b["text"]["text"] for b in buttons_in(dm)] == ["Fixed", "Not mine"]
    for _ in range(2):  # the next two days: no DM about the same finding
        clock.advance(days=1)
        store_scan(bot, [ada])
        assert post_digest(bot.services, client).nudges == 0
    # A new finding for the same owner is due at once; the old one is not repeated with it.
    bob_key = finding("ACCESS_KEY_UNUSED", "ada", detail_key="access_key_1", owner="U0ALICE")
    store_scan(bot, [ada, bob_key])
    assert post_digest(bot.services, client).nudges == 1
    assert "Active access key unused".lower() not in texts(nudge_dms(bot.slack, "U0ALICE")[0]).lower()
    assert "access key unused" in texts(nudge_dms(bot.slack, "U0ALICE")[-1]).lower()
    assert "no mfa" not in texts(nudge_dms(bot.slack, "U0ALICE")[-1]).lower()
    clock.advance(days=1)  # three days after the first DM: due again
    store_scan(bot, [ada, bob_key])
    assert post_digest(bot.services, client).nudges == 1
    assert len(nudge_dms(bot.slack, "U0ALICE")) == 3


def test_resolved_finding_credits_the_fixer(bot, two_scans, clock):
    client = build_client(bot.services)
    bot.services.config.nudges.enabled = True
    post_digest(bot.services, client)
    dm = next(m for m in bot.slack.messages("D0ALICE"))
    response = click(bot, "U0ALICE", dm, ActionId.NUDGE_FIXED, two_scans["ada"].fingerprint)
    assert response.status == 200
    bot.slack.wait_for("chat.update")
    clock.advance(days=1)
    store_scan(bot, [two_scans["dana"], two_scans["root"]])
    second = post_digest(bot.services, client)
    resolved = thread(bot.slack, second.ts)
    text = "\n".join(texts(r) for r in resolved)
    assert "ada" in text and "fixed by <@U0ALICE>" in text
    assert next(r for r in csv_rows(bot.slack) if r["principal_name"] == "ada")["resolved_by"] == "U0ALICE"


def test_a_fixed_answer_the_next_scan_contradicts_is_shown(make_bot, clock):
    bot = make_bot(Config.model_validate({**DEFAULT_CONFIG, "nudges": {"enabled": True}}))
    ada = finding("USER_CONSOLE_NO_MFA", "ada", owner="U0ALICE")
    store_scan(bot, [ada])
    client = build_client(bot.services)
    post_digest(bot.services, client)
    [dm] = nudge_dms(bot.slack, "U0ALICE")
    click(bot, "U0ALICE", dm, ActionId.NUDGE_FIXED, ada.fingerprint)
    bot.slack.wait_for("chat.update")
    assert "Marked fixed by <@U0ALICE>" in texts(nudge_dms(bot.slack, "U0ALICE")[0])
    # Before the next scan the answer is simply pending; after it, the digest says the scan disagrees.
    post_digest(bot.services, client)
    assert "marked fixed" not in texts(headlines(bot.slack)[-1])
    clock.advance(days=1)
    store_scan(bot, [ada])
    second = post_digest(bot.services, client)
    csv_state = next(r for r in csv_rows(bot.slack) if r["principal_name"] == "ada")["state"]
    assert csv_state == "open"
    [disputed] = thread(bot.slack, second.ts)
    assert disputed["blocks"][0]["text"]["text"] == "Marked fixed, still found (1)"
    assert "ada" in texts(disputed)
    digest = second.digest
    assert "marked fixed by <@U0ALICE> on 2026-11-29, but the scan after that still found it" in finding_line(
        digest.accounts[0].active[0], digest
    )


def test_not_mine_goes_to_the_security_channel(make_bot):
    config = Config.model_validate({**DEFAULT_CONFIG, "nudges": {"enabled": True}})
    bot = make_bot(config)
    ada = finding("USER_CONSOLE_NO_MFA", "ada", owner="U0ALICE")
    store_scan(bot, [ada])
    post_digest(bot.services, build_client(bot.services))
    [dm] = nudge_dms(bot.slack, "U0ALICE")
    # Someone else cannot answer for the owner.
    click(bot, "U0BOB", dm, ActionId.NUDGE_NOT_MINE, ada.fingerprint)
    assert (
        "belongs to <@U0ALICE>"
        in bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == "U0BOB")[0].args["text"]
    )
    click(bot, "U0ALICE", dm, ActionId.NUDGE_NOT_MINE, ada.fingerprint)
    posted = bot.slack.wait_for(
        "chat.postMessage", lambda c: "not theirs" in c.args.get("text", "") or "not theirs" in texts(c.args)
    )
    assert posted[0].args["channel"] == CHANNEL
    bot.slack.wait_for("chat.update")
    updated = nudge_dms(bot.slack, "U0ALICE")[0]
    assert "Marked not mine by <@U0ALICE>" in texts(updated)
    assert buttons_in(updated) == []
    assert any(r["action"] == "finding.not_mine" and r["actor"] == "U0ALICE" for r in bot.store.audit_rows())
