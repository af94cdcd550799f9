"""Rules about IAM changes: policies, admin grants, keys and passwords for other users, MFA,
role trust, AWS's key quarantine, new principals and identity providers."""

from __future__ import annotations

import json
from datetime import datetime

from bot.alerts.candidates import Candidate, RuleContext, _has_table
from bot.alerts.events import CloudTrailEvent, UserIdentity
from bot.alerts.facts import (
    ATTACH_EVENTS,
    IDENTITY_PROVIDER_EVENTS,
    INLINE_PUT_EVENTS,
    LOGIN_PROFILE_EVENTS,
    MFA_EVENTS,
    POLICY_CHANGE_EVENTS,
    QUARANTINE_POLICY_PREFIX,
    TRUST_EVENTS,
    _actor,
    _critical_names,
    _name_of,
    _policy_grants_everything,
    _policy_target,
)
from bot.alerts.rules import (
    ACCESS_KEY_CREATED_FOR_OTHER_USER,
    ADMIN_POLICY_ATTACHED,
    IAM_POLICY_CHANGE,
    IAM_PRINCIPAL_CREATED,
    KEY_QUARANTINED,
    LOGIN_PROFILE_FOR_OTHER_USER,
    MFA_DEACTIVATED,
    ROLE_TRUST_OPENED,
    SAML_PROVIDER_CHANGE,
)
from bot.alerts.trust import trust_summary
from bot.findings import Severity
from bot.policy import arn_matches
from bot.store import iso


