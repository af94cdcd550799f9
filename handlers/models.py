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
        """Raises pydantic.ValidationError when the payload lacks what Slack always sends (a user)."""
        actions = body.get("actions")
        action = _dict(actions[0]) if isinstance(actions, list) and actions else {}
        container = _dict(body.get("container"))
        selected = _str_or_none(_dict(action.get("selected_option")).get("value"))
        return cls(
            user=_dict(body.get("user")),
            action_id=_str(action.get("action_id")),
            value=_str(action.get("value")),
            block_id=_str(action.get("block_id")),
            channel_id=_str_or_none(_dict(body.get("channel")).get("id") or container.get("channel_id")),
            message_ts=_str_or_none(_dict(body.get("message")).get("ts") or container.get("message_ts")),
            trigger_id=_str(body.get("trigger_id")),
            response_url=_str_or_none(body.get("response_url")),
            view_id=_str_or_none(_dict(body.get("view")).get("id")),
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
        """Raises pydantic.ValidationError when the payload lacks what Slack always sends (a user)."""
        view = _dict(body.get("view"))
        values = _dict(_dict(view.get("state")).get("values"))
        return cls(
            user=_dict(body.get("user")),
            callback_id=_str(view.get("callback_id")),
            # Slack sends "" when a modal set none; null or a non-string is treated the same.
            private_metadata=_str(view.get("private_metadata")),
            values={k: v for k, v in values.items() if isinstance(v, dict)},
        )

    def value(self, block_id: str, action_id: str | None = None) -> str | None:
        block = _dict(self.values.get(block_id))
        element = block.get(action_id) if action_id else next(iter(block.values()), None)
        if not isinstance(element, dict) or not element:
            return None
        if element.get("selected_option"):
            return _str_or_none(_dict(element["selected_option"]).get("value"))
        if "selected_date" in element:
            return _str_or_none(element.get("selected_date"))
        return _str_or_none(element.get("value"))


# Payload fields arrive from the network: a field of the wrong type reads as absent, never raises.
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
