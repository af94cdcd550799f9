"""Rules about the account's guards being switched off or bypassed: CloudTrail tampering, leaving
the organization, security services disabled, and Access Analyzer's new external access."""

from __future__ import annotations

from bot.alerts.candidates import Candidate, RuleContext
from bot.alerts.events import CloudTrailEvent
from bot.alerts.facts import (
    LEAVE_ORGANIZATION_EVENTS,
    SECURITY_SERVICE_EVENTS,
    TRAIL_TAMPERING_EVENTS,
    _actor,
    _flow_log_ids,
    _name_of,
    selectors_drop_management_events,
)
from bot.alerts.rules import (
    ACCESS_ANALYZER_FINDING,
    CLOUDTRAIL_SELECTORS_CHANGED,
    CLOUDTRAIL_TAMPERING,
    LEAVE_ORGANIZATION,
    SECURITY_SERVICE_DISABLED,
)


class AccountGuardRules(RuleContext):
    def trail_tampering(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.event_source != "cloudtrail.amazonaws.com" or e.event_name not in TRAIL_TAMPERING_EVENTS:
            return []
        if not e.succeeded:
            return []
        trail = _name_of(
            str(e.request_parameters.get("name") or e.request_parameters.get("trailName") or "?")
        )
        if e.event_name == "PutEventSelectors":
            narrowed = selectors_drop_management_events(e.request_parameters)
            if narrowed is None:
                return [
                    self.candidate(
                        CLOUDTRAIL_SELECTORS_CHANGED,
                        f"{e.account_id}|{trail}",
                        f"{_actor(e)} changed the event selectors of trail {trail} "
                        "(management events still logged)",
                        target=f"trail {trail}",
                    )
                ]
            return [
                self.candidate(
                    CLOUDTRAIL_TAMPERING,
                    f"{e.account_id}|{trail}|{e.event_name}",
                    f"{_actor(e)} called {e.event_name} on trail {trail}: {narrowed}",
                    target=f"trail {trail}",
                    change=narrowed,
                )
            ]
        return [
            self.candidate(
                CLOUDTRAIL_TAMPERING,
                f"{e.account_id}|{trail}|{e.event_name}",
                f"{_actor(e)} called {e.event_name} on trail {trail}",
                target=f"trail {trail}",
            )
        ]

    def access_analyzer(self, e: CloudTrailEvent) -> list[Candidate]:
        if e.kind != "access_analyzer":
            return []
        finding = e.request_parameters
        if finding.get("status") != "ACTIVE":
            return []
        resource = str(finding.get("resource", "?"))
        principal = finding.get("principal") or {}
        who = (
            "anyone (public)"
            if finding.get("isPublic")
            else ", ".join(str(v) for v in principal.values()) or "an external principal"
        )
        return [
            self.candidate(
                ACCESS_ANALYZER_FINDING,
                f"{e.account_id}|{finding.get('id')}",
                f"{finding.get('resourceType', 'A resource')} {_name_of(resource)} is accessible by {who}",
                target=resource,
                actions=", ".join(finding.get("action") or [])[:500],
                finding_id=str(finding.get("id")),
            )
        ]

    def leave_organization(self, e: CloudTrailEvent) -> list[Candidate]:
        if (
            e.event_name not in LEAVE_ORGANIZATION_EVENTS
            or not e.succeeded
            or e.event_source != "organizations.amazonaws.com"
        ):
            return []
        leaving = str(e.request_parameters.get("accountId") or e.account_id)
        return [
            self.candidate(
                LEAVE_ORGANIZATION,
                leaving,
                f"{_actor(e)} took account {leaving} out of the organization ({e.event_name})",
                target=f"account {leaving}",
            )
        ]

    def security_service_disabled(self, e: CloudTrailEvent) -> list[Candidate]:
        what = SECURITY_SERVICE_EVENTS.get((e.event_source, e.event_name))
        if what is None or not e.succeeded:
            return []
        params = e.request_parameters
        if e.event_name == "UpdateDetector" and params.get("enable") is not False:
            return []  # a settings change that keeps the detector on
        resource = (
            params.get("detectorId")
            or params.get("configurationRecorderName")
            or params.get("deliveryChannelName")
            or ", ".join(_flow_log_ids(params))
            or params.get("analyzerName")
            or ""
        )
        return [
            self.candidate(
                SECURITY_SERVICE_DISABLED,
                f"{e.account_id}|{e.aws_region}|{e.event_name}|{resource}",
                f"{_actor(e)}: {what}"
                + (f" ({resource})" if resource else "")
                + f" in {e.aws_region or '?'}",
                target=str(resource) or None,
            )
        ]
