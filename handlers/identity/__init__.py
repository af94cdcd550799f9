"""Slack surface for who is who: the Slack directory look-ups other features use (user groups,
``member_is_active``), the ``user_change`` event, the offboarding alert and its **Disable access**
button, and the ``directory-refresh`` / ``offboarding-sweep`` jobs. The decisions live in
``bot.identity``.
"""

from __future__ import annotations

from handlers.identity.directory import *  # noqa: F403
from handlers.identity.jobs import *  # noqa: F403  (the directory-refresh and offboarding-sweep jobs register on import)
from handlers.identity.listeners import *  # noqa: F403
from handlers.identity.listeners import register  # noqa: F401
from handlers.identity.notifier import *  # noqa: F403
from handlers.identity.views import *  # noqa: F403
