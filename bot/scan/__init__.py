"""The hygiene scan: collect each account's snapshot, run the catalog, store snapshot and findings.

The package's modules: ``accounts`` (which accounts, how to reach each, reading them under the
scan's deadlines), ``checking`` (the AWS-free half: inventory in, findings out, suppressions
applied), ``pool`` (the checks in ``forkserver`` worker processes), ``orchestration``
(``scan_accounts``: read, check and store every account), ``report`` (summary lines, a failed
account's snapshot age, the JSON/CSV/table output) and ``commands`` (``iamwarden scan`` and
``iamwarden checks``, the demo's tour). ``from bot.scan import ...`` keeps working: the names other
features, the wiring, the bench and the tests use are re-exported here, and importing the package
registers the two ``@command`` CLI commands.

The scan sits above ``bot.checks``, which sits above ``bot.inventory`` (one account's snapshot).
"""

from __future__ import annotations

from bot.scan.accounts import (
    AccountAbandoned,
    AccountTarget,
    AccountWatch,
    Collected,
    Progress,
    account_targets,
    collect_with_deadlines,
    human_duration,
)
from bot.scan.checking import apply_suppressions, run_checks
from bot.scan.commands import cmd_checks, cmd_scan
from bot.scan.orchestration import AccountScan, scan_accounts
from bot.scan.pool import PROCESS_MIN_ACCOUNTS, CheckedAccount, ChecksPool, _running, check_processes
from bot.scan.report import (
    CSV_FIELDS,
    failure_text,
    scan_document,
    snapshot_age,
    summary_counts,
    summary_line,
)

__all__ = [
    "CSV_FIELDS",
    "PROCESS_MIN_ACCOUNTS",
    "AccountAbandoned",
    "AccountScan",
    "AccountTarget",
    "AccountWatch",
    "CheckedAccount",
    "ChecksPool",
    "Collected",
    "Progress",
    "_running",  # tests: is a checks worker still alive
    "account_targets",
    "apply_suppressions",
    "check_processes",
    "cmd_checks",
    "cmd_scan",
    "collect_with_deadlines",
    "failure_text",
    "human_duration",
    "run_checks",
    "scan_accounts",
    "scan_document",
    "snapshot_age",
    "summary_counts",
    "summary_line",
]
