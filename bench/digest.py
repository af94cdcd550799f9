"""Benchmark the digest: store two scans of a large estate, build, render and post the digest.

Run by hand: ``.venv/bin/python -m bench.digest [FINDINGS] [ACCOUNTS]``. Prints wall times, the
messages' sizes against Slack's limits, the CSV size and peak memory. Posting goes to the local
Slack stand-in (FakeSlack), which validates every message as Slack would.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FrozenClock
from bot.findings import Finding, Severity, save_snapshot
from bot.services import Services
from bot.settings import Config, load_settings
from handlers.client import build_client
from handlers.digest import headline_message, post_digest, text_size, thread_messages
from sandbox.slack_api import FakeSlack

CHECKS = ["ACCESS_KEY_UNUSED", "USER_CONSOLE_NO_MFA", "OFFBOARDED_USER_ACTIVE", "UNOWNED_USER", "ROLE_UNUSED"]


def findings(n: int, account: str, offset: int = 0) -> list[Finding]:
    return [
        Finding(
            check_id=CHECKS[i % len(CHECKS)],
            severity=list(Severity)[i % 4],
            account_id=account,
            principal_arn=f"arn:aws:iam::{account}:user/user-{i:06d}",
            principal_name=f"user-{i:06d}",
            title="A finding with a realistic title",
            detail="Access key 1 was last used 200 days ago (limit 45). " * 2,
            remediation="Console: IAM → Users → … \nCLI: aws iam update-access-key --status Inactive",
            owner=f"U{i % 500:07d}" if i % 3 else None,
        )
        for i in range(offset, offset + n)
    ]


def main(total: int = 20_000, accounts: int = 5) -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    clock = FrozenClock(now)
    workdir = Path(tempfile.mkdtemp(prefix="iamwarden-bench-"))
    slack = FakeSlack().start()
    try:
        settings = load_settings(
            slack_bot_token="xoxb-testing",
            slack_signing_secret="bench",
            slack_api_url=slack.base_url,
            db=workdir / "bench.db",
            config=Config.model_validate({"slack": {"digest_channel": "C0SECURITY"}}),
        )
        services = Services.from_settings(settings, clock=clock)
        per_account = total // accounts
        ids = [f"{100000000000 + i}" for i in range(accounts)]
        started = time.perf_counter()
        for account in ids:
            save_snapshot(
                services.store,
                account_id=account,
                scanned_at=now - timedelta(days=1),
                api_calls=1,
                inventory=None,
                findings=findings(per_account, account),
            )
            # Today: 10% resolved, 10% new.
            save_snapshot(
                services.store,
                account_id=account,
                scanned_at=now,
                api_calls=1,
                inventory=None,
                findings=findings(per_account, account, offset=per_account // 10),
            )
        stored = time.perf_counter() - started

        from bot.digest import build_digest

        tracemalloc.start()
        started = time.perf_counter()
        digest = build_digest(services.store, channel="C0SECURITY", now=now)
        built = time.perf_counter() - started
        started = time.perf_counter()
        messages = [headline_message(digest), *thread_messages(digest)]
        csv_text = digest.csv()
        rendered = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        started = time.perf_counter()
        posted = post_digest(services, build_client(services))
        post_time = time.perf_counter() - started

        print(
            f"findings per scan: {per_account * accounts} in {accounts} accounts (two scans stored in {stored:.2f} s)"
        )
        print(
            f"build_digest: {built:.2f} s; render + CSV: {rendered:.2f} s; peak Python memory {peak / 1e6:.0f} MB"
        )
        print(
            f"post (headline + {posted.replies} replies + CSV upload to the local Slack): {post_time:.2f} s"
        )
        worst_blocks = max(len(m.blocks) for m in messages)
        worst_text = max(text_size(m.blocks) for m in messages)
        print(
            f"largest message: {worst_blocks} blocks (limit 50), {worst_text} chars of block text (limit ~12,000)"
        )
        print(f"CSV: {len(csv_text.splitlines()) - 1} rows, {len(csv_text.encode()) / 1e6:.1f} MB")
    finally:
        slack.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
