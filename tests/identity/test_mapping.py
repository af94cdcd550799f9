"""Slack member ↔ IAM principal mapping: explicit config wins, else the email tag."""

from __future__ import annotations

from bot.identity import IdentityMap, identity_from_store, slack_member, store_directory
from bot.settings import Config
from bot.store import Store
from tests.conftest import NOW

INVENTORY = {
    "users": [
        {
            "UserName": "alice",
            "Arn": "arn:aws:iam::123456789012:user/alice",
            "Tags": [{"Key": "email", "Value": "Alice@Example.com"}],
        },
        {
            "UserName": "bob",
            "Arn": "arn:aws:iam::123456789012:user/bob",
            "Tags": [{"Key": "email", "Value": "bob@example.com"}],
        },
        {"UserName": "svc", "Arn": "arn:aws:iam::123456789012:user/svc", "Tags": []},
    ],
    "roles": [{"RoleName": "ops", "Arn": "arn:aws:iam::123456789012:role/ops"}],
}
MEMBERS = [
    {"id": "U1", "name": "alice", "profile": {"email": "alice@example.com"}},
    {"id": "U2", "name": "bob", "profile": {"email": "bob@example.com"}, "deleted": True},
    {"id": "U3", "name": "carol", "profile": {"email": "carol@example.com"}},
]


def test_email_tag_maps_members_case_insensitively(tmp_path):
    store = Store(tmp_path / "i.db")
    assert store_directory(store, MEMBERS, NOW) == 3
    ids = IdentityMap.build(Config(), store, {"123456789012": INVENTORY})
    assert [p.name for p in ids.principals_of("U1")] == ["alice"]
    assert ids.owner_of("arn:aws:iam::123456789012:user/bob") == "U2"
    assert ids.is_deactivated("U2") and not ids.is_deactivated("U1")
    assert ids.owner_of("arn:aws:iam::123456789012:user/svc") is None
    assert slack_member(store, "U3")["email"] == "carol@example.com"


def test_explicit_map_wins_over_tags(tmp_path):
    store = Store(tmp_path / "i.db")
    store_directory(store, MEMBERS, NOW)
    config = Config.model_validate(
        {"identity": {"map": {"U3": ["alice", "arn:aws:iam::123456789012:role/ops"]}}}
    )
    ids = IdentityMap.build(config, store, {"123456789012": INVENTORY})
    assert ids.owner_of("arn:aws:iam::123456789012:user/alice") == "U3"
    assert {p.name for p in ids.principals_of("U3")} == {"alice", "ops"}
    assert ids.principals_of("U1") == []


def test_identity_from_store_without_snapshots_is_empty(tmp_path):
    store = Store(tmp_path / "i.db")
    assert identity_from_store(Config(), store).principals_of("U1") == []