class IamChangeRules(RuleContext):
    def policy_changes(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_source != "iam.amazonaws.com" or not e.succeeded:
            return []
        found: list[Candidate] = []
        kind, target = _policy_target(e)
        params = e.request_parameters
        admin_arns = set(self.config.alerts.admin_policies)
        if e.event_name in ATTACH_EVENTS and str(params.get("policyArn", "")) in admin_arns:
            policy = _name_of(str(params["policyArn"]))
            found.append(
                self.candidate(
                    ADMIN_POLICY_ATTACHED,
                    f"{e.account_id}|{kind}|{target}|{policy}",
                    f"{_actor(e)} attached {policy} to {kind} {target}",
                    target=f"{kind} {target}",
                    policy=policy,
                )
            )
        elif e.event_name in INLINE_PUT_EVENTS and _policy_grants_everything(params.get("policyDocument")):
            found.append(
                self.candidate(
                    ADMIN_POLICY_ATTACHED,
                    f"{e.account_id}|{kind}|{target}|{params.get('policyName', '')}",
                    f"{_actor(e)} gave {kind} {target} an inline policy allowing everything",
                    target=f"{kind} {target}",
                    policy=str(params.get("policyName", "")),
                )
            )
        if e.event_name in POLICY_CHANGE_EVENTS:
            roles, policies = _critical_names(self.config)
            touched_policy = _name_of(str(params.get("policyArn") or params.get("policyName") or ""))
            critical = (kind == "role" and target in roles) or (touched_policy and touched_policy in policies)
            found.append(
                self.candidate(
                    IAM_POLICY_CHANGE,
                    f"{e.account_id}|{_actor(e)}|{e.event_name}|{kind}|{target}",
                    f"{_actor(e)} called {e.event_name} on {kind} {target}"
                    + (" (critical)" if critical else ""),
                    target=f"{kind} {target}",
                    severity=Severity.CRITICAL if critical else None,
                    policy=touched_policy or None,
                )
            )
        return found

    def access_key_for_other(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "CreateAccessKey" or not e.succeeded:
            return []
        target = e.request_parameters.get("userName")
        if not target:
            return []  # a key for the caller itself
        ident = e.user_identity
        if ident.type == "IAMUser" and ident.user_name == target:
            return []
        key_id = ((e.response_elements or {}).get("accessKey") or {}).get("accessKeyId", "")
        return [
            self.candidate(
                ACCESS_KEY_CREATED_FOR_OTHER_USER,
                f"{e.account_id}|{_actor(e)}|{target}",
                f"{_actor(e)} created an access key for {target}",
                target=f"user {target}",
                access_key_id=key_id,
            )
        ]

    def mfa_deactivated(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name not in MFA_EVENTS or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        params = e.request_parameters
        target = params.get("userName") or _name_of(str(params.get("serialNumber", ""))) or "unknown"
        verb = "deactivated MFA for" if e.event_name == "DeactivateMFADevice" else "deleted the MFA device"
        return [
            self.candidate(
                MFA_DEACTIVATED,
                f"{e.account_id}|{target}",
                f"{_actor(e)} {verb} {target}",
                target=f"user {target}",
            )
        ]

    def login_profile_for_other(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in LOGIN_PROFILE_EVENTS
            or not e.succeeded
            or e.event_source != "iam.amazonaws.com"
        ):
            return []
        target = e.request_parameters.get("userName")
        ident = e.user_identity
        if not target or (ident.type == "IAMUser" and ident.user_name == target):
            return []  # one's own password
        reset = str(e.request_parameters.get("passwordResetRequired", "")).lower() == "true"
        verb = (
            "created a console password for"
            if e.event_name == "CreateLoginProfile"
            else "changed the console password of"
        )
        return [
            self.candidate(
                LOGIN_PROFILE_FOR_OTHER_USER,
                f"{e.account_id}|{_actor(e)}|{target}",
                f"{_actor(e)} {verb} {target}" + ("" if reset else " (no reset required)"),
                target=f"user {target}",
                password_reset_required="yes" if reset else "no",
                severity=Severity.MEDIUM if reset else None,
            )
        ]

    def _our_accounts(self, e: CloudTrailEvent) -> set[str]:
        ours = {e.account_id} | {a.id for a in self.config.accounts}
        if _has_table(self.db, "snapshots"):
            ours |= {r[0] for r in self.db.execute("SELECT DISTINCT account_id FROM snapshots") if r[0]}
        return ours

    def _previous_guards(self, account: str, role: str, at: datetime) -> set[str] | None:
        """Principals the role's previous trust policy guarded with ExternalId/MFA: from the last
        trust change seen in events, else from the latest scan snapshot; None when unknown."""
        row = self.db.execute(
            "SELECT guarded, at FROM alert_role_trusts WHERE account_id = ? AND role_name = ?",
            [account, role],
        ).fetchone()
        if row and row[1] < iso(at):
            return set(json.loads(row[0]))
        if not _has_table(self.db, "snapshots"):
            return None
        try:
            doc = self.db.execute(
                "SELECT json_extract(j.value, '$.AssumeRolePolicyDocument') FROM snapshots s, "
                "json_each(s.inventory, '$.roles') j WHERE s.account_id = ? AND s.status = 'ok' "
                "AND s.scanned_at < ? AND json_extract(j.value, '$.RoleName') = ? "
                "ORDER BY s.scanned_at DESC LIMIT 1",
                [account, iso(at), role],
            ).fetchone()
        except Exception:  # an unreadable old snapshot must not lose the alert
            return None
        if not doc or not doc[0]:
            return None
        try:
            return trust_summary(doc[0], role, ours=set()).guarded
        except Exception:
            return None

    def role_trust_opened(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name not in TRUST_EVENTS or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        params = e.request_parameters
        role = str(params.get("roleName") or "?")
        document = params.get(
            "policyDocument" if e.event_name == "UpdateAssumeRolePolicy" else "assumeRolePolicyDocument"
        )
        if not document:
            return []
        key = f"{e.account_id}|{role}"
        try:
            trust = trust_summary(document, role, ours=self._our_accounts(e))
        except Exception as exc:  # never a silent pass: say we could not read it
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} set a trust policy on role {role} that could not be read",
                    target=f"role {role}",
                    reason=str(exc)[:300],
                )
            ]
        previous = self._previous_guards(e.account_id, role, e.event_time)
        self.db.execute(
            "INSERT INTO alert_role_trusts (account_id, role_name, guarded, at, event_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (account_id, role_name) DO UPDATE SET guarded = excluded.guarded, at = excluded.at, "
            "event_id = excluded.event_id WHERE excluded.at >= alert_role_trusts.at",
            [e.account_id, role, json.dumps(sorted(trust.guarded)), iso(e.event_time), e.event_id],
        )
        dropped = sorted((previous or set()) & trust.unguarded)
        if trust.public:
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} let anyone (`*`) assume role {role}",
                    target=f"role {role}",
                    severity=Severity.CRITICAL,
                )
            ]
        if trust.outside or dropped:
            what = []
            if trust.outside:
                what.append(f"account {', '.join(trust.outside)} (no ExternalId or MFA condition)")
            if dropped:
                what.append(f"{', '.join(dropped)} without the ExternalId/MFA condition it had")
            return [
                self.candidate(
                    ROLE_TRUST_OPENED,
                    key,
                    f"{_actor(e)} let {' and '.join(what)} assume role {role}",
                    target=f"role {role}",
                    outside_accounts=", ".join(trust.outside) or None,
                    dropped_condition_for=", ".join(dropped) or None,
                )
            ]
        return []

    def key_quarantined(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_name != "AttachUserPolicy" or not e.succeeded or e.event_source != "iam.amazonaws.com":
            return []
        policy = str(e.request_parameters.get("policyArn") or "")
        user = e.request_parameters.get("userName")
        if not policy.startswith(QUARANTINE_POLICY_PREFIX) or not user:
            return []
        user_arn = f"arn:aws:iam::{e.account_id}:user/{user}"
        return [
            self.candidate(
                KEY_QUARANTINED,
                f"{e.account_id}|{user}",
                f"AWS quarantined {user}'s access key: it found the key exposed",
                target=f"user {user}",
                user=str(user),
                user_arn=user_arn,
                policy=_name_of(policy),
                owner_identity=UserIdentity(
                    type="IAMUser", arn=user_arn, user_name=str(user), account_id=e.account_id
                ),
            )
        ]

    def _automation(self, e: CloudTrailEvent) -> bool:

        ident = e.user_identity
        arns = [ident.arn]
        if ident.session_context and ident.session_context.session_issuer:
            arns.append(ident.session_context.session_issuer.arn)
        patterns = self.config.alerts.automation_principals
        return any(arn and arn_matches(p, arn) for p in patterns for arn in arns)

    def principal_created(self, e: CloudTrailEvent) -> list[Candidate]:
        # Root's calls are ROOT_ACTIVITY (critical) already; one alert says it.
        if e.event_source != "iam.amazonaws.com" or not e.succeeded or e.user_identity.type == "Root":
            return []
        if e.event_name == "CreateUser":
            target = str(e.request_parameters.get("userName") or "?")
            title = f"{_actor(e)} created IAM user {target}"
        elif e.event_name == "CreateAccessKey":
            ident = e.user_identity
            target = e.request_parameters.get("userName")
            if target and not (ident.type == "IAMUser" and ident.user_name == target):
                return []  # another user's key is ACCESS_KEY_CREATED_FOR_OTHER_USER
            target = ident.user_name or _actor(e)
            title = f"{_actor(e)} created an access key for itself"
        else:
            return []
        if self._automation(e):
            return []
        key_id = ((e.response_elements or {}).get("accessKey") or {}).get("accessKeyId")
        return [
            self.candidate(
                IAM_PRINCIPAL_CREATED,
                f"{e.account_id}|{e.event_name}|{target}",
                title,
                target=f"user {target}",
                access_key_id=key_id,
            )
        ]

    def identity_provider_change(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in IDENTITY_PROVIDER_EVENTS
            or not e.succeeded
            or e.event_source != "iam.amazonaws.com"
        ):
            return []
        params = e.request_parameters
        provider = (
            params.get("sAMLProviderArn")
            or params.get("samlProviderArn")
            or params.get("openIDConnectProviderArn")
            or params.get("name")
            or params.get("url")
            or ((e.response_elements or {}).get("sAMLProviderArn"))
            or ((e.response_elements or {}).get("openIDConnectProviderArn"))
            or "?"
        )
        name = _name_of(str(provider)) if str(provider).startswith("arn:") else str(provider)
        return [
            self.candidate(
                SAML_PROVIDER_CHANGE,
                f"{e.account_id}|{name}",
                f"{_actor(e)} called {e.event_name} on identity provider {name}",
                target=f"identity provider {name}",
            )
        ]
