"""Helpers for the access tests: the STS call log, the config, the role in moto, clicks and reading
what Slack was sent. Fixtures (``federation``, ``jit``) are in this folder's conftest.py."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import boto3

from bot import access
from handlers.client import build_client
from handlers.ids import ActionId
from sandbox.federation import FederationStandIn
from tests.conftest import ACCOUNT_ID, DEFAULT_CONFIG

OTHER_ACCOUNT = "210987654321"
APPROVALS = "C0APPROVALS"


class AssumeRoleLog:
    """Every AssumeRole the bot's boto3 session makes, with the parameters as sent."""

    def __init__(self, services: Any):
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        services.aws.session.events.register("before-parameter-build.sts.AssumeRole", self._record)

    def _record(self, params: dict, **_: Any) -> None:
        with self._lock:
            self.calls.append(copy.deepcopy(params))

    @property
    def last(self) -> dict:
        return self.calls[-1]


def make_config(federation: FederationStandIn, **changes: Any) -> dict:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["access"] = {"federation_url": federation.url, **changes.pop("access", {})}
    role = config["roles"][0]
    role.update(changes.pop("role", {}))
    config["roles"] += changes.pop("extra_roles", [])
    config.update(changes)
    return config


def create_role(name: str = "prod-admin", max_session: int = 7200) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=max_session)


def request_messages(bot) -> list[dict]:
    return bot.slack.messages(APPROVALS)


def the_request(bot) -> access.AccessRequest:
    rows = bot.store.execute("SELECT id FROM access_requests ORDER BY created_at, rowid").fetchall()
    return access.get_request(bot.services, rows[-1][0])


def click(
    bot, user: str, action_id: str, request_id: str, *, channel: str = APPROVALS, message: dict | None = None
):
    if message is None:
        message = next((m for m in bot.slack.messages(channel) if has_action(m, action_id)), None)
    response = bot.sender.block_action(user, action_id, request_id, message=message, channel_id=channel)
    assert response.status == 200
    return response


def has_action(message: dict, action_id: str) -> bool:
    return any(
        el.get("action_id") == action_id
        for block in message.get("blocks", [])
        for el in (block.get("elements") or []) + ([block["accessory"]] if block.get("accessory") else [])
        if isinstance(el, dict)
    )


def text_of(message: dict) -> str:
    parts = [message.get("text", "")]
    for block in message.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for item in block.get("fields", []) or []:
            parts.append(item.get("text", ""))
        for el in block.get("elements", []) or []:
            if isinstance(el, dict) and isinstance(el.get("text"), str):
                parts.append(el["text"])
    return "\n".join(parts)


def credentials_from(ephemeral: dict) -> dict:
    """The credential_process JSON the requester was shown."""
    for block in ephemeral["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        if text.startswith("*credential_process*"):
            return json.loads(text.split("```")[1])
    raise AssertionError("no credential_process block")


def credential_ephemerals(bot, user: str = "U0ALICE") -> list[dict]:
    return [e for e in bot.slack.ephemerals(user) if e["text"].startswith("Credentials for")]


def wait_for_credentials(bot, count: int = 1, user: str = "U0ALICE") -> list[dict]:
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args.get("text", "").startswith("Credentials for"), count=count
    )
    return credential_ephemerals(bot, user)


def request_and_approve(bot, *, text: str = "request prod-admin 2h deploy hotfix", approver: str = "U0LEAD1"):
    ask(bot, "U0ALICE", text)
    request = the_request(bot)
    click(bot, approver, ActionId.ACCESS_APPROVE, request.id)
    creds = wait_for_credentials(bot)
    return access.get_request(bot.services, request.id), creds


def caller_identity(creds: dict) -> dict:
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return sts.get_caller_identity()


def run_job(bot, fn) -> None:
    fn(bot.services, build_client(bot.services))


def ask(bot, user: str, text: str) -> dict:
    """``/iam <text>`` as the member: the answer, from the ack (a mistake is answered there) or, for
    work done after the ack, from the response_url. Shaped like a response body."""
    response = bot.answer(user, text)
    assert response.status == 200
    return response.json() or {}


WORKING_TEXTS = ("Asking for approval…", "Breaking glass…")
