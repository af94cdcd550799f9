"""The daily digest in Slack: one headline message, details in its thread, the full list as CSV.

- ``post_digest`` posts a digest now (``iamwarden digest``); ``run_digest_job`` is the scheduled
  job: it claims the due slot in SQLite first, so each slot is posted once per channel whatever the
  number of instances or restarts, and catches a missed slot up within the grace period.
- Buttons: Snooze (security team, modal with reason and end date), Notify owner (DMs the owner the
  finding and its fix), Acknowledge, Disable access (security team, confirm dialog).
- Nudges (opt-in ``[nudges]``): owners get one DM per finding per ``every_days`` with "Fixed" and
  "Not mine" buttons.

The package's modules: ``views`` (pure Block Kit builders), ``delivery`` (posting the digest and the
nudges), ``listeners`` (the buttons and the snooze modal), ``jobs`` (the scheduled digest and the
catch-up), ``cli`` (``iamwarden digest``). The scheduled scan is
``handlers.scan``.
"""

from __future__ import annotations

from handlers.digest import cli, jobs  # noqa: F401  (the @command and the @job declarations register on import)
from handlers.digest.cli import *  # noqa: F403
from handlers.digest.delivery import *  # noqa: F403
from handlers.digest.jobs import *  # noqa: F403
from handlers.digest.listeners import *  # noqa: F403
from handlers.digest.listeners import register  # noqa: F401
from handlers.digest.views import *  # noqa: F403
