"""Rules about getting in: root activity, console sign-in failures and sprays, sign-ins without
MFA, console sessions made from API credentials, and bursts of denied calls (probing)."""

from __future__ import annotations

from datetime import timedelta

from bot.alerts.candidates import Candidate, RuleContext, _has_table
from bot.alerts.events import CloudTrailEvent
from bot.alerts.facts import (
    BOT_SESSION_PREFIX,
    DENIED_ERRORS,
    HIDDEN_USER,
    _actor,
    _by_service,
    _federated_sign_in,
    _session_names,
)
from bot.alerts.rules import (
    CONSOLE_LOGIN_FAILURES,
    CONSOLE_LOGIN_NO_MFA,
    CONSOLE_SIGNIN_TOKEN,
    PASSWORD_SPRAY,
    ROOT_ACTIVITY,
    ROOT_LOGIN_FAILED,
    UNAUTHORIZED_API_CALLS,
    human_duration,
)
from bot.store import iso


class SignInRules(RuleContext):
    def root(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.user_identity.type != "Root" or _by_service(e):
            return []
        acct = e.account_id
        login = e.console_login_result
        if e.is_sign_in and not e.succeeded:
            # ConsoleLogin, PasswordUpdated, ExternalIdPDirectoryLogin, CredentialVerification…:
            # a failed step of signing in as root, whichever way CloudTrail wrote the failure.
            if e.event_name == "ConsoleLogin":
                title = "Failed console sign-in as the root user"
            elif e.event_name == "PasswordUpdated":
                title = "Failed root password change"
            else:
                title = f"Failed root sign-in ({e.event_name})"
            return [self.candidate(ROOT_LOGIN_FAILED, acct, title, reason=e.failure or "")]
        if login == "Success":
            mfa = str(e.additional_event_data.get("MFAUsed", "")).lower() == "yes"
            return [
                self.candidate(
                    ROOT_ACTIVITY,
                    acct,
                    "Root user signed in to the console" + ("" if mfa else " without MFA"),
                    mfa_used="yes" if mfa else "no",
                )
            ]
        if not e.succeeded:
            title = f"Root user tried {e.action} ({e.error_code or 'failed'})"
        elif e.event_name == "CreateAccessKey" and not e.request_parameters.get("userName"):
            title = "Root user created an access key for itself"
        else:
            title = f"Root user called {e.action}"
        return [self.candidate(ROOT_ACTIVITY, acct, title)]

    def console_failures(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.console_login_result != "Failure":
            return []
        root = e.user_identity.type == "Root"
        user = "root" if root else e.user_identity.user_name or e.user_identity.arn or HIDDEN_USER
        found: list[Candidate] = []
        # Root's failures are ROOT_LOGIN_FAILED on their own; they also make one more user sprayed.
        for rule_id in (PASSWORD_SPRAY,) if root else (CONSOLE_LOGIN_FAILURES, PASSWORD_SPRAY):
            self.signal(rule_id, e, user)
        per_user = self.rules[CONSOLE_LOGIN_FAILURES]
        n = (
            0
            if root
            else self._window_count(per_user, e.account_id, e.event_time, distinct=False, subject=user)
        )
        if not root and n >= (per_user.threshold or 1):
            found.append(
                self.candidate(
                    CONSOLE_LOGIN_FAILURES,
                    f"{e.account_id}|{user}",
                    f"{n} failed console sign-ins for {user} within {human_duration(per_user.window)}",
                    failures=n,
                    user=user,
                )
            )
        spray = self.rules[PASSWORD_SPRAY]
        users = self._window_count(spray, e.account_id, e.event_time, distinct=True)
        if users > (spray.threshold or 0):
            found.append(
                self.candidate(
                    PASSWORD_SPRAY,
                    e.account_id,
                    f"Failed console sign-ins for {users} different users within {human_duration(spray.window)}",
                    distinct_users=users,
                )
            )
        return found

    def console_no_mfa(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.console_login_result != "Success" or e.user_identity.type != "IAMUser":
            return []
        if str(e.additional_event_data.get("MFAUsed", "")).lower() != "no" or _federated_sign_in(e):
            return []  # federated sign-ins: the identity provider, not IAM, decides on MFA
        user = e.user_identity.user_name or _actor(e)
        return [
            self.candidate(
                CONSOLE_LOGIN_NO_MFA,
                f"{e.account_id}|{user}",
                f"{user} signed in to the console without MFA",
            )
        ]

    def unauthorized_calls(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.error_code not in DENIED_ERRORS or _by_service(e) or e.kind != "cloudtrail":
            return []
        rule = self.rules[UNAUTHORIZED_API_CALLS]
        who = e.principal_arn or _actor(e)
        self.signal(UNAUTHORIZED_API_CALLS, e, who, e.action)
        n = self._window_count(rule, e.account_id, e.event_time, distinct=False, subject=who)
        if n < (rule.threshold or 1):
            return []
        window = rule.window or timedelta(0)
        top = self.db.execute(
            "SELECT detail, COUNT(*) AS n FROM alert_signals WHERE rule_id = ? AND account_id = ? "
            "AND subject = ? AND at > ? AND at <= ? GROUP BY detail ORDER BY n DESC, detail LIMIT 5",
            [UNAUTHORIZED_API_CALLS, e.account_id, who, iso(e.event_time - window), iso(e.event_time)],
        ).fetchall()
        return [
            self.candidate(
                UNAUTHORIZED_API_CALLS,
                f"{e.account_id}|{who}",
                f"{_actor(e)} was denied {n} API calls within {human_duration(rule.window)}",
                denied_calls=n,
                top_denied_actions=", ".join(f"{action} ×{count}" for action, count in top),
            )
        ]

    def _bot_issued_session(self, e: CloudTrailEvent) -> bool:
        """A session the access feature issued: its name carries the bot's prefix AND the grant is
        recorded (a name alone is attacker-chosen and proves nothing)."""
        names = _session_names(e)
        if not any(n.startswith(BOT_SESSION_PREFIX) for n in names):
            return False
        if not _has_table(self.db, "access_grants"):
            return False
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT 1 FROM access_grants WHERE session_name IN ({marks}) LIMIT 1",  # noqa: S608
            names,
        ).fetchone()
        return row is not None

    def console_signin_token(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "GetSigninToken" or not e.succeeded or not e.is_sign_in:
            return []
        if self._bot_issued_session(e):
            return []
        claims = any(n.startswith(BOT_SESSION_PREFIX) for n in _session_names(e))
        return [
            self.candidate(
                CONSOLE_SIGNIN_TOKEN,
                f"{e.account_id}|{e.principal_arn or _actor(e)}",
                f"{_actor(e)} turned API credentials into a console session (GetSigninToken)",
                note="named like an iamwarden session, but no such grant is recorded" if claims else None,
            )
        ]
