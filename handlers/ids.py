"""Every action_id, callback_id and block_id the bot uses, in one place (no magic strings).

A test proves each ActionId and CallbackId has a listener registered on the app.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    # Feature modules add members in their own section; each must have a listener
    # (tests/test_foundation.py::test_every_action_id_has_a_listener).
    HOME_REFRESH = "home_refresh"
    # -- queries / App Home (handlers/queries/) --
    QUERIES_SHOW_RISKS = "queries_show_risks"
    QUERIES_SHOW_KEYS = "queries_show_keys"
    # -- digest, nudges, offboarding (handlers/digest/) --
    DIGEST_SNOOZE = "digest_snooze"
    DIGEST_NOTIFY_OWNER = "digest_notify_owner"
    DIGEST_ACKNOWLEDGE = "digest_acknowledge"
    DIGEST_DISABLE_ACCESS = "digest_disable_access"
    NUDGE_FIXED = "nudge_fixed"
    NUDGE_NOT_MINE = "nudge_not_mine"
    # -- just-in-time access (handlers/access/) --
    ACCESS_APPROVE = "access_approve"
    ACCESS_DENY = "access_deny"
    ACCESS_REVOKE = "access_revoke"
    ACCESS_DONE = "access_done"
    ACCESS_REISSUE = "access_reissue"
    ACCESS_EXTEND = "access_extend"
    ACCESS_REVIEW = "access_review"
    ACCESS_CONSOLE = "access_console"
    ACCESS_WITHDRAW = "access_withdraw"
    # -- offboarding (handlers/offboarding.py) --
    OFFBOARDING_DISABLE_ACCESS = "offboarding_disable_access"
    # -- alerts (handlers/alerts/) --
    ALERT_ACKNOWLEDGE = "alert_acknowledge"
    ALERT_ASK_ACTOR = "alert_ask_actor"
    ALERT_ACTOR_YES = "alert_actor_yes"
    ALERT_ACTOR_NO = "alert_actor_no"
    ALERT_DISABLE_ACCESS = "alert_disable_access"


class CallbackId(StrEnum):
    # -- digest (handlers/digest/) --
    DIGEST_SNOOZE_MODAL = "digest_snooze_modal"
    # -- just-in-time access (handlers/access/) --
    ACCESS_REQUEST_MODAL = "access_request_modal"
    ACCESS_DENY_MODAL = "access_deny_modal"
    # -- alerts (handlers/alerts/) --
    pass


class BlockId(StrEnum):
    # -- digest (handlers/digest/) --
    SNOOZE_REASON = "snooze_reason"
    SNOOZE_UNTIL = "snooze_until"
    # -- just-in-time access (handlers/access/) --
    ACCESS_ROLE = "access_role"
    ACCESS_DURATION = "access_duration"
    ACCESS_REASON = "access_reason"
    ACCESS_TICKET = "access_ticket"
    ACCESS_DENY_REASON = "access_deny_reason"
    pass
