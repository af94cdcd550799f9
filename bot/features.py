"""The one list of features. Every registry is derived from it; this module imports nothing.

A feature names its modules by dotted path, per kind of registration:

- ``slack``: handler packages that expose ``register(app, services)`` (Bolt listeners), in order;
- ``jobs``: modules that declare ``@job(...)`` (``bot.jobs``);
- ``commands``: CLI command name -> the module that declares it with ``@command`` (``bot.commands``);
- ``tables``: domain modules that declare ``@migrations(...)`` (``bot.store``);
- ``checks``: check theme modules whose ``@check`` functions make up the catalog (``bot.checks``).

The domain reads ``tables`` and ``checks`` (``bot.store``, ``bot.checks.catalog``); the wiring
(``iamwarden.features``) imports the rest. Names are strings so that the domain never imports the
Slack layer: ``iamwarden`` is the only package that imports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Feature:
    name: str
    summary: str
    slack: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    commands: dict[str, str] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


FEATURES: tuple[Feature, ...] = (
    Feature(
        "front-door",
        "the /iam command, App Home, the CLI's own commands, replayed-request memory",
        slack=("handlers.commands", "handlers.home"),
        commands={
            "run": "iamwarden.cli",
            "demo": "iamwarden.cli",
            "audit": "bot.commands",
            "policy": "bot.commands",
        },
        tables=("bot.replay",),
    ),
    Feature(
        "inventory",
        "the hygiene scan: collect each account's IAM, run the checks, store the findings",
        jobs=("handlers.scan",),
        commands={"scan": "bot.scan.commands", "checks": "bot.scan.commands"},
        tables=("bot.findings",),
        checks=(
            "bot.checks.root",
            "bot.checks.mfa",
            "bot.checks.credentials",
            "bot.checks.privilege",
            "bot.checks.account",
            "bot.checks.ownership",
        ),
    ),
    Feature(
        "queries",
        "answers from the latest snapshot: whoami-risks, keys, findings, can, who-can, paths",
        slack=("handlers.queries",),
    ),
    Feature(
        "digest",
        "the daily digest and the nudges to owners",
        slack=("handlers.digest",),
        jobs=("handlers.digest",),
        commands={"digest": "handlers.digest.cli"},
        tables=("bot.digest",),
    ),
    Feature(
        "access",
        "just-in-time access: request, approve, grant, revoke",
        slack=("handlers.access",),
        jobs=("handlers.access",),
        tables=("bot.access",),
    ),
    Feature(
        "alerts",
        "alerts on suspicious activity (CloudTrail through EventBridge and SQS)",
        slack=("handlers.alerts",),
        jobs=("handlers.alerts",),
        tables=("bot.alerts",),
    ),
    Feature(
        "identity",
        "who is who (the Slack directory) and offboarding",
        slack=("handlers.identity",),
        jobs=("handlers.identity",),
        tables=("bot.identity",),
    ),
    Feature(
        "readiness",
        "`iamwarden check`: is this deployment ready (settings, Slack, AWS permissions)",
        commands={"check": "handlers.readiness"},
    ),
)


def modules(kind: str) -> tuple[str, ...]:
    """Every feature's modules of one kind (``slack``, ``jobs``, ``tables``, ``checks``), in
    FEATURES order, each once."""
    return tuple(dict.fromkeys(m for f in FEATURES for m in getattr(f, kind)))


def commands() -> dict[str, str]:
    """CLI command name -> the module that declares it."""
    out: dict[str, str] = {}
    for feature in FEATURES:
        out.update(feature.commands)
    return out
