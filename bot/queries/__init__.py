"""Answers to IAM questions, from the latest stored snapshots only (never a live AWS call).

Everything here reads what the scan stored (``bot.findings``): a member's findings across the IAM
principals mapped to them (``bot.identity``), their access keys from the credential report rows,
and offline ``can`` / ``who-can`` evaluation with the policy engine (``bot.policy``). The Slack
surface (``handlers.queries``) only renders these objects, and pages Slack's directory itself
(``bot.identity.refresh_directory`` takes the client it is given; nothing here calls Slack).

The package's modules: ``book`` (the parsed snapshots, cached per database), ``risks`` (a member's
findings), ``keys`` (a member's access keys), ``principals`` (what a typed name means), ``can``
(``can`` / ``who-can``), ``report`` (the security team's filtered findings and their CSV).
``from bot import queries`` gives the names other features and the tests use.
"""

from __future__ import annotations

from bot.queries.book import (
    MAX_BOOKS,
    SnapshotBook,
    SnapshotInfo,
    cached_book_count,
    current_book,
    next_scan_at,
    parse_time,
)
from bot.queries.can import BadAction, PrincipalDecision, WhoCan, can, check_action, who_can
from bot.queries.keys import AccessKeyInfo, MemberKeys, keys_from_row, member_keys
from bot.queries.principals import MemberNotMapped, PrincipalNotFound, resolve_principal
from bot.queries.report import (
    CSV_COLUMNS,
    BadFilter,
    FindingsFilter,
    FindingsReport,
    csv_cell,
    findings_csv,
    findings_report,
    known_check_ids,
    parse_findings_filter,
)
from bot.queries.risks import MemberRisks, member_risks, principal_findings, principal_risks

__all__ = [
    "CSV_COLUMNS",
    "MAX_BOOKS",
    "AccessKeyInfo",
    "BadAction",
    "BadFilter",
    "FindingsFilter",
    "FindingsReport",
    "MemberKeys",
    "MemberNotMapped",
    "MemberRisks",
    "PrincipalDecision",
    "PrincipalNotFound",
    "SnapshotBook",
    "SnapshotInfo",
    "WhoCan",
    "cached_book_count",
    "can",
    "check_action",
    "csv_cell",
    "current_book",
    "findings_csv",
    "findings_report",
    "keys_from_row",
    "known_check_ids",
    "member_keys",
    "member_risks",
    "next_scan_at",
    "parse_findings_filter",
    "parse_time",
    "principal_findings",
    "principal_risks",
    "resolve_principal",
    "who_can",
]
