"""Races and outages against the real parts: concurrent revocations on one role (threads and two bot
instances on one database), re-issue and extension racing Revoke with AssumeRole held open by a
botocore hook, and break glass when the security alert cannot be posted."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from bot import access
from handlers.ids import ActionId
from tests.access.support import (
    APPROVALS,
    click,
    create_role,
    credential_ephemerals,
    make_config,
    request_and_approve,
    request_messages,
    the_request,
    wait_for_credentials,
)

REVOKER = "U0LEAD1"


def revocation_policy() -> dict | None:
    iam = boto3.client("iam", region_name="us-east-1")
    try:
        return iam.get_role_policy(RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME)[
            "PolicyDocument"
        ]
    except iam.exceptions.NoSuchEntityException:
        return None


def denied(document: dict | None) -> dict[str, str]:
    """SourceIdentity → the TokenIssueTime before which the role denies its sessions."""
    return access.denied_identities(document)


def granted_directly(services, requester: str) -> access.AccessRequest:
    """A granted request made through the domain (the races below are about revoking it)."""
    request = access.create_request(
        services, requester=requester, role_name="prod-admin", duration="1h", reason="race"
    )
    outcome, _ = access.approve(services, request.id, "U0LEAD2")
    assert outcome == access.Approval.APPROVED
    granted, creds = access.grant(services, request.id)
    assert granted.state == "granted" and creds is not None
    return granted


def test_concurrent_revocations_on_one_role_from_threads_and_two_instances_never_lose_a_deny(
    make_bot, federation, aws, clock, tmp_path
):
    create_role()
    config = make_config(federation)
    db = tmp_path / "shared.db"
    bots = [make_bot(config, db=db), make_bot(config, db=db)]
    members_per_trial = 4
    for trial in range(20):
        members = [f"U{trial:02d}M{i}" for i in range(members_per_trial)]
        for member in members:
            bots[0].slack.add_user(member, name=member.lower())
        requests = [granted_directly(bots[i % 2].services, m) for i, m in enumerate(members)]
        barrier = threading.Barrier(len(requests))
        statuses: list[int] = []

        def fire(index: int, request: access.AccessRequest) -> None:
            barrier.wait()
            bot = bots[index % 2]  # alternate instances: two Services on one database file
            statuses.append(bot.sender.block_action(REVOKER, ActionId.ACCESS_REVOKE, request.id).status)

        threads = [threading.Thread(target=fire, args=(i, r)) for i, r in enumerate(requests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * len(requests)
        answers = bots[0].slack.wait_for(
            "chat.postEphemeral",
            lambda c, ids={r.id for r in requests}: (
                c.args.get("user") == REVOKER and any(i in c.args.get("text", "") for i in ids)
            ),
            count=len(requests),
        )
        assert all("Live sessions were cut off" in a.args["text"] for a in answers), trial
        policy = denied(revocation_policy())
        assert set(members) <= set(policy), f"trial {trial}: {sorted(set(members) - set(policy))} not denied"
        for request in requests:
            grants = access.grants_of(bots[0].services, request.id)
            cutoff = datetime.fromisoformat(policy[request.requester])
            assert all(g.issued_at < cutoff for g in grants)
            assert access.get_request(bots[0].services, request.id).state == "revoked"
        # SQLite and AWS agree: nothing is left for the sweep to write.
        assert access.sync_pending_revocations(bots[0].services) == []
        clock.advance(hours=3)  # the trial's sessions expire: their statements may be pruned next time
    # The pruning happened: the last write holds only the last trial's members.
    assert set(denied(revocation_policy())) == {f"U19M{i}" for i in range(members_per_trial)}


def test_sixty_revocations_of_sixty_members_on_one_role_are_all_denied(make_bot, federation, aws, clock):
    create_role()
    bot = make_bot(make_config(federation))
    members = [f"U0SIXTY{i:02d}" for i in range(60)]
    requests = [granted_directly(bot.services, m) for m in members]
    for request in requests:
        clock.advance(milliseconds=100)  # a burst over 6 s: cutoffs in 7 distinct seconds
        revocation = access.revoke(bot.services, request.id, REVOKER)
        assert revocation is not None and revocation.policy_written, revocation and revocation.problem
    document = revocation_policy()
    policy = denied(document)
    assert set(policy) == set(members)
    for request in requests:
        cutoff = datetime.fromisoformat(policy[request.requester])
        assert all(g.issued_at < cutoff for g in access.grants_of(bot.services, request.id))
    # Members revoked within the same second share one statement.
    assert len(document["Statement"]) <= 8
    assert len(json.dumps(document, separators=(",", ":"))) <= access.INLINE_POLICY_LIMIT


def test_a_revocation_that_does_not_fit_tells_the_revoker_and_security(make_bot, federation, aws, clock):
    create_role()
    bot = make_bot(make_config(federation))
    members = [f"U0FULL{i:02d}" for i in range(60)]
    for member in members:
        bot.slack.add_user(member, name=member.lower())
    requests = [granted_directly(bot.services, m) for m in members]
    written = []
    for request in requests[:-1]:
        clock.advance(seconds=1)  # every cutoff in its own second: one statement each
        revocation = access.revoke(bot.services, request.id, REVOKER)
        assert revocation is not None
        written.append(revocation.policy_written)
    assert written[:40] == [True] * 40 and written[-1] is False  # the role's space ran out in between
    clock.advance(seconds=1)
    last = requests[-1]
    assert bot.sender.block_action(REVOKER, ActionId.ACCESS_REVOKE, last.id).status == 200
    [answer] = bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args.get("user") == REVOKER and last.id in c.args.get("text", "")
    )
    assert "could not stop live sessions" in answer.args["text"] and "space is full" in answer.args["text"]
    [alert] = bot.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "C0SECURITY" and last.id in c.args.get("text", ""),
    )
    assert "deny could not be written" in alert.args["text"]
    assert last.requester not in denied(revocation_policy())


def test_a_revocation_write_that_fails_is_retried_by_the_sweep_until_aws_holds_it(jit, monkeypatch):
    bot, _ = jit()
    request, _ = request_and_approve(bot)
    # IAM unreachable for the revocation write.
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:9")
    click(bot, REVOKER, ActionId.ACCESS_REVOKE, request.id)
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == REVOKER)
    assert "could not stop live sessions" in answer.args["text"]
    assert access.get_request(bot.services, request.id).state == "revoked"
    monkeypatch.delenv("AWS_ENDPOINT_URL_IAM")
    assert denied(revocation_policy()) == {}
    from handlers import access as access_handlers
    from handlers.client import build_client

    access_handlers.run_access_sweep(bot.services, build_client(bot.services))
    assert "U0ALICE" in denied(revocation_policy())
    assert access.sync_pending_revocations(bot.services) == []


class HeldAssumeRole:
    """A botocore ``before-send`` hook that holds the next AssumeRole open until released."""

    def __init__(self, services: Any):
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        services.aws.session.events.register("before-send.sts.AssumeRole", self._hold)

    def _hold(self, **_: Any) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(30)


@pytest.mark.parametrize("issuer", ["reissue", "extension"])
def test_issuing_racing_revoke_never_delivers_a_session_the_deny_does_not_cover(jit, clock, issuer):
    bot, sts = jit()
    hold = HeldAssumeRole(bot.services)
    request, _ = request_and_approve(bot, text="request prod-admin 1h migrate")
    hold.armed = True
    if issuer == "reissue":
        click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, request.id)
    else:
        click(bot, "U0ALICE", ActionId.ACCESS_EXTEND, request.id)
        bot.slack.wait_for("chat.postMessage", lambda c: c.args["channel"] == APPROVALS, count=2)
        extension = the_request(bot)
        click(bot, "U0LEAD2", ActionId.ACCESS_APPROVE, extension.id, message=request_messages(bot)[-1])
    assert hold.entered.wait(10), "AssumeRole never started"
    started = time.monotonic()
    response = click(bot, REVOKER, ActionId.ACCESS_REVOKE, request.id, message=request_messages(bot)[0])
    assert response.status == 200 and time.monotonic() - started < 3  # acked while AssumeRole is held
    time.sleep(0.5)  # Revoke is now waiting for the request's lease
    assert access.get_request(bot.services, request.id).state == "revoked"
    hold.release.set()
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == REVOKER and "ended" in c.args["text"]
    )
    assert len(sts.calls) == 2
    # The session made while Revoke waited is recorded, covered by the deny, and never delivered.
    grants = access.grants_of(bot.services, request.id)
    assert len(grants) == 2
    cutoff = datetime.fromisoformat(denied(revocation_policy())["U0ALICE"])
    assert all(g.issued_at < cutoff for g in grants)
    time.sleep(0.5)
    assert len(credential_ephemerals(bot)) == 1  # only the first, from before the revoke
    if issuer == "reissue":
        bot.slack.wait_for(
            "chat.postEphemeral",
            lambda c: c.args["user"] == "U0ALICE" and "were not delivered" in c.args["text"],
        )


def test_cutoff_rounds_up_so_a_session_from_the_same_second_is_denied():
    now = datetime.fromisoformat("2026-11-29T12:10:00.400000+00:00")
    grant = access.Grant("ASIA1", now.replace(microsecond=0), now + timedelta(hours=1), "s", "grant")
    cutoff = access.revocation_cutoff(now, [grant])
    assert cutoff == datetime.fromisoformat("2026-11-29T12:10:01+00:00")
    assert grant.issued_at < cutoff


# -- break glass is never silent ----------------------------------------------------------------------


BREAK_GLASS_ROLE = {"break_glass": True, "max_duration": "1h", "break_glass_requesters": ["U0ALICE"]}


@pytest.mark.parametrize(
    ("failure", "told"),
    [
        ({"error": "not_in_channel"}, "the bot is not in channel C0SECURITY"),
        ({"error": "fatal_error", "status": 503, "times": 3}, "Slack answered fatal_error"),
    ],
)
def test_break_glass_grants_nothing_when_the_security_alert_cannot_be_posted(jit, failure, told):
    bot, sts = jit(role=BREAK_GLASS_ROLE)
    bot.slack.fail_next("chat.postMessage", **failure)
    assert bot.command("U0ALICE", "breakglass prod-admin database is on fire").status == 200
    [answer] = bot.slack.wait_for("response_url", lambda c: "Break glass refused" in c.args.get("text", ""))
    assert told in answer.args["text"] and "Nothing was granted" in answer.args["text"]
    assert sts.calls == [] and credential_ephemerals(bot) == []
    request = the_request(bot)
    assert request.state == "failed" and access.grants_of(bot.services, request.id) == []
    assert "break_glass_refused" in [r["action"] for r in bot.store.audit_rows()]
    # Slack is back: breaking glass works (the refused attempt did not use up the daily cap).
    assert bot.command("U0ALICE", "breakglass prod-admin database is on fire").status == 200
    wait_for_credentials(bot)
    assert len(sts.calls) == 1
    alert = bot.slack.messages("C0SECURITY")[0]
    assert "BREAK GLASS" in json.dumps(alert)


def test_break_glass_is_only_for_the_roles_break_glass_requesters(jit):
    bot, sts = jit(role=BREAK_GLASS_ROLE)
    bot.command("U0BOB", "breakglass prod-admin let me in")
    bot.slack.wait_for("response_url", lambda c: "break_glass_requesters" in c.args.get("text", ""))
    assert sts.calls == [] and bot.slack.messages("C0SECURITY") == []


def test_break_glass_without_requesters_is_a_configuration_error_at_start_up(tmp_path):
    from bot.settings import SettingsError, load_config

    path = tmp_path / "iamwarden.toml"
    path.write_text(
        '[[roles]]\nname = "prod-admin"\narn = "arn:aws:iam::123456789012:role/prod-admin"\nbreak_glass = true\n'
    )
    with pytest.raises(SettingsError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "break_glass_requesters" in message and "\n" not in message


def test_sessions_deny_role_chaining_unless_the_role_allows_it(jit):
    bot, sts = jit()
    request_and_approve(bot)
    statements = json.loads(sts.last["Policy"])["Statement"]
    assert {
        "Sid": "NoRoleChaining",
        "Effect": "Deny",
        "Action": "sts:AssumeRole*",
        "Resource": "*",
    } in statements


def test_a_role_that_allows_chaining_gets_no_chaining_deny(jit):
    bot, sts = jit(role={"allow_role_chaining": True})
    request_and_approve(bot)
    assert "NoRoleChaining" not in sts.last["Policy"]
