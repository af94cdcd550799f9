"""The Slack app manifest asks for exactly the scopes the code needs: every Web API method the bot
calls (read from the source) has its scopes in manifest.yml, and no scope is there without a
method or surface that needs it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from slack_sdk import WebClient

ROOT = Path(__file__).resolve().parents[1]

# The bot token scopes each Web API method needs (api.slack.com/methods/<method>). For
# conversations.info Slack accepts the scope of the channel's type: the bot's configured channels
# may be public or private, so both are needed.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_update": {"chat:write"},
    "conversations_info": {"channels:read", "groups:read"},
    "conversations_open": {"im:write"},
    "files_upload_v2": {"files:write"},
    "usergroups_list": {"usergroups:read"},
    "usergroups_users_list": {"usergroups:read"},
    # users.list and users.info: users:read; members' email (identity matching) needs users:read.email.
    "users_list": {"users:read", "users:read.email"},
    "users_info": {"users:read", "users:read.email"},
    "views_open": set(),
    "views_publish": set(),
}
# Scopes a surface needs rather than a method: the slash command.
SURFACE_SCOPES = {"commands"}


def called_web_api_methods() -> dict[str, set[str]]:
    """WebClient methods called anywhere in the product (bot/, handlers/; not the demo's sandbox)."""
    names = {n for n in dir(WebClient) if not n.startswith("_") and callable(getattr(WebClient, n))}
    names -= {"api_call"}  # the generic entry point (wrapped, never called with a literal here)
    found: dict[str, set[str]] = {}
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        relative = path.relative_to(ROOT)
        if "sandbox" in relative.parts or relative.name == "demo.py":
            continue
        for match in re.finditer(r"\.([A-Za-z][A-Za-z0-9_]*)\(", path.read_text()):
            if match.group(1) in names and "_" in match.group(1):
                found.setdefault(match.group(1), set()).add(str(relative))
    return found


def manifest_scopes() -> set[str]:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return set(manifest["oauth_config"]["scopes"]["bot"])


def test_every_called_web_api_method_has_its_scopes_in_the_manifest():
    called = called_web_api_methods()
    assert {"chat_postMessage", "conversations_info", "views_open"} <= called.keys()  # the scan works
    unknown = {m: sorted(where) for m, where in called.items() if m not in METHOD_SCOPES}
    assert not unknown, f"add these methods' scopes to METHOD_SCOPES (and manifest.yml): {unknown}"
    missing = {
        m: sorted(METHOD_SCOPES[m] - manifest_scopes())
        for m in called
        if METHOD_SCOPES[m] - manifest_scopes()
    }
    assert not missing, f"manifest.yml lacks scopes these calls need: {missing}"


def test_the_manifest_asks_for_no_scope_nothing_uses():
    needed = SURFACE_SCOPES.union(*(METHOD_SCOPES[m] for m in called_web_api_methods()))
    assert manifest_scopes() - needed == set()
    assert "chat:write.public" not in manifest_scopes()


def test_readme_lists_every_manifest_scope():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Create the Slack app", 1)[1].split("\n## ", 1)[0]
    for scope in manifest_scopes():
        assert f"`{scope}`" in section, scope
