"""Reading the accounts: which ones (``[[accounts]]``, AWS Organizations), how to reach each one
(its audit role), and each in its own daemon thread under the scan's deadlines."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import AwsFactory, CallCounter, describe_aws_error, is_access_denied
from bot.inventory import CollectError, Inventory, collect
from bot.settings import AccountConfig, Config

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (account id or name, phase)


@dataclass
class AccountTarget:
    """One account to read: its id (None = whoever the credentials belong to) and how to reach it."""

    account_id: str | None
    name: str = ""
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.account_id or "this account"


def _organization_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    org = aws.client("organizations")
    management = org.describe_organization()["Organization"].get("MasterAccountId")
    targets = []
    for page in org.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts") or []:
            if account.get("Status", "ACTIVE") != "ACTIVE" or account["Id"] in config.organizations.exclude:
                continue
            role = (
                None
                if account["Id"] == management
                else f"arn:aws:iam::{account['Id']}:role/{config.organizations.audit_role_name}"
            )
            targets.append(AccountTarget(account["Id"], account.get("Name", ""), role))
    return targets


def account_targets(aws: AwsFactory, config: Config) -> list[AccountTarget]:
    """Accounts to scan: ``[[accounts]]``, plus AWS Organizations members when enabled; else our own."""
    targets: dict[str, AccountTarget] = {}
    if config.organizations.enabled:
        for target in _organization_targets(aws, config):
            targets[target.account_id or ""] = target
    for account in config.accounts:
        targets[account.id] = _target_of(account)
    return list(targets.values()) or [AccountTarget(None)]


def _target_of(account: AccountConfig) -> AccountTarget:
    return AccountTarget(account.id, account.name, account.role_arn, account.external_id)


class AccountAbandoned(Exception):
    """Raised in an abandoned account's thread by its next request: it stops at once, unsent."""


class AccountWatch(CallCounter):
    """One account's requests: counted, the operation in flight known (for "timed out reading X"),
    and stopped once the coordinator has given up on the account (its ``before-send`` raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()
        self._in_flight: list[str] = []

    def attach(self, client: Any) -> Any:
        super().attach(client)
        events = client.meta.events
        events.register("before-call.*.*", self._started)
        events.register("after-call.*.*", self._finished)
        events.register("after-call-error.*.*", self._finished)
        events.register_first("before-send.*.*", self._refuse_if_abandoned)
        return client

    # The operation comes from the event's name ("before-call.iam.GetAccountAuthorizationDetails"):
    # after-call-error carries no model.
    def _started(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self._in_flight.append(event_name.rsplit(".", 1)[-1])

    def _finished(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            if operation in self._in_flight:
                self._in_flight.remove(operation)

    def _refuse_if_abandoned(self, **_: Any) -> None:
        if self.abandoned.is_set():
            raise AccountAbandoned("the scan gave up on this account")

    @property
    def operation(self) -> str | None:
        """The oldest operation still in flight, if any."""
        with self._lock:
            return self._in_flight[0] if self._in_flight else None


Collected = tuple[AccountTarget, Inventory | None, int, str | None]


def collect_account(
    base: AwsFactory,
    target: AccountTarget,
    *,
    clock: Any,
    progress: Progress | None,
    sleep: Callable[[float], None] | None,
    watch: AccountWatch | None = None,
) -> Collected:
    """Read one account (through its role when it has one): its inventory, or why not. Never raises."""
    counter = watch or AccountWatch()
    aws = base.with_counter(counter)
    say = (lambda phase: progress(target.label, phase)) if progress else None
    try:
        if target.role_arn:
            if say:
                say("assuming " + target.role_arn)
            aws = aws.for_role(target.role_arn, external_id=target.external_id)
        kwargs: dict[str, Any] = {"account_id": target.account_id, "clock": clock, "progress": say}
        if sleep is not None:
            kwargs["sleep"] = sleep
        inventory = collect(aws, **kwargs)
        inventory["api_calls"] = counter.total  # the assume-role call counts too
        inventory["api_calls_by_operation"] = dict(counter.by_operation)
        return target, inventory, counter.total, None
    except AccountAbandoned:
        return target, None, counter.total, "abandoned"  # the coordinator no longer listens
    except CollectError as exc:
        return target, None, counter.total, str(exc)
    except (ClientError, BotoCoreError) as exc:
        what = f"assuming {target.role_arn}" if target.role_arn else "reading the account"
        message = describe_aws_error(exc, what)
        if target.role_arn and is_access_denied(exc):
            # AssumeRole needs both halves: our permission and the member role's trust. The trust
            # policy is the usual culprit (a role made before the bot, or by another stack).
            message += (
                f" Most often the member role's trust policy does not admit the bot's role: "
                f"add the bot's role ARN as a Principal of {target.role_arn}'s trust policy."
            )
        return target, None, counter.total, message
    except Exception as exc:  # one broken account must not stop the others
        log.exception("scanning %s failed", target.label)
        return target, None, counter.total, f"scanning failed: {type(exc).__name__}"


def human_duration(seconds: float) -> str:
    """``300`` → "5 min", ``2`` → "2 s", ``5400`` → "90 min"."""
    seconds = round(seconds)
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def _timed_out(watch: AccountWatch, limit: float, what: str = "") -> str:
    operation = watch.operation
    reading = f" reading {operation}" if operation else " between AWS requests"
    return f"timed out after {human_duration(limit)}{reading}{what}"


def collect_with_deadlines(
    targets: list[AccountTarget],
    read: Callable[[AccountTarget, AccountWatch], Collected],
    *,
    workers: int,
    account_timeout: float,
    scan_timeout: float,
    on_done: Callable[[Collected], None],
) -> None:
    """Read each target in its own daemon thread (at most ``workers`` at a time) and hand each
    result to ``on_done`` in this thread as soon as it arrives. A target past ``account_timeout``
    (or still unread at ``scan_timeout``) is handed over as failed, "timed out after …", and
    abandoned: its thread's further requests fail at once and its late result is dropped."""
    results: queue.SimpleQueue[tuple[int, Collected]] = queue.SimpleQueue()
    pending = list(enumerate(targets))
    pending.reverse()
    running: dict[int, tuple[AccountTarget, AccountWatch, float]] = {}
    scan_deadline = time.monotonic() + scan_timeout

    def start(index: int, target: AccountTarget) -> None:
        watch = AccountWatch()
        running[index] = (target, watch, time.monotonic() + account_timeout)
        threading.Thread(
            target=lambda: results.put((index, read(target, watch))), name=f"scan-{index}", daemon=True
        ).start()

    def give_up(index: int, error: str) -> None:
        target, watch, _ = running.pop(index)
        watch.abandoned.set()
        on_done((target, None, watch.total, error))

    while pending or running:
        while pending and len(running) < workers:
            start(*pending.pop())
        deadline = min(min(d for _, _, d in running.values()), scan_deadline)
        try:
            index, collected = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            if now >= scan_deadline:
                for index in list(running):
                    give_up(
                        index,
                        _timed_out(
                            running[index][1],
                            scan_timeout,
                            f" (the scan's {human_duration(scan_timeout)} deadline)",
                        ),
                    )
                for _, target in reversed(pending):
                    on_done(
                        (
                            target,
                            None,
                            0,
                            f"not read: the scan's {human_duration(scan_timeout)} deadline passed",
                        )
                    )
                return
            for index, (_, watch, account_deadline) in list(running.items()):
                if now >= account_deadline:
                    give_up(index, _timed_out(watch, account_timeout))
            continue
        if index in running:  # else: a late result of an abandoned account, never stored
            del running[index]
            on_done(collected)
