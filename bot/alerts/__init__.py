"""Alerts on suspicious IAM activity: CloudTrail events in, stored alerts out.

The pieces, in the order an event meets them (one module each):

- ``sources``: where events come from: the SQS queue EventBridge feeds (primary) or CloudTrail
  LookupEvents, each message deleted / checkpoint moved only after its event is recorded.
- ``events``: ``CloudTrailEvent``, one normalised event, parsed from an EventBridge envelope (SQS)
  or from a LookupEvents record (whose ``CloudTrailEvent`` is a JSON string). Access Analyzer
  findings are normalised into the same model (``kind="access_analyzer"``).
- ``rules``: ``RULES``, the catalog. Each rule has an id, a severity, an optional threshold/window
  and a dedupe window; ``[alerts.rules.RULE_ID]`` in the TOML file overrides any of them (or
  disables the rule).
- ``evaluation``: the rule groups (``sign_ins``, ``iam_changes``, ``account_guards``, sharing
  ``candidates.RuleContext``; ``facts`` and ``trust`` are what they read off an event) give their
  verdicts on one event.
- ``recording``: ``ingest()``: in ONE SQLite transaction, claims the event id (a redelivered or
  re-read event is processed once), records the signals windowed rules count, and creates an alert
  or bumps the counter of the open alert with the same dedupe key (``enrichment`` adds the Slack
  member and the JIT request behind the event). Posting to Slack is the handlers' job: an alert row
  with ``dirty > 0`` still has to be posted or its message updated (``outbox``), so a crash or
  restart between recording and posting loses nothing and repeats nothing.
- ``model`` (the stored ``Alert``), ``transitions`` (acknowledge, ask the actor, escalate: each a
  conditional update) and ``schema`` (the tables).

Windows and dedupe use the events' own times (CloudTrail delivers late and out of order), so the
same events always produce the same alerts, whichever source delivered them and whenever.
``from bot import alerts`` keeps working: the names other features and the tests use are
re-exported here.
"""

from __future__ import annotations

from bot.alerts import schema  # noqa: F401  (the tables: bot.store imports this package to migrate)
from bot.alerts.candidates import *  # noqa: F403
from bot.alerts.enrichment import *  # noqa: F403
from bot.alerts.evaluation import *  # noqa: F403
from bot.alerts.events import *  # noqa: F403
from bot.alerts.facts import *  # noqa: F403
from bot.alerts.model import *  # noqa: F403
from bot.alerts.outbox import *  # noqa: F403
from bot.alerts.recording import *  # noqa: F403
from bot.alerts.rules import *  # noqa: F403
from bot.alerts.sources import *  # noqa: F403
from bot.alerts.transitions import *  # noqa: F403
from bot.alerts.trust import *  # noqa: F403
