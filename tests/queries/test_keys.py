"""A member's access key slots, read from credential report rows (``bot.queries.keys``)."""

from __future__ import annotations

from bot import queries
from bot.identity import PrincipalRef
from tests.conftest import ACCOUNT_ID

ALICE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"


def test_key_slots_handle_every_credential_report_placeholder():
    ref = PrincipalRef(ACCOUNT_ID, ALICE_ARN, "alice", "user")
    row = {
        "access_key_1_active": "true",
        "access_key_1_last_rotated": "2026-01-01T00:00:00+00:00",
        "access_key_1_last_used_date": "N/A",
        "access_key_1_last_used_service": "N/A",
        "access_key_1_last_used_region": "N/A",
        "access_key_2_active": "false",
        "access_key_2_last_rotated": "2025-01-01T00:00:00+00:00",
        "access_key_2_last_used_date": "2025-02-01T00:00:00+00:00",
        "access_key_2_last_used_service": "not_supported",
        "access_key_2_last_used_region": "no_information",
    }
    first, second = queries.keys_from_row(ref, row)
    assert first.active and first.last_used is None and first.last_used_service is None
    assert not second.active and second.last_used is not None
    assert second.last_used_service is None and second.last_used_region is None
    assert (
        queries.keys_from_row(ref, {"access_key_1_active": "false", "access_key_1_last_rotated": "N/A"}) == []
    )
