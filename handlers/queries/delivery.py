"""Answers within Slack's limits: what does not fit in one message goes to the member's DM as a file
(never a shared channel: findings are sensitive), and the message says so."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from handlers.blocks import Message, context, escape
from handlers.commands import CommandIO

log = logging.getLogger(__name__)


def send_file_to_dm(
    io: CommandIO, user_id: str, *, filename: str, content: str, title: str, comment: str
) -> str | None:
    """Upload a file into the member's DM with the bot (never a shared channel: findings are
    sensitive). Returns None on success, else Slack's error name."""
    try:
        dm = io.client.conversations_open(users=user_id)["channel"]["id"]
        io.client.files_upload_v2(
            channel=dm, content=content, filename=filename, title=title, initial_comment=comment
        )
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        log.warning("could not send %s to %s: %s", filename, user_id, error)
        return str(error)
    return None


def deliver(message: Message, io: CommandIO, user_id: str, *, filename: str) -> Message:
    """The message within Slack's limits; what did not fit is sent as a file to the member's DM
    and the message says so (or says the file could not be sent): never cut silently."""
    checked = message.checked(overflow_name=filename)
    if checked.attachment is None:
        return checked
    error = send_file_to_dm(
        io,
        user_id,
        filename=checked.attachment.filename,
        content=checked.attachment.content,
        title=checked.attachment.title or filename,
        comment="The rest of the answer that did not fit in one message.",
    )
    note = (
        "More did not fit in this message: I sent the rest to you as a file in our DM."
        if error is None
        else f"More did not fit in this message, and sending it as a file failed ({escape(error)}). Ask with a narrower question."
    )
    checked.blocks[-1] = context(note)
    return checked
