"""Helpers for the scan tests: collect the moto account, run the catalog, compare (check, principal) sets."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.aws import AwsFactory
from bot.findings import Finding, FindingStatus
from bot.inventory import collect
from bot.scan import run_checks
from bot.settings import Config

ACCOUNT_ID = "123456789012"


def scan(clock: Any, config: dict | Config | None = None, *, owners: Any = None) -> list[Finding]:
    """Collect the (moto) account the environment points at and run every check."""
    cfg = config if isinstance(config, Config) else Config.model_validate(config or {})
    inventory = collect(AwsFactory(), account_id=ACCOUNT_ID, clock=clock, sleep=lambda s: None)
    return run_checks(inventory, cfg, now=clock.now(), owners=owners)


def failed(findings: list[Finding], check_id: str | None = None) -> set[tuple[str, str | None]]:
    """(check id, principal name) of the findings that failed (not unknown, not suppressed)."""
    return {
        (f.check_id, f.principal_name)
        for f in findings
        if f.status == FindingStatus.FAIL
        and not f.suppressed
        and (check_id is None or f.check_id == check_id)
    }


def unknown(findings: list[Finding], check_id: str | None = None) -> list[Finding]:
    return [
        f
        for f in findings
        if f.status == FindingStatus.UNKNOWN and (check_id is None or f.check_id == check_id)
    ]


def of(findings: list[Finding], check_id: str) -> list[Finding]:
    return [f for f in findings if f.check_id == check_id]


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def trust(principal: Any, **extra: Any) -> str:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra})


def days_ago(clock: Any, days: float) -> datetime:
    from datetime import timedelta

    return clock.now() - timedelta(days=days)
