"""Typed models of the Slack payloads we accept: handlers never dig through raw dicts."""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SlashCommand(BaseModel):
    model_config = ConfigDict(extra="ignore")

    command: str = "/iam"
    text: str = ""
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    team_id: str = ""
    trigger_id: str = ""
    response_url: str = ""

    @property
    def words(self) -> list[str]:
        """The text split like a shell would, tolerating unbalanced quotes."""
        try:
            return shlex.split(self.text)
        except ValueError:
            return self.text.split()

    @property
    def subcommand(self) -> str:
        words = self.words
        return words[0].lower() if words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    @property
    def rest(self) -> str:
        """Everything after the subcommand, as typed (for free-text reasons)."""
        stripped = self.text.strip()
        parts = stripped.split(None, 1)
        return parts[1] if len(parts) > 1 else ""


class ActionUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    username: str = ""


class BlockAction(BaseModel):
    """One clicked element of a block_actions payload."""

    model_config = ConfigDict(extra="ignore")
    user: ActionUser
    action_id: str
    value: str = ""
    block_id: str = ""
    channel_id: str | None = None
    message_ts: str | None = None
    trigger_id: str = ""
    response_url: str | None = None
    view_id: str | None = None
    selected: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> BlockAction:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        selected = (action.get("selected_option") or {}).get("value")
        return cls(
            user=body.get("user") or {},
            action_id=action.get("action_id", ""),
            value=action.get("value") or "",
            block_id=action.get("block_id", ""),
            channel_id=(body.get("channel") or {}).get("id") or container.get("channel_id"),
            message_ts=(body.get("message") or {}).get("ts") or container.get("message_ts"),
            trigger_id=body.get("trigger_id", ""),
            response_url=body.get("response_url"),
            view_id=(body.get("view") or {}).get("id"),
            selected=selected,
        )


class ViewSubmission(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: ActionUser
    callback_id: str
    private_metadata: str = ""
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ViewSubmission:
        view = body.get("view") or {}
        return cls(
            user=body.get("user") or {},
            callback_id=view.get("callback_id", ""),
            private_metadata=view.get("private_metadata", ""),
            values=(view.get("state") or {}).get("values") or {},
        )

    def value(self, block_id: str, action_id: str | None = None) -> str | None:
        block = self.values.get(block_id) or {}
        element = block.get(action_id) if action_id else next(iter(block.values()), None)
        if not element:
            return None
        if element.get("selected_option"):
            return element["selected_option"].get("value")
        if "selected_date" in element:
            return element.get("selected_date")
        return element.get("value")
