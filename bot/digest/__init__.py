"""The daily digest: what changed in IAM since the previous digest, who owns it, what to do.

Pure domain code (no Slack): ``build_digest`` diffs each account's newest snapshot against the
snapshot the previous digest in the same channel was built from, and applies the digest's own state:

- **slots**: a scheduled digest claims ``(kind, channel, slot)`` in SQLite before posting, so two
  instances or a restart never post twice; a slot missed while the bot was down is caught up once,
  within ``config.schedule.catch_up_grace``;
- **snoozes** (reason, who, an end ≤ 90 days away; expiry brings the finding back),
  **acknowledgements**, **marks** ("fixed", "not mine", "access disabled": who did what, used to
  credit the fixer) and **nudges** (at most one DM per finding and owner per ``nudges.every_days``).

State transitions are conditional SQL (``INSERT OR IGNORE``, ``UPDATE … WHERE``) so a double click
or two posters at once can never apply twice.

The package's modules: ``model`` (the digest and its records), ``schema`` (tables), ``slots``,
``snoozes``, ``marks`` (acknowledgements, marks, the finding a button names), ``nudges``, ``build``
(the diff, and the record of a posted digest), ``report`` (the text form). ``from bot import digest``
keeps working: the names other features use are re-exported here.
"""

from __future__ import annotations

from bot.digest import schema  # noqa: F401  (the tables: bot.store imports this package to migrate)
from bot.digest.build import *  # noqa: F403
from bot.digest.marks import *  # noqa: F403
from bot.digest.model import *  # noqa: F403
from bot.digest.nudges import *  # noqa: F403
from bot.digest.report import *  # noqa: F403
from bot.digest.slots import *  # noqa: F403
from bot.digest.snoozes import *  # noqa: F403
