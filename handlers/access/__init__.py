"""Slack surface for just-in-time access: ``/iam request``, ``/iam breakglass``, ``/iam grants``,
``/iam review``, the request message's buttons, the modals, the jobs and the App Home section.

Buttons carry only the request id; who may click what is decided here from stored state and the
config (``bot.access``), never from the payload. Credentials go to the requester alone (ephemeral,
or a DM when ``[access] deliver_credentials = "dm"``).
"""

from __future__ import annotations

from handlers.access import commands, home  # noqa: F401  (subcommands and App Home sections register on import)
from handlers.access.commands import *  # noqa: F403
from handlers.access.home import *  # noqa: F403
from handlers.access.jobs import *  # noqa: F403
from handlers.access.listeners import register  # noqa: F401
from handlers.access.notifier import *  # noqa: F403
from handlers.access.views import *  # noqa: F403
