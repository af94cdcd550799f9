"""Just-in-time role access: the request state machine, the STS grant, revocation and the record.

The package's modules: ``model`` (states, records, reading), ``schema`` (tables), ``authorization``
(who may do what, durations), ``transitions`` (the state machine), ``grant`` (STS), ``revocation``,
``extension``, ``break_glass``, ``redaction`` (secrets out of logs). ``from bot import access`` keeps
working: the names other features use are re-exported here.

Lifecycle (every arrow is one conditional ``UPDATE … WHERE state = …``, so a double click or two
approvers at the same moment can never grant twice)::

    pending ──approve×N──▶ approved ──AssumeRole──▶ granted ──window end──▶ ended
       │                      └──AssumeRole fails──▶ failed   ├──Revoke / I'm done──▶ revoked
       ├──Deny──▶ denied                                      └──Extend (approved) ──▶ granted (later end)
       └──nobody decided in time──▶ expired

Secrets: the session's secret access key and token are handed back to the caller in an
``IssuedCredentials`` (``SecretStr`` fields) and never stored: SQLite keeps the access key id and
expiry only. Live secrets are registered with a logging filter that scrubs them from the records of
the libraries that log request and response bodies at DEBUG (botocore, slack_sdk).
"""

from __future__ import annotations

from bot.access import schema  # noqa: F401  (the tables: bot.store imports this package to migrate)
from bot.access.authorization import *  # noqa: F403
from bot.access.break_glass import *  # noqa: F403
from bot.access.extension import *  # noqa: F403
from bot.access.grant import *  # noqa: F403
from bot.access.grant import _assume  # noqa: F401
from bot.access.leases import *  # noqa: F403
from bot.access.model import *  # noqa: F403
from bot.access.model import _rows  # noqa: F401
from bot.access.notifier import *  # noqa: F403
from bot.access.recovery import *  # noqa: F403
from bot.access.redaction import *  # noqa: F403
from bot.access.revocation import *  # noqa: F403
from bot.access.revocation import _revocation_statement, _write_revocation  # noqa: F401
from bot.access.sessions import *  # noqa: F403
from bot.access.sessions import _aws_for_account, _role_name  # noqa: F401
from bot.access.transitions import *  # noqa: F403
from bot.access.transitions import _insert_request, _new_id  # noqa: F401
from bot.store import iso  # noqa: F401  (tests and callers use access.iso)
