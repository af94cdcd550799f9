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
