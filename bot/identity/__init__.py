"""Who is who: the Slack directory cache, Slack member ↔ IAM principal mapping, and offboarding.

The package's modules: ``directory`` (the cached Slack directory, paging ``users.list`` through a
``MemberSource``), ``refresh`` (keeping it fresh; what a scan says without it), ``mapping`` (the
``IdentityMap`` and its caches), ``schema`` (the offboarding table), ``offboarding`` (a leaver's
just-in-time access ended, once, and the one alert) and ``disable`` (Disable access: an IAM
user's keys and console password).
``from bot import identity`` keeps working: the names other features use are re-exported here.
"""

from __future__ import annotations

from bot.identity import schema  # noqa: F401  (the tables: bot.store imports this package to migrate)
from bot.identity.directory import *  # noqa: F403
from bot.identity.disable import *  # noqa: F403
from bot.identity.mapping import *  # noqa: F403
from bot.identity.mapping import _CACHE  # noqa: F401  (tests bound the answer-time cache)
from bot.identity.offboarding import *  # noqa: F403
from bot.identity.refresh import *  # noqa: F403
