"""The parsers, unit by unit: CloudTrail records from either source, every shape of event time,
anything a queue may carry, and PutEventSelectors requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import alerts as alert_store
from tests.alerts.support import event


def test_lookup_record_and_eventbridge_envelope_parse_to_the_same_event(clock):
    record = event("attach_user_policy_admin", clock.now())
    from_lookup = alert_store.parse_lookup(
        {
            "EventId": record["eventID"],
            "EventName": record["eventName"],
            "CloudTrailEvent": json.dumps(record),
        }
    )
    envelope = {
        "version": "0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "detail": record,
    }
    assert alert_store.parse_eventbridge(json.dumps(envelope)) == from_lookup
    assert from_lookup.account_id == "123456789012" and from_lookup.action == "iam:AttachUserPolicy"


def test_unreadable_messages_are_parse_errors_and_other_events_are_ignored():
    with pytest.raises(alert_store.EventParseError):
        alert_store.parse_eventbridge("{not json")
    with pytest.raises(alert_store.EventParseError):
        alert_store.parse_eventbridge(json.dumps({"detail": {"eventName": "X"}}))  # no id, no time
    other = {
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "detail": {"state": "x"},
    }
    assert alert_store.parse_eventbridge(json.dumps(other)) is None


# -- parsers, fuzzed -----------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@given(
    moments,
    st.sampled_from(["T", " "]),
    st.sampled_from(["", ".1", ".123", ".123456", ".123456789"]),
    st.sampled_from(["Z", "+00:00", "", " UTC"]),
)
def test_every_way_cloudtrail_writes_a_time_reads_to_the_same_second(moment, sep, fraction, zone):
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + zone
    assert alert_store.parse_event_time(text) == moment.replace(microsecond=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
details = st.fixed_dictionaries(
    {},
    optional={
        "eventID": json_values,
        "eventName": json_values,
        "eventTime": json_values,
        "eventSource": json_values,
        "userIdentity": json_values,
        "requestParameters": json_values,
        "responseElements": json_values,
        "errorCode": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(details)
def test_any_record_parses_to_an_event_or_a_clear_parse_error(detail):
    envelope = {
        "detail-type": "AWS API Call via CloudTrail",
        "detail": detail,
        "time": "2026-11-29T12:00:00Z",
    }
    try:
        parsed = alert_store.parse_eventbridge(json.dumps(envelope))
    except alert_store.EventParseError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    if parsed is not None:
        assert parsed.event_id and parsed.event_time.tzinfo is not None


selectors = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "readWriteType": st.sampled_from(["All", "ReadOnly", "WriteOnly"]),
            "includeManagementEvents": st.booleans(),
            "excludeManagementEventSources": st.lists(st.sampled_from(["kms.amazonaws.com"]), max_size=1),
        },
    ),
    max_size=3,
)


@given(selectors)
def test_selectors_are_tampering_exactly_when_no_selector_logs_every_management_event(basic):
    full = any(
        s.get("includeManagementEvents", True) is not False
        and s.get("readWriteType", "All") == "All"
        and not s.get("excludeManagementEventSources")
        for s in basic
    )
    verdict = alert_store.selectors_drop_management_events({"eventSelectors": basic})
    assert (verdict is None) == full
