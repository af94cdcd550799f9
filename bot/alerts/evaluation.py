"""Evaluation: every rule group on one event, the most specific verdict kept."""

from __future__ import annotations

from bot.alerts.account_guards import AccountGuardRules
from bot.alerts.candidates import Candidate
from bot.alerts.events import CloudTrailEvent
from bot.alerts.iam_changes import IamChangeRules
from bot.alerts.rules import ADMIN_POLICY_ATTACHED, IAM_POLICY_CHANGE, KEY_QUARANTINED, ROLE_TRUST_OPENED
from bot.alerts.sign_ins import SignInRules
from bot.settings import Config
from bot.store import Store

_MORE_SPECIFIC_THAN_POLICY_CHANGE = frozenset({ADMIN_POLICY_ATTACHED, ROLE_TRUST_OPENED, KEY_QUARANTINED})


class _Evaluator(SignInRules, IamChangeRules, AccountGuardRules):
    def run(self, event: CloudTrailEvent) -> list[Candidate]:
        found: list[Candidate] = []
        for check in (
            self.root,
            self.console_failures,
            self.console_no_mfa,
            self.policy_changes,
            self.access_key_for_other,
            self.mfa_deactivated,
            self.trail_tampering,
            self.access_analyzer,
            self.unauthorized_calls,
            self.console_signin_token,
            self.login_profile_for_other,
            self.role_trust_opened,
            self.key_quarantined,
            self.principal_created,
            self.identity_provider_change,
            self.leave_organization,
            self.security_service_disabled,
        ):
            found += check(event)
        # One alert per event: the most specific rule wins over the generic policy-change rule.
        if any(c.rule.id in _MORE_SPECIFIC_THAN_POLICY_CHANGE for c in found):
            found = [c for c in found if c.rule.id != IAM_POLICY_CHANGE]
        return [c for c in found if c.rule.enabled]


def evaluate(config: Config, store: Store, event: CloudTrailEvent) -> list[Candidate]:
    """The rules' verdicts for one event (records window signals: call inside a transaction)."""
    return _Evaluator(config, store.db).run(event)
