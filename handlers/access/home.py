"""The access sections of the App Home tab."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import access
from bot.access import State
from bot.services import Services
from handlers.access.views import STATE_LABEL, when
from handlers.blocks import (
    actions,
    button,
    code,
    divider,
    escape,
    mention,
    section,
)
from handlers.home import HOME_SECTIONS
from handlers.identity import usergroup_members
from handlers.ids import ActionId

log = logging.getLogger(__name__)

# -- App Home ------------------------------------------------------------------------------------------


def home_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    requests = access.requests_for(services, user_id, limit=8)
    if not requests:
        return []
    blocks: list[dict] = [divider(), section("*Just-in-time access*")]
    for request in requests:
        line = f"{code(request.role)} · {STATE_LABEL.get(State(request.state), request.state)} · {code(request.id)}"
        if request.state == State.GRANTED:
            line += f" · ends {when(request.window_end)}"
            blocks.append(
                section(line, accessory=button("Get credentials again", ActionId.ACCESS_REISSUE, request.id))
            )
        else:
            blocks.append(section(line))
    return blocks


def home_approvals_section(services: Services, client: WebClient, user_id: str) -> list[dict]:
    """Pending requests this member may decide, with the same buttons as the channel message."""
    rows = services.store.execute(
        "SELECT id FROM access_requests WHERE state = 'pending' AND requester != ? ORDER BY created_at LIMIT 20",
        [user_id],
    ).fetchall()
    members_of = lambda handle: usergroup_members(client, services, handle)  # noqa: E731 - display only
    blocks: list[dict] = []
    for (request_id,) in rows:
        request = access.get_request(services, request_id)
        role = services.config.role(request.role) if request else None
        if request is None or role is None or user_id in request.approvers:
            continue
        if not access.is_listed(user_id, role.approvers, members_of):
            continue
        blocks.append(
            section(
                f"{mention(request.requester)} · {code(request.role)} · {access.format_duration(request.duration)} · "
                f"{code(request.id)}\n{escape(access.truncate_reason(request.reason))}"
            )
        )
        blocks.append(
            actions(
                button("Approve", ActionId.ACCESS_APPROVE, request.id, style="primary"),
                button("Deny", ActionId.ACCESS_DENY, request.id, style="danger"),
            )
        )
        if len(blocks) >= 16:
            break
    return [divider(), section("*Waiting for your approval*"), *blocks] if blocks else []


for _contribution in (home_section, home_approvals_section):
    if _contribution not in HOME_SECTIONS:
        HOME_SECTIONS.append(_contribution)
