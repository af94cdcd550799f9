"""The pure parts of just-in-time access: names STS accepts, revocation pruning, log scrubbing,
Block Kit builders within Slack's limits. (End-to-end behaviour is in test_flows.py.)"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from bot import access
from bot.access import AccessRequest, IssuedCredentials
from handlers import access as views
from handlers.blocks import validate_blocks

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
STS_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


def make_request(**changes) -> AccessRequest:
    values = dict(
        id="r0123456789",
        kind="request",
        requester="U0ALICE",
        role="prod-admin",
        role_arn="arn:aws:iam::123456789012:role/prod-admin",
        account_id="123456789012",
        duration_seconds=3600,
        reason="deploy",
        state="pending",
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
    )
    values.update(changes)
    return AccessRequest(**values)


@pytest.mark.parametrize("requester", ["U0ALICE", "W" + "X" * 80, "U0 a/b:c*d", "x"])
def test_role_session_name_and_source_identity_are_always_valid(requester):
    name = access.role_session_name(requester, "r" + "f" * 30)
    assert STS_NAME.match(name) and len(name) <= 64
    assert STS_NAME.match(access.source_identity(requester))


def test_session_tags_use_allowed_characters_and_name_every_approver():
    request = make_request(approvers=["U0LEAD1", "U0LEAD2"])
    tags = {t["Key"]: t["Value"] for t in access.session_tags(request)}
    assert tags["iamwarden:approvers"] == "U0LEAD1 U0LEAD2"
    assert all(re.fullmatch(r"[\w .:/=+\-@]{1,256}", v) for v in tags.values())


def test_session_policy_denies_everything_after_the_window():
    policy = access.session_policy(NOW + timedelta(hours=2))
    allow, deny, no_chaining = policy["Statement"]
    assert allow == {"Sid": "WithinTheRole", "Effect": "Allow", "Action": "*", "Resource": "*"}
    assert deny["Effect"] == "Deny" and deny["Action"] == "*"
    assert deny["Condition"] == {"DateGreaterThan": {"aws:CurrentTime": "2026-11-29T14:00:00+00:00"}}
    # Chaining is closed by default: a chained session would escape the window and revocation.
    assert no_chaining == {
        "Sid": "NoRoleChaining",
        "Effect": "Deny",
        "Action": "sts:AssumeRole*",
        "Resource": "*",
    }


def test_session_policy_allows_chaining_only_when_the_role_says_so():
    policy = access.session_policy(NOW + timedelta(hours=2), allow_role_chaining=True)
    assert [s["Sid"] for s in policy["Statement"]] == ["WithinTheRole", "NothingAfterTheApprovedWindow"]


def _statement(who: str, until: datetime, tag: str = "r1") -> dict:
    return access._revocation_statement(who, NOW, until, tag)


def test_revocations_prune_expired_keep_foreign_and_merge_the_same_identity():
    foreign = {"Sid": "SomeoneElses", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    existing = {
        "Version": "2012-10-17",
        "Statement": [
            foreign,
            _statement("U0OLD", NOW - timedelta(minutes=1), "r1"),  # every session it targets is gone
            _statement("U0BOB", NOW + timedelta(hours=1), "r2"),
            _statement("U0ALICE", NOW + timedelta(hours=3), "r3"),
        ],
    }
    merged = access.merge_revocations(existing, _statement("U0ALICE", NOW + timedelta(hours=1), "r4"), NOW)
    sids = [s["Sid"] for s in merged["Statement"]]
    assert sids[0] == "SomeoneElses"
    assert list(access.denied_identities(merged)) == ["U0BOB", "U0ALICE"]
    # The merged statement lives as long as the longer-lived one it replaced.
    assert sids[-1] == f"Revoker4Until{int((NOW + timedelta(hours=3)).timestamp())}"


def test_secrets_are_scrubbed_from_library_logs_even_before_they_are_known(caplog):
    caplog.set_level(logging.DEBUG)
    body = (
        "<AssumeRoleResult><Credentials><AccessKeyId>ASIAKEEP</AccessKeyId>"
        "<SecretAccessKey>s3cr3t/Key+1</SecretAccessKey><SessionToken>T0ken+/=</SessionToken>"
    )
    logging.getLogger("botocore.parsers").debug("Response body:\n%r", body.encode())
    logging.getLogger("slack_sdk.web.base_client").debug(
        "body %s", {"text": 'export AWS_SECRET_ACCESS_KEY=abc\n{"SessionToken": "zzz"}'}
    )
    access.SCRUBBER.add("verbatim-secret-value", NOW + timedelta(days=3650))
    logging.getLogger("botocore.endpoint").debug("something with verbatim-secret-value inside")
    text = caplog.text
    for secret in ("s3cr3t/Key+1", "T0ken+/=", "abc", "zzz", "verbatim-secret-value"):
        assert secret not in text
    assert "ASIAKEEP" in text and "[redacted]" in text


def test_issued_credentials_never_show_secrets_in_repr():
    creds = IssuedCredentials(
        access_key_id="ASIA1",
        secret_access_key=SecretStr("very-secret"),
        session_token=SecretStr("very-token"),
        expiration=NOW + timedelta(hours=1),
        window_end=NOW + timedelta(hours=2),
        duration_seconds=3600,
        session_name="iamwarden-U0ALICE-r1",
        account_id="123456789012",
        role_arn="arn:aws:iam::123456789012:role/prod-admin",
    )
    assert "very-secret" not in repr(creds) and "very-token" not in repr(creds)
    assert creds.effective_end == NOW + timedelta(hours=1)
    document = json.loads(creds.credential_process_json())
    assert document["Version"] == 1 and document["SecretAccessKey"] == "very-secret"


class _Services:
    """Just enough of Services for the pure builders."""

    def __init__(self) -> None:
        from bot.clock import FrozenClock
        from bot.settings import Config

        self.clock = FrozenClock(NOW)
        self.config = Config.model_validate(
            {
                "roles": [
                    {
                        "name": "prod-admin",
                        "arn": "arn:aws:iam::123456789012:role/prod-admin",
                        "max_duration": "2h",
                        "approvers": ["U0LEAD1", "@sre-leads"],
                        "break_glass": True,
                        "break_glass_requesters": ["U0ALICE"],
                    }
                ]
            }
        )


@pytest.mark.parametrize("state", [s.value for s in access.State])
@pytest.mark.parametrize("kind", [k.value for k in access.Kind])
def test_request_message_is_valid_block_kit_in_every_state(state, kind):
    request = make_request(
        state=state,
        kind=kind,
        reason="<!channel> " + "x" * 5000,
        ticket="<@U0SEC1>",
        approvers=["U0LEAD1"],
        window_end=NOW + timedelta(hours=1),
        decided_by="U0LEAD1",
        ended_by="U0LEAD1",
        ended_at=NOW,
        review_required=kind == "break_glass",
        parent_id="r9" if kind == "extension" else None,
    )
    message = views.request_message(_Services(), request)
    assert validate_blocks(message.blocks) == []
    text = json.dumps(message.blocks)
    assert "<!channel>" not in text and "<@U0SEC1>" not in text
    values = {el.get("value") for b in message.blocks if b["type"] == "actions" for el in b["elements"]}
    assert values <= {request.id}


def test_duration_choices_stop_at_the_largest_role_maximum():
    services = _Services()
    choices = access.duration_choices(services, services.config.roles)
    assert [access.format_duration(c) for c in choices] == ["15m", "30m", "1h", "2h"]


def _row(who: str, before: datetime, until: datetime) -> dict:
    return {
        "identity": who,
        "request_id": "r",
        "issued_before": before.isoformat(),
        "until": until.isoformat(),
    }


def test_revocations_sharing_a_cutoff_share_one_statement_and_each_identity_keeps_its_own_cutoff():
    foreign = {"Sid": "SomeoneElses", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    first, second = NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    rows = [
        _row("U0ANN", first, NOW + timedelta(hours=1)),
        _row("U0BOB", first, NOW + timedelta(hours=3)),
        _row("U0CAT", second, NOW + timedelta(hours=1)),
        _row("U0DAN", first, NOW + timedelta(hours=1)),
        _row("U0DAN", second, NOW + timedelta(hours=2)),  # a later cutoff for Dan replaces the earlier one
        _row("U0OLD", first, NOW - timedelta(minutes=1)),  # every session it targets is gone
    ]
    document = access.document_from_state(rows, [foreign], NOW)
    assert document["Statement"][0] == foreign
    ours = document["Statement"][1:]
    assert [s["Condition"]["StringEquals"]["aws:SourceIdentity"] for s in ours] == [
        ["U0ANN", "U0BOB"],
        ["U0CAT", "U0DAN"],
    ]
    # The shared statement lives as long as its longest-lived member.
    assert (
        ours[0]["Sid"] == f"Revoke{int(first.timestamp())}Until{int((NOW + timedelta(hours=3)).timestamp())}"
    )
    assert access.denied_identities(document) == {
        "U0ANN": first.isoformat(),
        "U0BOB": first.isoformat(),
        "U0CAT": second.isoformat(),
        "U0DAN": second.isoformat(),
    }


def test_the_bots_log_output_never_carries_an_issued_secret_from_any_logger_or_traceback(capsys):
    import logging
    from datetime import UTC, datetime, timedelta

    from bot.access.redaction import SCRUBBER
    from iamwarden.cli import configure_logging

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYISSUEDSECRET"
    SCRUBBER.add(secret, datetime.now(UTC) + timedelta(minutes=5))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        # A child of a scrubbed logger (its own filters never see the child's records), and a traceback.
        logging.getLogger("bot.access.grant").error("issued %s", secret)
        try:
            raise RuntimeError(f"boom {secret}")
        except RuntimeError:
            logging.getLogger("somewhere.else").exception("failed")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "issued [redacted]" in err and "boom [redacted]" in err
    assert secret not in err
