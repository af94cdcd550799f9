"""Block Kit rendered as plain terminal text, for the demo chat.

Interactive choices (buttons, and each option of a select or overflow menu) are numbered so a
person at a terminal can pick one: `[1] Approve  [2] Deny`.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

DIVIDER = "-" * 40

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
# Slack's mrkdwn: *bold*, _italic_, ~strike~, `code` (not inside words, as Slack reads them).
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_CODE = re.compile(r"`([^`\n]+)`")
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")

# The emoji the bot uses, as the symbols Slack shows; an unknown code stays as typed.
EMOJI = {
    "red_circle": "🔴",
    "large_orange_circle": "🟠",
    "orange_circle": "🟠",
    "large_yellow_circle": "🟡",
    "yellow_circle": "🟡",
    "white_circle": "⚪",
    "large_blue_circle": "🔵",
    "large_green_circle": "🟢",
    "green_circle": "🟢",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "no_entry": "⛔",
    "lock": "🔒",
    "unlock": "🔓",
    "key": "🔑",
    "clock3": "🕒",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "bell": "🔔",
    "mag": "🔍",
    "shield": "🛡️",
    "tada": "🎉",
    "wave": "👋",
    "information_source": "ℹ️",
    "question": "❓",
    "zzz": "💤",
    "broom": "🧹",
    "bust_in_silhouette": "👤",
    "link": "🔗",
    "memo": "📝",
    "arrow_right": "➡️",
    "calendar": "📅",
    "closed_lock_with_key": "🔐",
    "heavy_minus_sign": "➖",
    "chart_with_upwards_trend": "📈",
    "chart_with_downwards_trend": "📉",
    "checkered_flag": "🏁",
    "grey_question": "❔",
    "mega": "📣",
    "speech_balloon": "💬",
    "ok_hand": "👌",
}

_ANSI = {
    "bold": ("\x1b[1m", "\x1b[22m"),
    "italic": ("\x1b[3m", "\x1b[23m"),
    "strike": ("\x1b[9m", "\x1b[29m"),
    "code": ("\x1b[36m", "\x1b[39m"),
}

# How this render call shows people and styles (set by render_message / render_view).
_names: ContextVar[dict[str, str]] = ContextVar("names", default={})  # noqa: B039 - read-only default
_colour: ContextVar[bool] = ContextVar("colour", default=False)


@dataclass
class Button:
    """A numbered choice the terminal user can make, with what Slack would send back for it."""

    number: int
    text: str
    action_id: str
    value: str
    block_id: str
    kind: str = "button"  # or the select/overflow element type an option belongs to
    style: str | None = None
    url: str | None = None


def styled(text: str, *, colour: bool | None = None) -> str:
    """mrkdwn styles as Slack shows them: bold, italic, strike and code as ANSI when the terminal
    has colour (markers dropped otherwise), emoji codes as symbols."""
    colour = _colour.get() if colour is None else colour

    def style(kind: str) -> object:
        start, end = _ANSI[kind]
        return (lambda m: f"{start}{m.group(1)}{end}") if colour else (lambda m: m.group(1))

    # A ``` block is shown literally on its own lines (credentials, JSON): nothing inside it is styled.
    if "```" in text:
        blocks = text.split("```")
        return "".join(
            ("\n" + block.strip("\n") + "\n") if i % 2 else styled(block, colour=colour)
            for i, block in enumerate(blocks)
        )
    # Code first: what is inside backticks is shown literally, styles and emoji included.
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            start, end = _ANSI["code"]
            out.append(f"{start}{part}{end}" if colour else f"`{part}`")
            continue
        part = _EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), part)
        part = _BOLD.sub(style("bold"), part)
        part = _ITALIC.sub(style("italic"), part)
        part = _STRIKE.sub(style("strike"), part)
        out.append(part)
    return "".join(out)


def mrkdwn_to_text(text: str) -> str:
    """Slack's markup as a person reads it: `<@U1>` → `@ada` (display name when known),
    `<url|label>` → `label (url)`, *bold* and :emoji: rendered (see ``styled``)."""
    names = _names.get()

    def replace(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            if label:
                return "@" + label.lstrip("@")
            return "@" + names.get(target[1:], target[1:])
        if target.startswith("#"):
            return "#" + (label or names.get(target[1:], target[1:]))
        if target.startswith("!"):
            if label:
                return label
            special = target[1:].split("^")[0]
            if special.startswith("subteam"):
                return "@" + names.get(target[1:].split("^")[-1], "group")
            return "@" + special
        if label:
            return f"{label} ({target})"
        return target

    return _unescape(styled(_LINK.sub(replace, text)))


def _unescape(text: str) -> str:
    # &amp; last, so "&amp;lt;" stays the literal text "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: object) -> str:
    if isinstance(obj, str):
        return mrkdwn_to_text(obj)
    if not isinstance(obj, dict):
        return ""
    text = obj.get("text") or ""
    if obj.get("type") == "plain_text":
        return text
    return mrkdwn_to_text(text)


class _Renderer:
    def __init__(self, first_number: int = 1) -> None:
        self.lines: list[str] = []
        self.buttons: list[Button] = []
        self.first_number = first_number

    def result(self) -> tuple[str, list[Button]]:
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines), self.buttons

    def add(self, text: str, indent: str = "") -> None:
        for line in text.splitlines() or [""]:
            self.lines.append(indent + line)

    def blocks(self, blocks: list) -> None:
        for block in blocks:
            if isinstance(block, dict):
                self.block(block)

    def block(self, block: dict) -> None:
        kind = block.get("type")
        block_id = block.get("block_id") or ""
        if kind == "header":
            title = _text(block.get("text"))
            self.add(title)
            self.add("=" * max(len(title), 3))
        elif kind == "section":
            if block.get("text"):
                self.add(_text(block["text"]))
            for field in block.get("fields") or []:
                self.add(_text(field), "  ")
            if isinstance(block.get("accessory"), dict):
                self.add(self.element(block["accessory"], block_id), "  ")
        elif kind == "context":
            parts = []
            for el in block.get("elements") or []:
                if isinstance(el, dict) and el.get("type") == "image":
                    parts.append(f"[{el.get('alt_text') or 'image'}]")
                else:
                    parts.append(_text(el))
            self.add("  ".join(p for p in parts if p), "  ")
        elif kind == "divider":
            self.add(DIVIDER)
        elif kind == "actions":
            rendered = [self.element(el, block_id) for el in block.get("elements") or []]
            self.add("  ".join(r for r in rendered if r))
        elif kind == "image":
            title = _text(block.get("title")) if block.get("title") else block.get("alt_text", "image")
            self.add(f"[image: {title}]")
        elif kind == "input":
            label = _text(block.get("label"))
            optional = " (optional)" if block.get("optional") else ""
            element = block.get("element") or {}
            initial = element.get("initial_value")
            if initial is None and isinstance(element.get("initial_option"), dict):
                initial = _text(element["initial_option"].get("text"))
            line = f"(input) {label}{optional}"
            if initial:
                line += f": {initial}"
            self.add(line)
            if block.get("hint"):
                self.add(_text(block["hint"]), "  ")
        elif kind == "rich_text":
            for el in block.get("elements") or []:
                self.rich(el)
        elif kind == "markdown":
            self.add(block.get("text") or "")
        elif kind == "video":
            self.add(f"[video: {_text(block.get('title'))}]")
        elif kind == "file":
            self.add(f"[file: {block.get('external_id', '')}]")
        else:
            self.add(f"[unsupported block: {kind}]")

    def element(self, el: dict, block_id: str) -> str:
        kind = el.get("type")
        action_id = el.get("action_id") or ""
        if kind == "button":
            number = len(self.buttons) + self.first_number
            self.buttons.append(
                Button(
                    number=number,
                    text=_text(el.get("text")),
                    action_id=action_id,
                    value=el.get("value") or "",
                    block_id=block_id,
                    style=el.get("style"),
                    url=el.get("url"),
                )
            )
            return f"[{number}] {_text(el.get('text'))}"
        options = list(el.get("options") or [])
        for group in el.get("option_groups") or []:
            options.extend(group.get("options") or [])
        if options:
            label = _text(el.get("placeholder")) or kind or "choose"
            numbered = []
            for option in options:
                number = len(self.buttons) + self.first_number
                text = _text(option.get("text"))
                self.buttons.append(
                    Button(
                        number=number,
                        text=text,
                        action_id=action_id,
                        value=option.get("value") or "",
                        block_id=block_id,
                        kind=kind or "",
                    )
                )
                numbered.append(f"[{number}] {text}")
            return f"{label}: " + "  ".join(numbered)
        if el.get("placeholder"):
            return f"({kind}) {_text(el['placeholder'])}"
        if kind == "image":
            return f"[{el.get('alt_text') or 'image'}]"
        return f"({kind})" if kind else ""

    def rich(self, el: dict, indent: str = "") -> None:
        kind = el.get("type")
        if kind == "rich_text_section":
            self.add(_rich_inline(el.get("elements") or []), indent)
        elif kind == "rich_text_list":
            ordered = el.get("style") == "ordered"
            sub = indent + "  " * int(el.get("indent") or 0)
            for i, item in enumerate(el.get("elements") or [], start=1):
                bullet = f"{i}. " if ordered else "• "
                self.add(bullet + _rich_inline(item.get("elements") or []), sub)
        elif kind == "rich_text_preformatted":
            self.add("```")
            self.add(_rich_inline(el.get("elements") or []), indent)
            self.add("```")
        elif kind == "rich_text_quote":
            self.add(_rich_inline(el.get("elements") or []), indent + "> ")


def _rich_inline(elements: list) -> str:
    out = []
    for el in elements:
        kind = el.get("type")
        if kind == "text":
            text = el.get("text") or ""
            style = el.get("style") or {}
            if style.get("bold"):
                text = f"*{text}*"
            if style.get("code"):
                text = f"`{text}`"
            out.append(text)
        elif kind == "link":
            url = el.get("url") or ""
            out.append(f"{el['text']} ({url})" if el.get("text") else url)
        elif kind == "user":
            out.append("@" + _names.get().get(el.get("user_id") or "", el.get("user_id") or ""))
        elif kind == "channel":
            out.append("#" + (el.get("channel_id") or ""))
        elif kind == "usergroup":
            out.append("@" + (el.get("usergroup_id") or ""))
        elif kind == "broadcast":
            out.append("@" + (el.get("range") or "here"))
        elif kind == "emoji":
            out.append(EMOJI.get(el.get("name", ""), f":{el.get('name', '')}:"))
        elif kind == "date":
            out.append(el.get("fallback") or str(el.get("timestamp", "")))
    return "".join(out)


def render_message(
    message: dict, *, first_number: int = 1, names: dict[str, str] | None = None, colour: bool = False
) -> tuple[str, list[Button]]:
    """A message (as posted or stored) as terminal text, plus its numbered buttons.

    Blocks win over `text` (as in Slack, where `text` is then only the notification fallback).
    Buttons are numbered from ``first_number`` (a chat numbers them across messages). ``names``
    maps user and group ids to display names; ``colour`` renders styles as ANSI.
    """
    names_token, colour_token = _names.set(names or {}), _colour.set(colour)
    try:
        return _render_message(message, first_number)
    finally:
        _names.reset(names_token)
        _colour.reset(colour_token)


def _render_message(message: dict, first_number: int) -> tuple[str, list[Button]]:
    renderer = _Renderer(first_number)
    blocks = message.get("blocks") or []
    if blocks:
        renderer.blocks(blocks)
    elif message.get("text"):
        renderer.add(mrkdwn_to_text(message["text"]))
    for attachment in message.get("attachments") or []:
        if attachment.get("blocks"):
            renderer.blocks(attachment["blocks"])
        elif attachment.get("text") or attachment.get("fallback"):
            renderer.add(mrkdwn_to_text(attachment.get("text") or attachment["fallback"]), "| ")
    return renderer.result()


def render_view(
    view: dict, *, first_number: int = 1, names: dict[str, str] | None = None, colour: bool = False
) -> tuple[str, list[Button]]:
    """A modal or App Home as terminal text; input blocks show as `(input) Label`."""
    names_token, colour_token = _names.set(names or {}), _colour.set(colour)
    try:
        return _render_view(view, first_number)
    finally:
        _names.reset(names_token)
        _colour.reset(colour_token)


def _render_view(view: dict, first_number: int) -> tuple[str, list[Button]]:
    renderer = _Renderer(first_number)
    if view.get("type", "modal") == "modal" and view.get("title"):
        title = _text(view["title"])
        renderer.add(f"[ {title} ]")
        renderer.add("")
    renderer.blocks(view.get("blocks") or [])
    actions = [_text(view[k]) for k in ("close", "submit") if view.get(k)]
    if actions:
        renderer.add("")
        renderer.add("  ".join(f"<{a}>" for a in actions))
    return renderer.result()


# -- modals in a terminal: each input block asked for in turn, answered as Slack would submit it ------

_TEXT_INPUTS = {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
_ONE_CHOICE = {"static_select", "radio_buttons"}
_MANY_CHOICES = {"multi_static_select", "checkboxes"}
_STATE_KEY = {
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
}
REQUIRED = "Please complete this required field."


@dataclass
class InputField:
    """One input block of a modal, as the demo chat asks for it and as Slack would submit it."""

    block_id: str
    action_id: str
    kind: str
    label: str
    optional: bool
    options: list[dict]
    element: dict
    hint: str = ""

    def question(self, names: dict[str, str] | None = None) -> str:
        """The label, the numbered options of a select and what Enter keeps, on one or two lines."""
        line = self.label + (" (optional)" if self.optional else "")
        if self.hint and not (self.optional and self.hint.lower() == "optional"):
            line += f"  ({self.hint})"
        if self.options:
            line += "\n    " + "  ".join(
                f"[{i}] {_text(o.get('text'))}" for i, o in enumerate(self.options, 1)
            )
            if self.kind in _MANY_CHOICES:
                line += "  (numbers separated by commas)"
        elif self.kind == "datepicker":
            line += "  (YYYY-MM-DD)"
        elif self.kind in ("users_select",):
            line += "  (a person's name)"
        initial = self.initial_text(names or {})
        if initial:
            line += f"\n    Enter keeps: {initial}"
        return line

    def initial_text(self, names: dict[str, str]) -> str:
        el = self.element
        if el.get("initial_option"):
            return _text(el["initial_option"].get("text"))
        if el.get("initial_options"):
            return ", ".join(_text(o.get("text")) for o in el["initial_options"])
        if el.get("initial_user"):
            return "@" + names.get(el["initial_user"], el["initial_user"])
        for key in ("initial_value", "initial_date", "initial_time"):
            if el.get(key):
                return str(el[key])
        return ""

    def answer(self, text: str, names: dict[str, str] | None = None) -> dict:
        """The `view.state.values` entry Slack would send for ``text`` typed as the answer.

        Enter keeps the initial value; raises ValueError with what Slack (or the chat) would say
        when the answer cannot be submitted (a required field left empty, not one of the options).
        """
        text = text.strip()
        el = self.element
        state: dict = {"type": self.kind}
        if not text:
            if self.initial_text(names or {}):
                return state | self._initial()
            if not self.optional:
                raise ValueError(REQUIRED)
            return state | self._empty()
        if self.kind in _ONE_CHOICE:
            return state | {"selected_option": self._choose(text)}
        if self.kind in _MANY_CHOICES:
            return state | {"selected_options": [self._choose(part) for part in text.split(",")]}
        if self.kind == "datepicker":
            from datetime import date

            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValueError("Pick a date as YYYY-MM-DD.") from None
            return state | {"selected_date": text}
        if self.kind == "users_select":
            by_name = {name.lower(): uid for uid, name in (names or {}).items()}
            user = by_name.get(text.lstrip("@").lower()) or (text if text.upper() == text else None)
            if user is None:
                raise ValueError(f"No one called {text!r} here.")
            return state | {"selected_user": user}
        if self.kind == "number_input":
            try:
                float(text)
            except ValueError:
                raise ValueError("Enter a number.") from None
        if el.get("max_length") and len(text) > int(el["max_length"]):
            raise ValueError(f"At most {el['max_length']} characters.")
        key = _STATE_KEY.get(self.kind, "value")
        return state | {key: text}

    def _choose(self, text: str) -> dict:
        text = text.strip()
        if text.isdigit() and 1 <= int(text) <= len(self.options):
            return self.options[int(text) - 1]
        for option in self.options:
            if text.lower() in (_text(option.get("text")).lower(), str(option.get("value", "")).lower()):
                return option
        raise ValueError(f"Choose one of 1–{len(self.options)}.")

    def _initial(self) -> dict:
        el = self.element
        if el.get("initial_option"):
            return {"selected_option": el["initial_option"]}
        if el.get("initial_options"):
            return {"selected_options": el["initial_options"]}
        if el.get("initial_user"):
            return {"selected_user": el["initial_user"]}
        for key, state_key in (
            ("initial_date", "selected_date"),
            ("initial_time", "selected_time"),
            ("initial_value", "value"),
        ):
            if el.get(key):
                return {state_key: el[key]}
        return {}

    def _empty(self) -> dict:
        if self.kind in _ONE_CHOICE:
            return {"selected_option": None}
        if self.kind in _MANY_CHOICES:
            return {"selected_options": []}
        return {_STATE_KEY.get(self.kind, "value"): None}


def input_fields(view: dict) -> list[InputField]:
    """The modal's input blocks, in order, as fields the chat can ask for."""
    fields = []
    for block in view.get("blocks") or []:
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        element = block.get("element") or {}
        options = list(element.get("options") or [])
        for group in element.get("option_groups") or []:
            options.extend(group.get("options") or [])
        fields.append(
            InputField(
                block_id=block.get("block_id") or "",
                action_id=element.get("action_id") or "",
                kind=element.get("type") or "",
                label=_text(block.get("label")),
                optional=bool(block.get("optional")),
                options=options,
                element=element,
                hint=_text(block.get("hint")) if block.get("hint") else "",
            )
        )
    return fields
