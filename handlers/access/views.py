"""Pure Block Kit builders over access domain objects; escaping happens inside them."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from bot import access
from bot.access import AccessRequest, IssuedCredentials, Kind, State
from bot.services import Services
from handlers.blocks import (
    Message,
    actions,
    button,
    code,
    confirm_dialog,
    context,
    escape,
    fields_section,
    header,
    mention,
    section,
)
from handlers.ids import ActionId, BlockId, CallbackId

log = logging.getLogger(__name__)

STATE_LABEL = {
    State.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    State.APPROVED: ":key: Approved, granting…",
    State.GRANTED: ":white_check_mark: Granted",
    State.DENIED: ":no_entry: Denied",
    State.EXPIRED: ":zzz: Expired",
    State.ENDED: ":checkered_flag: Ended",
    State.REVOKED: ":lock: Revoked",
    State.FAILED: ":warning: Grant failed",
    State.WITHDRAWN: ":leftwards_arrow_with_hook: Withdrawn",
}


# -- small helpers ------------------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    """A time every reader sees in their own zone, with a UTC fallback for clients that cannot."""
    if moment is None:
        return "—"
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def approvers_text(services: Services, request: AccessRequest) -> str:
    role = services.config.role(request.role)
    entries = role.approvers if role else []
    shown = [mention(e) if e[:1] in "UW" else escape(e) for e in entries]
    return ", ".join(shown) or "nobody is configured"


# -- Block Kit builders (pure) ---------------------------------------------------------------------


def request_message(services: Services, request: AccessRequest) -> Message:
    """The durable request message in the approvals channel, as it should look in this state."""
    role = services.config.role(request.role)
    required = role.approvals_required if role else 1
    title = {
        Kind.REQUEST: f"Access request: {request.role}",
        Kind.EXTENSION: f"Extension request: {request.role}",
        Kind.BREAK_GLASS: f"BREAK GLASS: {request.role}",
    }[Kind(request.kind)]
    pairs = [
        ("Requester", mention(request.requester)),
        ("Role", code(request.role)),
        ("Account", code(request.account_id)),
        ("Duration", access.format_duration(request.duration)),
        ("Status", STATE_LABEL.get(State(request.state), escape(request.state))),
        ("Request", code(request.id)),
    ]
    if request.ticket:
        pairs.append(("Ticket", escape(request.ticket)))
    if request.parent_id:
        pairs.append(("Extends", code(request.parent_id)))
    blocks = [
        header(title),
        fields_section(pairs),
        section(f"*Reason*\n{escape(request.reason)}"),
    ]
    status = _status_line(services, request, required)
    blocks.append(section(status))
    if request.is_break_glass:
        review = (
            f"Reviewed by {mention(request.reviewed_by or '')} at {when(request.reviewed_at)}."
            if request.reviewed_at
            else "Review required: the security team must review this use."
        )
        blocks.append(context(review))
    else:
        blocks.append(context(f"Approvers: {approvers_text(services, request)} · {required} needed"))
    buttons = _buttons_for(request)
    if buttons:
        blocks.append(actions(*buttons))
    text = f"{title} for {request.requester}: {request.state}"
    return Message(text=text, blocks=blocks, ephemeral=False)


def _status_line(services: Services, request: AccessRequest, required: int) -> str:
    approved_by = ", ".join(mention(a) for a in request.approvers)
    state = request.state
    if state == State.PENDING:
        got = len(request.approvers)
        counted = f" ({got} of {required} so far: {approved_by})" if got else ""
        return (
            f"Waiting for {required} approval(s){counted} until {when(request.pending_until)}. "
            f"Approved now, access would end at {when(services.clock.now() + request.duration)}."
        )
    if state in (State.APPROVED, State.GRANTED):
        who = approved_by or ("break glass, no peer" if request.is_break_glass else "—")
        return f"Approved by {who}. Access ends {when(request.window_end)}."
    if state == State.DENIED:
        why = f": {escape(request.deny_reason)}" if request.deny_reason else "."
        return f"Denied by {mention(request.decided_by or '')}{why}"
    if state == State.EXPIRED:
        return f"Expired at {when(request.ended_at)}: nobody decided in time."
    if state == State.ENDED:
        return f"Approved by {approved_by or 'break glass'}. Access ended at {when(request.window_end)}."
    if state == State.REVOKED:
        by = mention(request.ended_by or "")
        verb = "ended early by the requester" if request.ended_by == request.requester else f"revoked by {by}"
        return f"Access {verb} at {when(request.ended_at)}."
    if state == State.FAILED:
        if request.is_break_glass and not request.approvers and not request.window_end:
            return f"Break glass refused, nothing granted: {escape(request.error or 'unknown error')}"
        return f"Approved, but the grant failed: {escape(request.error or 'unknown error')}"
    if state == State.WITHDRAWN:
        return f"Withdrawn by the requester at {when(request.ended_at)}; nothing was granted."
    return escape(state)


def _buttons_for(request: AccessRequest) -> list[dict]:
    rid = request.id
    buttons: list[dict] = []
    if request.state == State.PENDING:
        buttons += [
            button("Approve", ActionId.ACCESS_APPROVE, rid, style="primary"),
            button("Deny", ActionId.ACCESS_DENY, rid, style="danger"),
            # Only the requester may withdraw: decided at the click, from stored state.
            button("Withdraw", ActionId.ACCESS_WITHDRAW, rid),
        ]
    elif request.state == State.GRANTED and request.kind != Kind.EXTENSION:
        buttons += [
            button("Get credentials again", ActionId.ACCESS_REISSUE, rid),
            button("I'm done", ActionId.ACCESS_DONE, rid),
        ]
        if not request.is_break_glass:
            buttons.append(button("Extend", ActionId.ACCESS_EXTEND, rid))
        buttons.append(
            button(
                "Revoke",
                ActionId.ACCESS_REVOKE,
                rid,
                style="danger",
                confirm=confirm_dialog("Revoke access?", "Live sessions stop now.", confirm="Revoke"),
            )
        )
    if request.is_break_glass and request.needs_review:
        buttons.append(button("Review", ActionId.ACCESS_REVIEW, rid, style="primary"))
    return buttons


def credentials_message(
    request: AccessRequest, creds: IssuedCredentials, console_url: str | None, console_problem: str | None
) -> Message:
    """For the requester alone. States the real expiry: the session's or the window's, the earlier."""
    ends = creds.effective_end
    blocks = [
        header(f"Credentials for {request.role}"),
        section(
            f"Role {code(creds.role_arn)} in account {code(creds.account_id)}. "
            + (
                f"These work until {when(ends)}, the end of the approved window."
                if creds.expiration >= creds.window_end
                else f"These work until {when(ends)}; the approved window ends {when(creds.window_end)}: "
                "click *Get credentials again* then for a fresh session."
            )
        ),
        section("*Shell*\n```" + creds.export_lines() + "```"),
        section("*credential_process*\n```" + creds.credential_process_json() + "```"),
    ]
    elements = []
    if console_url and len(console_url) <= 3000:
        elements.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open the AWS console"},
                "action_id": ActionId.ACCESS_CONSOLE.value,
                "url": console_url,
            }
        )
    elements.append(button("Get credentials again", ActionId.ACCESS_REISSUE, request.id))
    blocks.append(actions(*elements))
    notes = [f"Session {code(creds.session_name)} · key {code(creds.access_key_id)} · only you can see this."]
    if console_problem:
        notes.append(f"Console link unavailable: {escape(console_problem)}")
    blocks.append(context(*notes))
    return Message(text=f"Credentials for {request.role} until {ends:%H:%M} UTC", blocks=blocks)


def grants_message(services: Services, requests: list[AccessRequest]) -> Message:
    if not requests:
        return Message(
            text="You have no access requests.",
            blocks=[section("You have no access requests. Ask with `/iam request`.")],
        )
    blocks: list[dict] = [header("Your access requests")]
    for request in requests[:12]:
        line = f"{code(request.id)} {code(request.role)} · {STATE_LABEL.get(State(request.state), request.state)}"
        if request.state == State.GRANTED:
            line += f" · ends {when(request.window_end)}"
        elif request.state == State.PENDING:
            line += f" · waiting until {when(request.pending_until)}"
        blocks.append(section(line + f"\n{escape(access.truncate_reason(request.reason))}"))
        if request.state == State.GRANTED and request.kind != Kind.EXTENSION:
            blocks.append(
                actions(
                    button("Get credentials again", ActionId.ACCESS_REISSUE, request.id),
                    button("I'm done", ActionId.ACCESS_DONE, request.id),
                )
            )
    return Message(text=f"You have {len(requests)} access request(s).", blocks=blocks)


def request_modal(services: Services, roles: list, origin_channel: str) -> dict:
    role_options = [
        {
            "text": {"type": "plain_text", "text": r.name[:75]},
            "value": r.name[:150],
            **({"description": {"type": "plain_text", "text": r.description[:75]}} if r.description else {}),
        }
        for r in roles[:100]
    ]
    duration_options = [
        {
            "text": {"type": "plain_text", "text": access.format_duration(d)},
            "value": access.format_duration(d),
        }
        for d in access.duration_choices(services, roles)
    ]
    ticket_roles = [r.name for r in roles if r.require_ticket]
    blocks = [
        {
            "type": "input",
            "block_id": BlockId.ACCESS_ROLE.value,
            "label": {"type": "plain_text", "text": "Role"},
            "element": {
                "type": "static_select",
                "action_id": BlockId.ACCESS_ROLE.value,
                "options": role_options,
                "placeholder": {"type": "plain_text", "text": "Choose a role"},
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_DURATION.value,
            "label": {"type": "plain_text", "text": "For how long"},
            "hint": {
                "type": "plain_text",
                "text": "Each role has its own maximum; I will tell you if it is lower.",
            },
            "element": {
                "type": "static_select",
                "action_id": BlockId.ACCESS_DURATION.value,
                "options": duration_options,
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_REASON.value,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {
                "type": "plain_text_input",
                "action_id": BlockId.ACCESS_REASON.value,
                "multiline": True,
                "max_length": 1000,
            },
        },
        {
            "type": "input",
            "block_id": BlockId.ACCESS_TICKET.value,
            "optional": True,
            "label": {"type": "plain_text", "text": "Ticket"},
            "hint": {
                "type": "plain_text",
                "text": ("Required for: " + ", ".join(ticket_roles))[:150] if ticket_roles else "Optional",
            },
            "element": {
                "type": "plain_text_input",
                "action_id": BlockId.ACCESS_TICKET.value,
                "max_length": 200,
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": CallbackId.ACCESS_REQUEST_MODAL.value,
        "private_metadata": json.dumps({"channel": origin_channel}),
        "title": {"type": "plain_text", "text": "Request access"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def deny_modal(request: AccessRequest) -> dict:
    return {
        "type": "modal",
        "callback_id": CallbackId.ACCESS_DENY_MODAL.value,
        "private_metadata": request.id,
        "title": {"type": "plain_text", "text": "Deny access"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Deny {mention(request.requester)}'s request for {code(request.role)}?"),
            {
                "type": "input",
                "block_id": BlockId.ACCESS_DENY_REASON.value,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (shown to the requester)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": BlockId.ACCESS_DENY_REASON.value,
                    "max_length": 500,
                },
            },
        ],
    }
