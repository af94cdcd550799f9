"""Shared parts of the identity tests: moto's IAM, the directory cached from the local Slack, a scan."""

from __future__ import annotations

import boto3

from bot.identity import store_directory
from bot.scan import scan_accounts
from handlers.client import build_client


def iam():
    return boto3.client("iam", region_name="us-east-1")


def refresh_directory(bot) -> None:
    members = build_client(bot.services).users_list()["members"]
    store_directory(bot.store, members, bot.services.clock.now())


def scan(bot):
    [result] = scan_accounts(bot.services, sleep=lambda s: None)
    assert result.ok, result.error
    return result.findings
