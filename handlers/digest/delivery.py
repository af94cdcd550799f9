"""Posting the digest: one headline message, details in its thread, the full list as CSV; and the
owners' nudges after it (opt-in ``[nudges]``: one DM per finding per ``every_days``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import digest as digests
from bot.digest import Digest
from bot.identity import identity_from_store
from bot.services import Services
from bot.settings import SettingsError
from handlers.blocks import escape, section
from handlers.digest.views import csv_filename, headline_message, nudge_message, thread_messages

log = logging.getLogger(__name__)


@dataclass
class PostedDigest:
    channel: str
    ts: str
    digest: Digest
    replies: int
    file_id: str | None
    nudges: int = 0


def digest_channel(services: Services) -> str | None:
    slack = services.config.slack
    return slack.digest_channel or slack.security_channel


def owners_for(services: Services) -> Any:
    """The identity map (owner of each principal, deactivated members), or None when unavailable."""
    try:
        return identity_from_store(services.config, services.store)
    except Exception:
        log.exception("could not build the identity map; owners will be missing from the digest")
        return None


def build(services: Services, channel: str) -> Digest:
    return digests.build_digest(
        services.store, channel=channel, now=services.clock.now(), owners=owners_for(services)
    )


def post_digest(
    services: Services, client: WebClient, *, channel: str | None = None, slot: str | None = None
) -> PostedDigest:
    """Post a digest now: the headline, one thread reply per category, the CSV in the thread.

    The digest is recorded as soon as the headline is posted (the next digest diffs against it), so
    a failure later in the thread never leads to a second headline.
    """
    channel = channel or digest_channel(services)
    if not channel:
        raise SettingsError("slack.digest_channel (or slack.security_channel) is required to post a digest")
    digest = build(services, channel)
    headline = headline_message(digest).checked()
    response = client.chat_postMessage(channel=channel, text=headline.text, blocks=headline.blocks)
    ts = response["ts"]
    channel_id = response.get("channel") or channel
    digests.record_digest(services.store, digest, ts=ts, slot=slot, now=services.clock.now())
    services.store.audit(
        "digest.post",
        actor="iamwarden",
        at=services.clock.now(),
        channel=channel_id,
        ts=ts,
        slot=slot,
        **digest.summary(),
    )
    # Once the headline is out, a failing reply must not stop the others (nor repost the headline).
    replies = 0
    failed: list[str] = []
    for reply in thread_messages(digest):
        checked = reply.checked()
        try:
            client.chat_postMessage(
                channel=channel_id, thread_ts=ts, text=checked.text, blocks=checked.blocks
            )
            replies += 1
        except SlackApiError as exc:
            log.warning("digest reply %r failed: %s", checked.text[:60], exc.response.get("error"))
            failed.append(checked.text.split(":")[0])
    file_id = None
    try:
        upload = client.files_upload_v2(
            channel=channel_id,
            thread_ts=ts,
            content=digest.csv(),
            filename=csv_filename(digest),
            title=f"All findings, {digest.at.date().isoformat()}",
            initial_comment="The complete list: every finding in every account, with its state.",
        )
        file_id = (upload.get("file") or {}).get("id")
    except SlackApiError as exc:
        log.warning("digest CSV upload failed: %s", exc.response.get("error"))
        failed.append("the CSV file")
    if failed:
        note = f"Slack refused part of this digest ({', '.join(failed)}); the error is logged."
        try:
            client.chat_postMessage(
                channel=channel_id, thread_ts=ts, text=note, blocks=[section(escape(note))]
            )
        except SlackApiError:
            log.warning("could not even say that the digest is incomplete")
    posted = PostedDigest(channel_id, ts, digest, replies, file_id)
    if services.config.nudges.enabled:
        posted.nudges = send_nudges(services, client, digest)
    return posted


def send_nudges(services: Services, client: WebClient, digest: Digest) -> int:
    """DM each owner about their open findings not mentioned to them in ``nudges.every_days``.

    Returns the number of DMs sent. Deactivated owners are skipped (their findings are offboarding
    work for the security team, not a DM nobody reads).
    """
    config = services.config.nudges
    every = timedelta(days=config.every_days)
    now = services.clock.now()
    owners = owners_for(services)
    sent = 0
    for owner, findings in digests.due_nudges(services.store, digest, now=now, every=every).items():
        if owners is not None and owners.is_deactivated(owner):
            continue
        message, shown = nudge_message(findings, config.every_days)
        claimed = [f for f in shown if digests.claim_nudge(services.store, f, owner, now=now, every=every)]
        if not claimed:
            continue
        if len(claimed) != len(shown):
            message, shown = nudge_message(claimed, config.every_days)
        try:
            client.chat_postMessage(channel=owner, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            log.warning("could not DM %s (%s); will try again next time", owner, exc.response.get("error"))
            for f in claimed:
                digests.release_nudge(services.store, f, owner, sent_at=now)
            continue
        services.store.audit(
            "digest.nudge",
            actor="iamwarden",
            at=now,
            owner=owner,
            fingerprints=[f.fingerprint for f in shown],
        )
        sent += 1
    return sent
