"""Secrets never reach the logs: a filter on the loggers that log request and response bodies."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime

# -- secrets never reach the logs --------------------------------------------------------------


# Secret-bearing fields as they appear in STS XML/JSON answers, federation requests and our own
# rendered messages; matched before the value is known (botocore logs the body before we parse it).
_SECRET_FIELDS = re.compile(
    r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"
    r"|((?:SecretAccessKey|SessionToken|sessionKey|sessionToken|SigninToken)\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\s,&}\\]+"
    r"|((?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=)[^\s\\'\"]+"
)


def _redact_fields(message: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1):
            return f"{match.group(1)}[redacted]{match.group(3)}"
        return f"{match.group(4) or match.group(5)}[redacted]"

    return _SECRET_FIELDS.sub(replace, message)


class _SecretScrubber(logging.Filter):
    """Replaces session secrets in log records with ``[redacted]``.

    botocore logs response bodies and slack_sdk logs request bodies at DEBUG; both would carry the
    credentials we hand out. Filters on the emitting loggers see every record they create: known
    live secrets are replaced verbatim, and secret-bearing fields by pattern.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, datetime] = {}

    def add(self, value: str, until: datetime) -> None:
        with self._lock:
            now = datetime.now(UTC)
            self._secrets = {s: t for s, t in self._secrets.items() if t > now}
            self._secrets[value] = until

    def scrub(self, text: str) -> str:
        """``text`` with every live secret and every secret-bearing field redacted."""
        with self._lock:
            live = list(self._secrets)
        cleaned = _redact_fields(text)
        for secret in live:
            cleaned = cleaned.replace(secret, "[redacted]")
        return cleaned

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


SCRUBBER = _SecretScrubber()
_SCRUBBED_LOGGERS = (
    "botocore.parsers",
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.retryhandler",
    "urllib3.connectionpool",
    "slack_sdk.web.base_client",
    "slack_sdk.web.client",
    "slack_bolt.App",
    "slack_bolt.listener.thread_runner",
    "bot.access.federation",
    "bot.access",
)
for _name in _SCRUBBED_LOGGERS:
    logging.getLogger(_name).addFilter(SCRUBBER)
