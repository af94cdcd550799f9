"""bot.aws against a real moto server over HTTP: one shared session for every account, and the
botocore Config (timeouts, bounded adaptive retries) every client carries."""

from __future__ import annotations

import boto3

from bot.aws import CONNECT_TIMEOUT, MAX_ATTEMPTS, READ_TIMEOUT, AwsFactory, CallCounter


def _member_account() -> str:
    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    status = org.create_account(Email="member@example.com", AccountName="member")["CreateAccountStatus"]
    return status["AccountId"]


def test_a_role_factory_shares_the_session_and_acts_as_the_role(aws):
    member = _member_account()
    base = AwsFactory()
    role = base.for_role(f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole")
    # One session (its loaders, read once per process) for every account: no new Session per role.
    assert role.session is base.session
    identity = role.client("sts").get_caller_identity()
    assert identity["Account"] == member
    assert ":assumed-role/OrganizationAccountAccessRole/" in identity["Arn"]
    # The parent still acts as itself: the role's credentials are the role factory's only.
    assert base.client("sts").get_caller_identity()["Account"] != member
    # Each account's IAM is its own: a user made as the role exists only in the member account.
    role.client("iam").create_user(UserName="only-in-member")
    names = {u["UserName"] for u in base.client("iam").list_users()["Users"]}
    assert "only-in-member" not in names


def test_a_counter_of_its_own_counts_one_accounts_requests(aws):
    member = _member_account()
    base = AwsFactory()
    counter = CallCounter()
    role = base.with_counter(counter).for_role(f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole")
    role.client("iam").list_users()
    assert dict(counter.by_operation) == {"sts:AssumeRole": 1, "iam:ListUsers": 1}
    assert base.counter.total == 0


def test_every_client_has_bounded_timeouts_and_adaptive_retries(aws):
    member = _member_account()
    for factory in (
        AwsFactory(),
        AwsFactory().for_role(f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole"),
    ):
        config = factory.client("iam").meta.config
        assert config.connect_timeout == CONNECT_TIMEOUT and config.read_timeout == READ_TIMEOUT
        assert config.retries["mode"] == "adaptive"  # throttling backs off and is rate limited
        assert config.retries["total_max_attempts"] == MAX_ATTEMPTS


# --------------------------------------------------------------------------- timestamps

from datetime import UTC, date, datetime, timedelta, timezone  # noqa: E402

from botocore.utils import parse_timestamp as botocore_parse_timestamp  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bot.aws import parse_timestamp  # noqa: E402
from bot.inventory import _json_safe  # noqa: E402

_MOMENTS = st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2200, 1, 1))
_ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])


@settings(max_examples=300, deadline=None)
@given(_MOMENTS, _ZONES, st.sampled_from(["iso", "z", "space", "rfc822", "epoch", "epoch-float"]))
def test_the_fast_timestamp_parser_agrees_with_botocores(moment, zone, shape):
    """Whatever shape a timestamp comes in, the scan reads the same moment botocore would."""
    moment = moment.replace(tzinfo=zone)
    text = {
        "iso": moment.isoformat(),
        "z": moment.replace(tzinfo=None).isoformat() + "Z",
        "space": moment.isoformat(sep=" "),
        "rfc822": moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "epoch": str(int(moment.replace(tzinfo=zone or UTC).timestamp())),
        "epoch-float": f"{moment.replace(tzinfo=zone or UTC).timestamp():.3f}",
    }[shape]
    ours, theirs = parse_timestamp(text), botocore_parse_timestamp(text)
    assert (ours.tzinfo is None) == (theirs.tzinfo is None)
    assert ours == theirs


def test_clients_of_a_factory_parse_timestamps_with_the_fast_parser(aws):
    base = AwsFactory()
    base.client("iam").create_user(UserName="dated")
    created = base.client("iam").get_user(UserName="dated")["User"]["CreateDate"]
    assert isinstance(created, datetime) and created.utcoffset() == timedelta(0)
    factory = base.session._session.get_component("response_parser_factory")
    assert factory._defaults["timestamp_parser"] is parse_timestamp


def test_inventory_values_are_made_json_safe_the_same_way_as_before():
    value = {
        "when": datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 1, 2),
        "raw": b"csv,\xff",
        "nested": [{"t": (1, 2)}, None, True, 1.5],
    }
    assert _json_safe(value) == {
        "when": "2026-01-02T01:04:05+00:00",
        "day": "2026-01-02",
        "raw": "csv,\ufffd",
        "nested": [{"t": [1, 2]}, None, True, 1.5],
    }


def test_warming_fills_the_session_caches_every_thread_would_race_to_fill(aws):
    base = AwsFactory()
    loader = base.session._session.get_component("data_loader")
    base.warm(("iam", "sts"))
    cached = {key[:3] for key in loader._cache if key[0] == "load_service_model"}
    assert {
        ("load_service_model", "iam", "paginators-1"),
        ("load_service_model", "sts", "service-2"),
    } <= cached
    assert base.client("iam").list_users()["Users"] == []  # warming sent nothing and changed nothing
