"""boto3 sessions and clients: the standard credential chain, adaptive retries, and a call counter.

``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by botocore itself, which is how
the demo and the tests point everything at a local moto server.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp as botocore_parse_timestamp

# Throttling is normal at scale: botocore's adaptive mode adds client-side rate limiting on top of
# exponential backoff (throttling errors still back off). Connect/read timeouts keep a dead
# endpoint from hanging a scan; the attempts are bounded so one request costs at most
# MAX_ATTEMPTS x (CONNECT_TIMEOUT + READ_TIMEOUT) plus backoff (about 2 min) before it fails.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
MAX_ATTEMPTS = 5
RETRY_CONFIG = BotoConfig(
    retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    user_agent_extra="iamwarden",
)

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthorizationError",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
# boto3 sessions are not thread-safe while they create clients; the calls themselves are. Only
# client creation is serialised, so one account's stalled request never holds the others.
CLIENT_LOCK = threading.RLock()

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, with ISO 8601 (every timestamp IAM and STS send) read by
    ``datetime.fromisoformat`` in C instead of dateutil: dateutil was a quarter of a scan's
    collection CPU (50 users / 20 roles: ~4,000 timestamps an account). Epoch numbers, RFC 822
    and anything ``fromisoformat`` refuses go to botocore's own parser, so results are the same."""
    if isinstance(value, str) and "-" in value and value[:4].isdigit():
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return botocore_parse_timestamp(value)


def fast_timestamps(session: boto3.session.Session) -> boto3.session.Session:
    """Make ``session``'s clients parse timestamps with ``parse_timestamp`` (returns the session).
    botocore's documented hook for it is its response parser factory's defaults."""
    factory = session._session.get_component("response_parser_factory")  # noqa: SLF001
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return session


class CallCounter:
    """Counts the HTTP requests sent to AWS per operation, retries included (AWS bills and throttles
    every attempt). Registered on botocore's ``before-send`` event, which fires once per attempt;
    calls made on any other event (``before-call``, once per operation) are ignored, so a client
    that still registers the counter there is not counted twice."""

    EVENT = "before-send.*.*"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        if not event_name.startswith("before-send."):
            return
        _, service, operation = (event_name.split(".", 2) + ["unknown", "unknown"])[:3]
        with self._lock:
            self.by_operation[f"{service}:{operation}"] += 1

    def attach(self, client: Any) -> Any:
        """Count every request ``client`` sends (returns the client)."""
        client.meta.events.register(self.EVENT, self)
        return client

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_operation.values())


@dataclass
class AwsFactory:
    """Makes boto3 clients from one session; optionally assumes a role first (for other accounts).

    A factory for another account (``for_role``) shares its parent's session, so botocore's
    loaders (endpoints, service models: the expensive part of a new session) are read once per
    process; only the credentials differ, passed explicitly to each client."""

    region: str = "us-east-1"
    session: boto3.session.Session | None = None
    counter: CallCounter = field(default_factory=CallCounter)
    # Explicit credentials for every client (an assumed role's); None = the session's own chain.
    credentials: dict[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = fast_timestamps(boto3.session.Session(region_name=self.region))

    def client(
        self, service: str, *, counter: CallCounter | None = None, config: BotoConfig | None = None
    ) -> Any:
        """A client for ``service`` with RETRY_CONFIG (merged with ``config``), counted."""
        with CLIENT_LOCK:
            client = self.session.client(
                service,
                region_name=self.region,
                config=RETRY_CONFIG.merge(config) if config is not None else RETRY_CONFIG,
                **(self.credentials or {}),
            )
        return (counter or self.counter).attach(client)

    def warm(self, services: tuple[str, ...]) -> None:
        """Load each service's model and paginators into the session's caches, once, before many
        threads make clients at the same moment: botocore's loader caches are filled without a
        lock, so 16 threads starting together each re-read the data directory (~7% of a
        100-account scan's CPU)."""
        with CLIENT_LOCK:
            for service in services:
                client = self.session.client(service, region_name=self.region, config=RETRY_CONFIG)
                client.can_paginate(next(iter(client.meta.method_to_api_mapping)))

    def with_counter(self, counter: CallCounter) -> AwsFactory:
        """The same session and credentials, counting on ``counter``."""
        return AwsFactory(self.region, self.session, counter, self.credentials)

    def for_role(
        self, role_arn: str, *, session_name: str = "iamwarden-audit", external_id: str | None = None
    ) -> AwsFactory:
        """A factory whose clients act as ``role_arn`` (used to read other accounts)."""
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
        if external_id:
            params["ExternalId"] = external_id
        creds = self.client("sts").assume_role(**params)["Credentials"]
        # Static credentials (valid an hour by default): every use of them (a scan of one account,
        # an offboarding, a readiness check) is over in minutes.
        credentials = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        return AwsFactory(self.region, self.session, self.counter, credentials)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        # An error body botocore could not parse leaves only the HTTP status as the code; a 403
        # is an authorization failure whatever the body said.
        if code == "403":
            return "AccessDenied"
        return code
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__
    return type(exc).__name__


def is_access_denied(exc: BaseException) -> bool:
    return error_code(exc) in ACCESS_DENIED_CODES


def is_throttled(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def describe_aws_error(exc: BaseException, action: str) -> str:
    """One short, true sentence for a person; never includes credentials."""
    code = error_code(exc)
    if code in ACCESS_DENIED_CODES:
        from bot.permissions import missing_permission  # late: bot.permissions imports settings only

        return f"AWS denied {action} ({code}): the bot's IAM role lacks {missing_permission(exc)}."
    if code in THROTTLING_CODES:
        return f"AWS is throttling {action} ({code}); the bot retried and gave up for now. Try again in a minute."
    if isinstance(exc, BotoCoreError):
        return f"Could not reach AWS for {action} ({code})."
    return f"AWS refused {action} ({code})."
