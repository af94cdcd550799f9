"""Helpers for the alerts tests: CloudTrail fixtures, an EventBridge → SQS pipeline on moto, the
LookupEvents stub, and a bot configured to read them."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import DEFAULT_CONFIG

FIXTURES = Path(__file__).parent / "fixtures" / "cloudtrail"
CHANNEL = "C0SECURITY"

# What the README tells people to create (kept identical by test_readme_pattern_matches_the_tests).
EVENT_PATTERN = {
    "$or": [
        {"detail-type": ["AWS Console Sign In via CloudTrail"]},
        {
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventSource": ["iam.amazonaws.com", "cloudtrail.amazonaws.com"]},
        },
        {"detail-type": ["AWS API Call via CloudTrail"], "detail": {"userIdentity": {"type": ["Root"]}}},
        {"source": ["aws.access-analyzer"], "detail-type": ["Access Analyzer Finding"]},
        {
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "errorCode": [
                    "AccessDenied",
                    "AccessDeniedException",
                    "UnauthorizedOperation",
                    "Client.UnauthorizedOperation",
                ]
            },
        },
        {
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["organizations.amazonaws.com"],
                "eventName": ["LeaveOrganization", "RemoveAccountFromOrganization"],
            },
        },
        {
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": [
                    "guardduty.amazonaws.com",
                    "config.amazonaws.com",
                    "ec2.amazonaws.com",
                    "securityhub.amazonaws.com",
                    "access-analyzer.amazonaws.com",
                ],
                "eventName": [
                    "DeleteDetector",
                    "UpdateDetector",
                    "StopConfigurationRecorder",
                    "DeleteConfigurationRecorder",
                    "DeleteDeliveryChannel",
                    "DeleteFlowLogs",
                    "DisableSecurityHub",
                    "DeleteAnalyzer",
                ],
            },
        },
    ]
}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def event(name: str, at: datetime, **changes: Any) -> dict[str, Any]:
    """A CloudTrail record from the fixtures, at ``at`` with a fresh event id, plus ``changes``
    (dotted keys reach into nested objects: ``{"userIdentity.userName": "carol"}``)."""
    record = fixture(name)
    record["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    record["eventID"] = str(uuid.uuid4())
    for key, value in changes.items():
        target = record
        parts = key.replace("__", ".").split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return record


def access_analyzer(at: datetime, status: str = "ACTIVE", **changes: Any) -> dict[str, Any]:
    envelope = fixture("access_analyzer_finding")
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope["time"] = stamp
    envelope["detail"].update(status=status, updatedAt=stamp, analyzedAt=stamp, **changes)
    return envelope


@dataclass
class Pipeline:
    """An EventBridge rule with the README's pattern targeting an SQS queue (with a DLQ), on moto."""

    queue_url: str
    dlq_url: str

    @classmethod
    def create(cls, *, visibility_timeout: int = 30, max_receive_count: int = 3) -> Pipeline:
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName=f"iamwarden-alerts-dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue = sqs.create_queue(
            QueueName=f"iamwarden-alerts-{uuid.uuid4().hex[:6]}",
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
                ),
            },
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events")
        events.put_rule(Name="iamwarden-alerts", EventPattern=json.dumps(EVENT_PATTERN), State="ENABLED")
        events.put_targets(Rule="iamwarden-alerts", Targets=[{"Id": "iamwarden-alerts", "Arn": arn}])
        return cls(queue_url=queue, dlq_url=dlq)

    def put(self, *records: dict[str, Any]) -> None:
        """Deliver CloudTrail records (or whole Access Analyzer envelopes) through EventBridge."""
        entries = []
        for record in records:
            if "detail-type" in record:
                entries.append(
                    {
                        "Source": record["source"],
                        "DetailType": record["detail-type"],
                        "Detail": json.dumps(record["detail"]),
                        "Resources": record.get("resources", []),
                    }
                )
                continue
            login = record.get("eventType") == "AwsConsoleSignIn"
            entries.append(
                {
                    "Source": "aws.signin" if login else "aws." + record["eventSource"].split(".")[0],
                    "DetailType": "AWS Console Sign In via CloudTrail"
                    if login
                    else "AWS API Call via CloudTrail",
                    "Detail": json.dumps(record),
                }
            )
        events = boto3.client("events")
        for i in range(0, len(entries), 10):
            result = events.put_events(Entries=entries[i : i + 10])
            assert result["FailedEntryCount"] == 0, result

    def depth(self, queue: str = "main") -> int:
        url = self.queue_url if queue == "main" else self.dlq_url
        attrs = boto3.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def alerts_config(queue_url: str | None = None, **alerts: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["alerts"] = {"queue_url": queue_url, "sqs_wait_seconds": 0, **alerts}
    config["identity"] = {"map": {"U0ALICE": ["alice"], "U0BOB": ["bob"]}}
    return config


def later(at: datetime, **kwargs: float) -> datetime:
    return at + timedelta(**kwargs)
