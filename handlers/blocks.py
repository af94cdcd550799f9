"""Pure Block Kit builders: escape what users typed, respect Slack's limits by construction.

Every message the bot sends is a ``Message`` (fallback ``text`` + ``blocks``). ``Message.checked()``
enforces the limits (50 blocks, 3000 chars a section, ~12k chars of block text) by summarising and
moving the overflow into an attachment file instead of letting Slack reject the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block

from bot.findings import Severity

MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_VIEW = 100
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_FALLBACK_TEXT = 3000
# Slack rejects messages whose blocks carry much more than this in total (msg_blocks_too_long).
MAX_MESSAGE_BLOCK_TEXT = 11_000

_MENTION_LIKE = re.compile(r"[&<>]")

# One icon per severity, everywhere the bot shows one (answers, digest, alerts).
SEVERITY_ICON = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":white_circle:",
}


def escape(text: Any) -> str:
    """Escape user-supplied text for Slack mrkdwn: ``&`` first, then ``<`` and ``>``.

    After this, ``<!channel>`` or ``<@U123>`` typed by someone is shown literally and pings nobody.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """A real mention of a Slack member, for ids the bot itself resolved (never user text)."""
    if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user_id or ""):
        return escape(user_id)
    return f"<@{user_id}>"


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(suffix)] + suffix


def code(text: Any) -> str:
    """Inline code for identifiers (ARNs, key ids); escaped, backticks removed so it cannot break out."""
    return "`" + escape(str(text).replace("`", "'")) + "`"


def section(text: str, *, accessory: dict | None = None, block_id: str | None = None) -> dict:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)},
    }
    if accessory:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields_section(pairs: Iterable[tuple[str, str]]) -> dict:
    fields = [{"type": "mrkdwn", "text": truncate(f"*{k}*\n{v}", 2000)} for k, v in list(pairs)[:10]]
    return {"type": "section", "fields": fields}


def header(text: str) -> dict:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT), "emoji": True},
    }


def context(*texts: str) -> dict:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(t, 3000)} for t in texts[:10]],
    }


def divider() -> dict:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str = "",
    *,
    style: str | None = None,
    confirm: dict | None = None,
) -> dict:
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError(f"button value over {MAX_BUTTON_VALUE} chars; store state server-side")
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": str(action_id),
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, *, confirm: str = "Yes", deny: str = "Cancel") -> dict:
    return {
        "title": {"type": "plain_text", "text": truncate(title, 100)},
        "text": {"type": "mrkdwn", "text": truncate(text, 300)},
        "confirm": {"type": "plain_text", "text": truncate(confirm, 30)},
        "deny": {"type": "plain_text", "text": truncate(deny, 30)},
    }


def actions(*elements: dict, block_id: str | None = None) -> dict:
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def _block_text_size(block: dict) -> int:
    size = 0
    text = block.get("text")
    if isinstance(text, dict):
        size += len(text.get("text", ""))
    for item in block.get("fields", []) or []:
        size += len(item.get("text", ""))
    for item in block.get("elements", []) or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            size += len(item["text"])
    return size


@dataclass
class Attachment:
    """A file to upload alongside a message when the content is too big for blocks."""

    filename: str
    content: str
    title: str = ""
    filetype: str = "text"


@dataclass
class Message:
    """A Slack message: fallback text (always set), blocks, and an optional overflow file."""

    text: str
    blocks: list[dict] = field(default_factory=list)
    attachment: Attachment | None = None
    ephemeral: bool = True

    def checked(self, *, max_blocks: int = MAX_BLOCKS_MESSAGE, overflow_name: str = "details.txt") -> Message:
        """Return a message within Slack's limits; what does not fit goes to ``attachment``.

        Nothing is cut silently: a context block says how much was moved to the file.
        """
        text = truncate(self.text or "(no text)", MAX_FALLBACK_TEXT)
        kept: list[dict] = []
        overflow: list[dict] = []
        total = 0
        budget_blocks = max_blocks - 1  # keep one slot for the "more in the file" note
        for block in self.blocks:
            size = _block_text_size(block)
            if not overflow and len(kept) < budget_blocks and total + size <= MAX_MESSAGE_BLOCK_TEXT:
                kept.append(block)
                total += size
            else:
                overflow.append(block)
        attachment = self.attachment
        if overflow:
            lines = [_plain(b) for b in overflow]
            extra = "\n\n".join(x for x in lines if x)
            content = (attachment.content + "\n\n" + extra) if attachment else extra
            attachment = Attachment(
                filename=attachment.filename if attachment else overflow_name,
                content=content,
                title=attachment.title if attachment else "Full details",
            )
            kept.append(
                context(f"{len(overflow)} more item(s) did not fit in this message: see the attached file.")
            )
        return Message(text=text, blocks=kept, attachment=attachment, ephemeral=self.ephemeral)

    def as_kwargs(self) -> dict[str, Any]:
        """Arguments for chat.postMessage / ack / respond. Never sets link_names or parse."""
        checked = self.checked()
        kwargs: dict[str, Any] = {"text": checked.text}
        if checked.blocks:
            kwargs["blocks"] = checked.blocks
        return kwargs


def _plain(block: dict) -> str:
    parts: list[str] = []
    text = block.get("text")
    if isinstance(text, dict):
        parts.append(text.get("text", ""))
    for item in block.get("fields", []) or []:
        parts.append(item.get("text", ""))
    for item in block.get("elements", []) or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append(item["text"])
    return "\n".join(p for p in parts if p)


def validate_blocks(blocks: Sequence[dict], *, max_blocks: int = MAX_BLOCKS_MESSAGE) -> list[str]:
    """Problems Slack would reject, as readable strings (empty list means valid)."""
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks (limit {max_blocks})")
    total = 0
    for i, raw in enumerate(blocks):
        try:
            Block.parse(raw).validate_json()
        except Exception as exc:  # slack_sdk raises SlackObjectFormationError and friends
            problems.append(f"block {i}: {exc}")
        total += _block_text_size(raw)
        if raw.get("type") == "section" and len(raw.get("text", {}).get("text", "")) > MAX_SECTION_TEXT:
            problems.append(f"block {i}: section text over {MAX_SECTION_TEXT}")
    if total > MAX_MESSAGE_BLOCK_TEXT + 1000:
        problems.append(f"{total} chars of block text (msg_blocks_too_long)")
    return problems


def plain_escape_check(text: str) -> bool:
    """True when text contains nothing Slack would treat as markup (used by tests)."""
    return not _MENTION_LIKE.search(text)
