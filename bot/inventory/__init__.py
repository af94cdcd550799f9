"""One account's IAM snapshot: read in bulk from AWS, then looked up by principal.

The package's modules: ``collect`` (reading an account's IAM in a constant number of calls into a
JSON-safe inventory; the credential report's format) and ``index`` (a principal's effective policy
statements over one inventory). ``from bot.inventory import ...`` keeps working: the names the checks,
the scan, answers and the tests use are re-exported here. The scan that runs the checks over each
account's inventory is ``bot.scan``: it sits above ``bot.checks``, which builds on this package.
"""

from __future__ import annotations

from bot.inventory.collect import (
    AWS_POLICY_PREFIX,
    GAAD_FILTER,
    MAX_SINGLE_AWS_POLICIES,
    NO_VALUE,
    OPTIONAL_RETRIES,
    OPTIONAL_SERVICES,
    PAGE,
    REPORT_POLL_DELAYS,
    CollectError,
    Inventory,
    _json_safe,
    collect,
    parse_credential_report,
    report_date,
)
from bot.inventory.index import PolicyIndex, attached_policy_names, principal_statements, unknown_source

__all__ = [
    "AWS_POLICY_PREFIX",
    "GAAD_FILTER",
    "MAX_SINGLE_AWS_POLICIES",
    "NO_VALUE",
    "OPTIONAL_RETRIES",
    "OPTIONAL_SERVICES",
    "PAGE",
    "REPORT_POLL_DELAYS",
    "CollectError",
    "Inventory",
    "PolicyIndex",
    "_json_safe",  # tests: the JSON round trip of botocore's types
    "attached_policy_names",
    "collect",
    "parse_credential_report",
    "principal_statements",
    "report_date",
    "unknown_source",
]
