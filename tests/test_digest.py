"""The daily digest end to end: stored snapshots → headline + thread + CSV in the local Slack,
buttons clicked through signed requests, slots claimed once across instances and restarts."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.digest import claim_slot, due_slot, slot_rows
from bot.findings import Finding, Severity, save_snapshot
from bot.settings import Config
from handlers.blocks import validate_blocks
from handlers.client import build_client
from handlers.digest import post_digest, run_digest_job, text_size
from handlers.ids import ActionId, BlockId, CallbackId
from tests.conftest import ACCOUNT_ID, DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CHANNEL = "C0SECURITY"


def finding(check_id: str, name: str, severity: Severity = Severity.HIGH, **kwargs) -> Finding:
    return Finding(
        check_id=check_id,
        severity=severity,
        account_id=kwargs.pop("account_id", ACCOUNT_ID),
        principal_arn=f"arn:aws:iam::{ACCOUNT_ID}:user/{name}",
        principal_name=name,
        title=kwargs.pop("title", check_id.replace("_", " ").capitalize()),
        detail=kwargs.pop("detail", f"{name} has a problem"),
        remediation=kwargs.pop("remediation", f"aws iam fix --user-name {name}"),
        **kwargs,
    )


def store_scan(bot, findings: list[Finding], *, at=None, account_name: str = "prod") -> int:
    return save_snapshot(
        bot.store,
        account_id=ACCOUNT_ID,
        account_name=account_name,
        scanned_at=at or bot.services.clock.now(),
        api_calls=7,
        inventory={"account_id": ACCOUNT_ID},
        findings=findings,
    )


def texts(message: dict) -> str:
    """Every text string in a stored message (fallback, blocks, buttons)."""
    parts = [message.get("text", "")]

    def walk(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "text" and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(parts)


def headlines(slack) -> list[dict]:
    return [m for m in slack.messages(CHANNEL) if not m.get("thread_ts")]


def thread(slack, ts: str) -> list[dict]:
    return [m for m in slack.messages(CHANNEL) if m.get("thread_ts") == ts]


def buttons_in(message: dict) -> list[dict]:
    found = []
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            found += [dict(el, block_id=block.get("block_id")) for el in block["elements"]]
    return found


def click(bot, user: str, message: dict, action_id: str, value: str):
    el = next(b for b in buttons_in(message) if b["action_id"] == action_id and b["value"] == value)
    return bot.sender.block_action(user, action_id, value, block_id=el["block_id"], message=message)


def csv_rows(slack) -> list[dict]:
    files = slack.files()
    assert files, "no CSV was uploaded"
    return list(csv.DictReader(io.StringIO(files[-1]["content"].decode())))


@pytest.fixture
def two_scans(bot, clock):
    """Yesterday: carlos (old key) and ada (no MFA). Today: carlos fixed, ada still, dana new (critical)."""
    yesterday = clock.now() - timedelta(days=1)
    carlos = finding(
        "ACCESS_KEY_NOT_ROTATED", "carlos", Severity.MEDIUM, detail_key="access_key_1", owner="U0BOB"
    )
    ada = finding("USER_CONSOLE_NO_MFA", "ada", Severity.HIGH, owner="U0ALICE")
    dana = finding("OFFBOARDED_USER_ACTIVE", "dana", Severity.CRITICAL, owner="U0DANA")
    root = finding("ROOT_MFA_DISABLED", "root", Severity.CRITICAL)
    store_scan(bot, [carlos, ada, root], at=yesterday - timedelta(days=3))
    store_scan(bot, [carlos, ada, root], at=yesterday)
    store_scan(bot, [ada, dana, root])
    return {"carlos": carlos, "ada": ada, "dana": dana, "root": root}


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
    from handlers.digest import finding_line

    digest = second.digest
    assert "marked fixed by <@U0ALICE> on 2026-11-29, but the scan after that still found it" in finding_line(
        digest.accounts[0].active[0], digest
    )


def test_scheduled_slot_is_posted_once_across_a_restart(make_bot, tmp_path, clock):
    first = make_bot(db=tmp_path / "shared.db")
    store_scan(first, [finding("USER_CONSOLE_NO_MFA", "ada")])
    posted = run_digest_job(first.services, build_client(first.services))
    assert posted is not None
    # The same process again, and a restarted instance on the same database: nothing new.
    assert run_digest_job(first.services, build_client(first.services)) is None
    first.server.stop()
    restarted = make_bot(db=tmp_path / "shared.db")
    assert run_digest_job(restarted.services, build_client(restarted.services)) is None
    assert len(headlines(restarted.slack)) == 1
    [slot] = slot_rows(restarted.store, kind="digest")
    assert (
        slot["slot"] == "2026-11-29T07:30:00+00:00" and slot["status"] == "posted" and slot["ts"] == posted.ts
    )
    # Tomorrow's slot is a new one.
    clock.advance(days=1)
    assert run_digest_job(restarted.services, build_client(restarted.services)) is not None
    assert len(headlines(restarted.slack)) == 2


def test_two_concurrent_posters_post_one_digest(make_bot, tmp_path):
    bots = [make_bot(db=tmp_path / "shared.db") for _ in range(2)]
    store_scan(bots[0], [finding("USER_CONSOLE_NO_MFA", "ada")])
    start = threading.Barrier(4)
    results: list = []

    def poster(b) -> None:
        client = build_client(b.services)
        start.wait()
        results.append(run_digest_job(b.services, client))

    threads = [threading.Thread(target=poster, args=(b,)) for b in (*bots, *bots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(r is not None for r in results) == 1
    assert len(headlines(bots[0].slack)) == 1
    assert len(bots[0].slack.files()) == 1


def test_missed_slot_is_caught_up_within_grace_once_and_not_after(bot, clock):
    schedule = bot.services.config.schedule
    # 12:00 is 4.5 h after the 07:30 slot: within the default 6 h grace.
    assert due_slot(schedule.digest_cron, schedule.timezone, clock.now(), schedule.catch_up_grace).hour == 7
    store_scan(bot, [finding("USER_CONSOLE_NO_MFA", "ada")])
    client = build_client(bot.services)
    assert run_digest_job(bot.services, client) is not None
    clock.advance(minutes=1)
    assert run_digest_job(bot.services, client) is None
    # Tomorrow the bot is down until 14:00: the 07:30 slot is beyond the grace and is skipped.
    clock.advance(days=1, hours=2)
    assert run_digest_job(bot.services, client) is None
    assert len(headlines(bot.slack)) == 1


def test_a_failed_post_can_be_retried_but_a_posted_slot_cannot(bot, clock):
    store = bot.store
    now = clock.now()
    assert claim_slot(store, kind="digest", channel=CHANNEL, slot="s1", now=now, instance="a")
    assert not claim_slot(store, kind="digest", channel=CHANNEL, slot="s1", now=now, instance="b")
    # The first poster vanished mid-post: after the lease another may take over.
    assert claim_slot(
        store, kind="digest", channel=CHANNEL, slot="s1", now=now + timedelta(minutes=16), instance="b"
    )
    bot.slack.fail_next("chat.postMessage", error="channel_not_found")
    store_scan(bot, [finding("USER_CONSOLE_NO_MFA", "ada")])
    with pytest.raises(Exception, match="channel_not_found"):
        run_digest_job(bot.services, build_client(bot.services))
    assert slot_rows(store, kind="digest")[0]["status"] == "failed"
    assert run_digest_job(bot.services, build_client(bot.services)) is not None
    assert len(headlines(bot.slack)) == 1


def _open_snooze(bot, user: str, f: Finding):
    post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[-1]
    return head, click(bot, user, head, ActionId.DIGEST_SNOOZE, f.fingerprint)


def test_snooze_is_for_the_security_team(bot, two_scans):
    head, response = _open_snooze(bot, "U0ALICE", two_scans["dana"])
    assert response.status == 200
    [answer] = bot.slack.wait_for("chat.postEphemeral")
    assert "security team" in answer.args["text"]
    assert bot.slack.calls_to("views.open") == []


def test_snooze_records_who_and_why_and_expiry_brings_the_finding_back(bot, two_scans, clock):
    dana = two_scans["dana"]
    head, _ = _open_snooze(bot, "U0SEC2", dana)  # U0SEC2 is on the team through @security
    [opened] = bot.slack.wait_for("views.open")
    view = opened.response["view"]
    assert view["callback_id"] == CallbackId.DIGEST_SNOOZE_MODAL
    until = (clock.now() + timedelta(days=10)).date().isoformat()
    response = bot.sender.view_submission(
        "U0SEC2",
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {
                BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "HR confirms <!channel> leave"}
            },
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    assert response.status == 200 and not response.body
    note = bot.slack.wait_for("chat.postMessage", lambda c: "snoozed" in c.args.get("text", ""))[0]
    assert note.args["thread_ts"] == head["ts"]
    assert "<!channel>" not in note.args["text"] and "&lt;!channel&gt;" in note.args["text"]
    [row] = list(bot.store.db["snoozes"].rows)
    assert row["snoozed_by"] == "U0SEC2" and row["reason"] == "HR confirms <!channel> leave"
    audit = [r for r in bot.store.audit_rows() if r["action"] == "finding.snooze"]
    assert audit and audit[0]["actor"] == "U0SEC2"
    # Next digest: dana is snoozed, not counted.
    clock.advance(days=1)
    store_scan(bot, list(two_scans[k] for k in ("ada", "dana", "root")))
    post_digest(bot.services, build_client(bot.services))
    text = texts(headlines(bot.slack)[-1])
    assert "1 critical (−1)" in text and "1 snoozed" in text
    # After the end date the finding is back.
    clock.advance(days=11)
    store_scan(bot, list(two_scans[k] for k in ("ada", "dana", "root")))
    third = post_digest(bot.services, build_client(bot.services))
    text = texts(headlines(bot.slack)[-1])
    assert "2 critical (+1)" in text and "0 snoozed" in text
    titles = [r["blocks"][0]["text"]["text"] for r in thread(bot.slack, third.ts)]
    assert "Back from snooze (1)" in titles
    assert [r["action"] for r in bot.store.audit_rows()].count("finding.snooze_expired") == 1


@pytest.mark.parametrize(
    ("days", "error"),
    [(91, "at most 90 days"), (-1, "in the future")],
)
def test_snooze_end_date_is_checked(bot, two_scans, clock, days, error):
    until = (clock.now() + timedelta(days=days)).date().isoformat()
    response = bot.sender.view_submission(
        "U0SEC1",
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "later"}},
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=json.dumps({"fingerprint": two_scans["ada"].fingerprint, "channel": CHANNEL}),
    )
    body = response.json()
    assert body["response_action"] == "errors"
    assert error in body["errors"][BlockId.SNOOZE_UNTIL]
    assert list(bot.store.db["snoozes"].rows) == []


def test_notify_owner_dms_the_owner_the_finding_and_its_fix(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    ada = two_scans["ada"]
    # Ada's finding is listed in no reply with buttons (it is neither new nor offboarding): use the
    # button as a re-posted item would carry it.
    message = {"ts": headlines(bot.slack)[0]["ts"], "channel": CHANNEL, "blocks": []}
    response = bot.sender.block_action(
        "U0SEC1", ActionId.DIGEST_NOTIFY_OWNER, ada.fingerprint, message=message
    )
    assert response.status == 200
    dm = bot.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "U0ALICE")[0]
    text = texts(dm.args)
    assert "<@U0SEC1> asked me" in text and "aws iam fix --user-name ada" in text
    assert bot.slack.wait_for("chat.postEphemeral")[0].args["text"].startswith("I sent <@U0ALICE>")
    assert any(r["action"] == "finding.notified" for r in bot.store.audit_rows())


def test_notify_owner_without_an_owner_says_how_to_map_one(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    root = two_scans["root"]
    bot.sender.block_action("U0SEC1", ActionId.DIGEST_NOTIFY_OWNER, root.fingerprint, channel_id=CHANNEL)
    answer = bot.slack.wait_for("chat.postEphemeral")[0].args["text"]
    assert "Nobody is known to own" in answer and "[identity] map" in answer


def test_acknowledge_records_who_once(bot, two_scans):
    post_digest(bot.services, build_client(bot.services))
    head = headlines(bot.slack)[0]
    dana = two_scans["dana"]
    click(bot, "U0ALICE", head, ActionId.DIGEST_ACKNOWLEDGE, dana.fingerprint)
    note = bot.slack.wait_for("chat.postMessage", lambda c: "acknowledged" in c.args.get("text", ""))[0]
    assert note.args["thread_ts"] == head["ts"]
    click(bot, "U0BOB", head, ActionId.DIGEST_ACKNOWLEDGE, dana.fingerprint)
    answer = bot.slack.wait_for("chat.postEphemeral")[0]
    assert "Already acknowledged by <@U0ALICE>" in answer.args["text"]
    assert [r["acknowledged_by"] for r in bot.store.db["acknowledgements"].rows] == ["U0ALICE"]
    post_digest(bot.services, build_client(bot.services))
    assert "acknowledged by <@U0ALICE>" in texts(headlines(bot.slack)[-1])


def nudge_dms(slack, user: str) -> list[dict]:
    return slack.messages("D" + user[1:])


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


def test_cli_digest_dry_run_prints_text_and_json_without_posting(tmp_path, slack):
    from bot.store import Store

    db = tmp_path / "cli.db"
    store = Store(db)
    save_snapshot(
        store,
        account_id=ACCOUNT_ID,
        account_name="prod",
        scanned_at=__import__("datetime").datetime(2026, 11, 29, 7, 0, tzinfo=__import__("datetime").UTC),
        api_calls=3,
        inventory=None,
        findings=[finding("USER_CONSOLE_NO_MFA", "ada")],
    )
    cfg = tmp_path / "iamwarden.toml"
    cfg.write_text('[slack]\ndigest_channel = "C0SECURITY"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "IAMWARDEN_DB": str(db), "IAMWARDEN_CONFIG": str(cfg)}
    exe = str(Path(sys.executable).parent / "iamwarden")
    text = subprocess.run([exe, "digest", "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Account prod (123456789012)" in text.stdout and "USER_CONSOLE_NO_MFA ada" in text.stdout
    as_json = subprocess.run([exe, "digest", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["channel"] == "C0SECURITY" and document["headline"]["blocks"][0]["type"] == "header"
    assert document["summary"]["counts"]["high"] == 1
    # Posting needs the token: one line, exit 2.
    post = subprocess.run([exe, "digest"], capture_output=True, text=True, env=env, timeout=60)
    assert post.returncode == 2 and post.stderr.strip() == "iamwarden: SLACK_BOT_TOKEN: is required"
    # And with it, it posts to the (local) Slack.
    env |= {"SLACK_BOT_TOKEN": "xoxb-testing", "IAMWARDEN_SLACK_API_URL": slack.base_url}
    post = subprocess.run([exe, "digest"], capture_output=True, text=True, env=env, timeout=60)
    assert post.returncode == 0, post.stderr
    assert "Posted the digest to C0SECURITY" in post.stdout
    assert len(headlines(slack)) == 1 and len(slack.files()) == 1


def test_iamwarden_run_schedules_scan_digest_and_catch_up_from_config(bot):
    from bot.jobs import JOBS

    config = Config.model_validate(
        {
            **DEFAULT_CONFIG,
            "schedule": {
                "scan_cron": "0 6 * * 1-5",
                "digest_cron": "15 6 * * 1-5",
                "timezone": "Europe/Paris",
            },
        }
    )
    bot.services.settings.config = config
    jobs = {spec.name: spec for spec in JOBS}
    assert jobs["scan"].cron(bot.services) == "0 6 * * 1-5"
    assert jobs["digest"].cron(bot.services) == "15 6 * * 1-5"
    assert jobs["schedule_catch_up"].every_seconds(bot.services) == 60.0
    # Monday 2026-11-30 07:00 Paris is 06:00 UTC: the 06:15 Paris slot (05:15 UTC) is the one due.
    from datetime import UTC, datetime

    slot = due_slot(
        "15 6 * * 1-5", "Europe/Paris", datetime(2026, 11, 30, 6, 0, tzinfo=UTC), timedelta(hours=6)
    )
    assert slot.astimezone(UTC) == datetime(2026, 11, 30, 5, 15, tzinfo=UTC)
    # Sunday has no slot at all.
    assert (
        due_slot(
            "15 6 * * 1-5", "Europe/Paris", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), timedelta(hours=6)
        )
        is None
    )


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


def test_the_scheduled_scan_runs_once_per_slot(make_bot, tmp_path):
    from handlers.digest import run_scan_job

    bots = [make_bot(db=tmp_path / "shared.db") for _ in range(2)]
    results = [run_scan_job(b.services, build_client(b.services)) for b in (*bots, *bots)]
    assert results == [True, False, False, False]
    assert bots[0].store.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
    assert [r["status"] for r in slot_rows(bots[0].store, kind="scan")] == ["posted"]


def test_a_duplicated_finding_cannot_break_the_message(bot):
    ada = finding("OFFBOARDED_USER_ACTIVE", "ada", Severity.CRITICAL, owner="U0ALICE")
    store_scan(bot, [ada, ada])  # a check that yields the same hit twice
    posted = post_digest(bot.services, build_client(bot.services))  # FakeSlack refuses duplicate block ids
    assert "Needs offboarding first (2)" in texts(headlines(bot.slack)[0])
    assert thread(bot.slack, posted.ts)


def _submit_snooze(bot, user: str, fingerprint: str, until: str):
    return bot.sender.view_submission(
        user,
        CallbackId.DIGEST_SNOOZE_MODAL,
        {
            BlockId.SNOOZE_REASON: {BlockId.SNOOZE_REASON: {"type": "plain_text_input", "value": "mine"}},
            BlockId.SNOOZE_UNTIL: {BlockId.SNOOZE_UNTIL: {"type": "datepicker", "selected_date": until}},
        },
        private_metadata=json.dumps({"fingerprint": fingerprint, "channel": CHANNEL}),
    )


def test_only_the_security_team_can_submit_a_snooze(bot, two_scans, clock):
    until = (clock.now() + timedelta(days=5)).date().isoformat()
    # Cold group cache: membership needs Slack, so the modal closes at once and the answer is private.
    response = _submit_snooze(bot, "U0ALICE", two_scans["ada"].fingerprint, until)
    assert response.status == 200 and not response.body
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0ALICE")
    assert "security team" in answer.args["text"] and "not snoozed" in answer.args["text"]
    # Warm cache (the check above filled it): refused in the ack itself, on the form.
    response = _submit_snooze(bot, "U0ALICE", two_scans["ada"].fingerprint, until)
    assert "security team" in response.json()["errors"][BlockId.SNOOZE_REASON]
    assert list(bot.store.db["snoozes"].rows) == []


def test_a_snooze_is_acked_before_any_user_group_call_while_slack_rate_limits(bot, two_scans, clock):
    """Cold group cache and usergroups.* answering 429: the ack needs no Web API call; the
    membership check and the snooze happen after it, once Slack answers."""
    until = (clock.now() + timedelta(days=5)).date().isoformat()
    bot.slack.fail_for(3, retry_after=2, methods=("usergroups.list", "usergroups.users.list"))
    response = _submit_snooze(bot, "U0SEC2", two_scans["ada"].fingerprint, until)  # via @security
    answered_at = time.time()
    assert response.status == 200 and not response.body
    bot.slack.wait_for("chat.postMessage", lambda c: "snoozed" in c.args.get("text", ""), timeout=30)
    [row] = list(bot.store.db["snoozes"].rows)
    assert row["snoozed_by"] == "U0SEC2"
    group_calls = [c for c in bot.slack.calls if c.method.startswith("usergroups.")]
    refused = [c for c in group_calls if c.status == 429]
    answered = [c for c in group_calls if c.status == 200]
    assert refused and answered
    # Had the check run before the ack, the ack would have waited for Slack's answer.
    assert all(c.at > answered_at for c in answered)
