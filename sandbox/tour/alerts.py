"""The demo tour's alerts step."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from handlers.alerts.jobs import poll_alerts
from handlers.client import build_client


def _demo_sign_in(account: str, identity: dict[str, Any], *, mfa: bool, at: datetime) -> dict[str, Any]:
    """A ConsoleLogin record shaped like CloudTrail's (as EventBridge delivers it in ``detail``)."""
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa else "No",
        },
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def demo_tour(session: Any) -> None:
    """The tour's alerts step: an EventBridge rule → SQS queue on the sandbox AWS, the root user and
    then Ada signing in to the console, the bot's poll job posting alerts, Sam asking Ada, Ada answering."""
    services = session.services
    client = build_client(services)
    account = services.config.accounts[0].id if services.config.accounts else "123456789012"
    session.say("\n── Alerts: CloudTrail → EventBridge → SQS → the security channel ──")
    sqs = services.aws.client("sqs")
    queue = sqs.create_queue(QueueName="iamwarden-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = services.aws.client("events")
    pattern = {"detail-type": ["AWS Console Sign In via CloudTrail", "AWS API Call via CloudTrail"]}
    events.put_rule(Name="iamwarden-alerts", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="iamwarden-alerts", Targets=[{"Id": "iamwarden-alerts", "Arn": arn}])
    services.config.alerts.queue_url = queue
    services.config.alerts.sqs_wait_seconds = 0

    def sign_in(identity: dict[str, Any], *, mfa: bool) -> None:
        record = _demo_sign_in(account, identity, mfa=mfa, at=services.clock.now())
        events.put_events(
            Entries=[
                {
                    "Source": "aws.signin",
                    "DetailType": "AWS Console Sign In via CloudTrail",
                    "Detail": json.dumps(record),
                }
            ]
        )

    session.say("Someone signs in to the console as the root user (without MFA); the bot polls its queue:")
    sign_in(
        {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account},
        mfa=False,
    )
    poll_alerts(services, client)
    session.settle()
    session.say("\nSam acknowledges it:")
    session.click_label("Acknowledge", user="U0SAM")
    session.say("\nAda signs in without MFA. Sam asks her whether it was her:")
    sign_in(
        {
            "type": "IAMUser",
            "principalId": "AIDADEMOADA000000001",
            "arn": f"arn:aws:iam::{account}:user/ada",
            "accountId": account,
            "userName": "ada",
        },
        mfa=False,
    )
    poll_alerts(services, client)
    session.settle()
    if session.click_label("Ask the actor", user="U0SAM"):
        session.say("\nAda answers in her DM:")
        session.click_label("Yes, it was me", user="U0ADA")
