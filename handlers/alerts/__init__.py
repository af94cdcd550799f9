"""Slack surface for alerts: the alert message, its buttons, the actor's DM, ``/iam alerts``, the
App Home section and the two jobs.

Modules: ``views`` (pure builders), ``delivery`` (posting and updating what ``bot.alerts`` marks
dirty, escalations), ``listeners`` (the buttons), ``jobs`` (``alerts-poll``,
``alerts-actor-timeouts``), ``commands`` (``/iam alerts``), ``home`` and ``tour`` (the demo's step).
Tests call the job functions directly after moving a FrozenClock.
"""

from __future__ import annotations

from handlers.alerts import commands, home, jobs  # noqa: F401  (subcommand, Home section and @job register on import)
from handlers.alerts.commands import *  # noqa: F403
from handlers.alerts.delivery import *  # noqa: F403
from handlers.alerts.home import *  # noqa: F403
from handlers.alerts.jobs import *  # noqa: F403
from handlers.alerts.listeners import register  # noqa: F401
from handlers.alerts.views import *  # noqa: F403
