"""The Slack side of offboarding: ``bot.identity.OffboardingNotifier`` over the Web API, for the
``user_change`` listener, the sweep and the directory refresh alike."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient

from bot.identity import OffboardingReport
from bot.services import Services
from handlers.identity.views import alert_message


@dataclass
class SlackOffboardingNotifier:
    """``bot.identity.OffboardingNotifier`` over the Web API."""

    services: Services
    client: WebClient

    def access_changed(self, request_ids: list[str]) -> None:
        from handlers.access import refresh_with_extensions  # late: handlers.access imports handlers.identity

        for request_id in request_ids:
            refresh_with_extensions(self.services, self.client, request_id)

    def offboarding_alert(self, report: OffboardingReport) -> tuple[str, str]:
        slack = self.services.config.slack
        channel = slack.security_channel or slack.alerts_channel or slack.approvals_channel
        if not channel:
            raise RuntimeError("no security channel is configured ([slack] security_channel)")
        message = alert_message(report).checked(overflow_name="offboarding.txt")
        result = self.client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
        return result.get("channel") or channel, result["ts"]
