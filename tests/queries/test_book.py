"""Memory stays flat across snapshots: the caches answers are built from hold the newest snapshots
of each database only, however many scans have been stored (issue 11: the bot grew from 62 MB to
275 MB over four snapshots). Asserted on the caches' contents, never on timing or RSS."""

from __future__ import annotations

from datetime import timedelta

from bot import identity, queries
from bot.findings import Finding, Severity, latest_snapshots, save_snapshot
from handlers.client import build_client
from tests.conftest import ACCOUNT_ID, NOW
from tests.queries.test_queries import block_text

SNAPSHOTS = 10


def _store_snapshot(store, n: int) -> int:
    """A snapshot whose only user, ``alice-N``, is tagged with alice's email and has one finding."""
    name = f"alice-{n}"
    arn = f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    return save_snapshot(
        store,
        account_id=ACCOUNT_ID,
        scanned_at=NOW + timedelta(hours=n),
        api_calls=1,
        inventory={
            "account_id": ACCOUNT_ID,
            "users": [
                {"UserName": name, "Arn": arn, "Tags": [{"Key": "email", "Value": "alice@example.com"}]}
            ],
            "roles": [],
        },
        findings=[
            Finding(
                check_id="ACCESS_KEY_UNUSED",
                severity=Severity.MEDIUM,
                account_id=ACCOUNT_ID,
                principal_arn=arn,
                principal_name=name,
                title="Active access key unused",
            )
        ],
    )


def _entries_for(cache: dict, store) -> list[tuple]:
    """Identity-cache keys that belong to this database (key: config id, path, snapshot ids, version)."""
    return [key for key in cache if key[1] == str(store.path)]


def test_ten_snapshots_answered_in_one_process_keep_one_book_and_one_identity_map(bot):
    identity.refresh_directory(bot.services, build_client(bot.services))
    for n in range(1, SNAPSHOTS + 1):
        snapshot_id = _store_snapshot(bot.store, n)
        text = block_text(bot.command("U0ALICE", "whoami-risks").json())
        # Answered from the newest snapshot, not a cached older one…
        assert f"alice-{n}`" in text and f"alice-{n - 1}`" not in text
        # …and the caches hold that snapshot only: the superseded ones were let go.
        assert queries.cached_book_count() <= queries.MAX_BOOKS
        books = [entry for owner, entry in queries.book._BOOKS.items() if owner[1] == str(bot.store.path)]
        assert [key for key, _ in books] == [((snapshot_id,),)]
        assert len(identity._CACHE) <= identity.MAX_IDENTITY_MAPS
        assert [key[2] for key in _entries_for(identity._CACHE, bot.store)] == [(snapshot_id,)]
    assert [s["id"] for s in latest_snapshots(bot.store)] == [snapshot_id]


def test_a_directory_change_replaces_the_identity_map_instead_of_adding_one(bot):
    identity.refresh_directory(bot.services, build_client(bot.services))
    _store_snapshot(bot.store, 1)
    assert "alice-1`" in block_text(bot.command("U0ALICE", "whoami-risks").json())
    before = _entries_for(identity._CACHE, bot.store)
    bot.slack.add_user("U0CAROL", name="carol", email="carol@example.com")
    identity.refresh_directory(bot.services, build_client(bot.services))
    assert "alice-1`" in block_text(bot.command("U0ALICE", "whoami-risks").json())
    after = _entries_for(identity._CACHE, bot.store)
    assert len(before) == len(after) == 1 and before != after


def test_many_databases_in_one_process_stay_within_the_bounds(make_bot, tmp_path):
    for i in range(queries.MAX_BOOKS + 3):
        other = make_bot(db=tmp_path / f"db{i}.db")
        _store_snapshot(other.store, i)
        assert other.command("U0ALICE", "whoami-risks").status == 200
        assert queries.cached_book_count() <= queries.MAX_BOOKS
        assert len(identity._CACHE) <= identity.MAX_IDENTITY_MAPS
