"""Helpers for the digest tests: findings and stored scans, and reading what the local Slack was sent
(headlines, threads, buttons, the CSV). The ``two_scans`` fixture is in this folder's conftest.py."""

from __future__ import annotations

import csv
import io

from bot.findings import Finding, Severity, save_snapshot
from tests.conftest import ACCOUNT_ID

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


def nudge_dms(slack, user: str) -> list[dict]:
    return slack.messages("D" + user[1:])
