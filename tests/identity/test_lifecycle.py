"""The offboarding lifecycle in the domain alone (no Slack app): one member_changed call per
user_change, a notifier that records, and Disable access refused from stored state."""

from __future__ import annotations

import pytest

from bot import identity
from bot.identity import OffboardingReport
from tests.conftest import ACCOUNT_ID, make_services


class RecordingNotifier:
    def __init__(self, *, fail: bool = False):
        self.alerts: list[OffboardingReport] = []
        self.changed: list[list[str]] = []
        self.fail = fail

    def access_changed(self, request_ids: list[str]) -> None:
        self.changed.append(request_ids)

    def offboarding_alert(self, report: OffboardingReport) -> tuple[str, str]:
        if self.fail:
            raise RuntimeError("no channel")
        self.alerts.append(report)
        return "C0SECURITY", f"1700000000.{len(self.alerts):06d}"


@pytest.fixture
def services(tmp_path, slack, clock):
    return make_services(tmp_path, slack, clock)


def member(user_id: str = "U0ALICE", *, deleted: bool = False) -> dict:
    return {
        "id": user_id,
        "name": "alice",
        "real_name": "Alice",
        "profile": {"email": "alice@example.com"},
        "deleted": deleted,
    }


def actions(services) -> list[str]:
    return [r["action"] for r in services.store.audit_rows() if r["action"].startswith("offboarding.")]


def test_a_deactivation_is_offboarded_once_and_a_reactivation_closes_it(services):
    notifier = RecordingNotifier()
    assert identity.member_changed(services, member(), notifier) == "updated"
    assert identity.member_changed(services, member(deleted=True), notifier, event_id="Ev1") == "offboarded"
    assert identity.member_changed(services, member(deleted=True), notifier, event_id="Ev1") == (
        "claimed elsewhere or alert pending"
    )
    [report] = notifier.alerts
    assert (report.user_id, report.name, report.email, report.source) == (
        "U0ALICE",
        "Alice",
        "alice@example.com",
        "user_change",
    )
    assert identity.is_offboarded(services, "U0ALICE")
    assert identity.member_changed(services, member(), notifier) == "reactivated"
    assert not identity.is_offboarded(services, "U0ALICE")
    assert actions(services) == [
        "offboarding.detected",
        "offboarding.alerted",
        "offboarding.reactivated",
    ]


def test_an_alert_slack_refuses_waits_for_the_sweep(services):
    assert identity.member_changed(services, member(deleted=True), RecordingNotifier(fail=True)) == (
        "claimed elsewhere or alert pending"
    )
    assert "offboarding.alert_failed" in actions(services)
    notifier = RecordingNotifier()
    assert identity.sweep(services, notifier) == 1
    assert [r.user_id for r in notifier.alerts] == ["U0ALICE"]
    assert identity.sweep(services, notifier) == 0


def test_disable_access_is_refused_from_stored_state_before_any_aws_call(services):
    assert identity.disable_for_offboarding(
        services, 999, ACCOUNT_ID, "alice-iam", actor="U0SEC1"
    ).status == ("not_stored")
    assert identity.disable_for_offboarding(services, None, "", "", actor="U0SEC1").status == "not_stored"
    identity.member_changed(services, member(deleted=True), RecordingNotifier())
    [row] = services.store.db["offboardings"].rows
    outcome = identity.disable_for_offboarding(services, row["id"], ACCOUNT_ID, "ghost", actor="U0SEC1")
    assert (outcome.status, outcome.member) == ("not_linked", "U0ALICE")  # no scan links ghost to her
    assert not [r for r in services.store.audit_rows() if r["action"].startswith("offboarding.disable")]
