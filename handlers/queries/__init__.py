"""Answers to IAM questions in Slack: ``/iam whoami-risks``, ``keys``, ``findings``, ``risks``,
``can``, ``who-can``, ``paths``, ``scan`` and the member's part of the App Home.

Every answer comes from the latest stored snapshot (``bot.queries``). The modules: ``views`` and
``policy_views`` (pure Block Kit builders), ``commands`` (the subcommands, registered with ``/iam``
on import), ``delivery`` (what does not fit goes to the member's DM as a file), ``home`` (the App
Home section), ``listeners`` (``register``: the Home buttons), ``tour`` (the demo's stop).
"""

from __future__ import annotations

from handlers.queries import commands  # noqa: F401  (the subcommands register with /iam on import)
from handlers.queries.commands import *  # noqa: F403
from handlers.queries.delivery import *  # noqa: F403
from handlers.queries.home import *  # noqa: F403
from handlers.queries.listeners import register  # noqa: F401
from handlers.queries.policy_views import *  # noqa: F403
from handlers.queries.views import *  # noqa: F403
