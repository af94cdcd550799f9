"""``iamwarden digest``: post the digest now, or print it (``--dry-run`` as text, ``--json`` as Block Kit)."""

from __future__ import annotations

import argparse
import json
import sys

from slack_sdk.errors import SlackApiError

from bot import digest as digests
from bot.commands import EXIT_OK, EXIT_USAGE, command
from bot.services import Services
from bot.settings import load_settings
from handlers.client import build_client
from handlers.digest.delivery import build, digest_channel, post_digest
from handlers.digest.views import csv_filename, headline_message, thread_messages


def _digest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be posted instead of posting"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the Block Kit messages as JSON (implies --dry-run)"
    )
    parser.add_argument("--channel", help="post to this channel instead of [slack] digest_channel")


@command("digest", "Post the digest now (or print it with --dry-run / --json).", _digest_arguments)
def cmd_digest(args: argparse.Namespace) -> int:
    dry_run = args.dry_run or args.json
    settings = load_settings(require=() if dry_run else ("slack_bot_token",))
    services = Services.from_settings(settings)
    channel = args.channel or digest_channel(services)
    if dry_run:
        digest = build(services, channel or "(no channel configured)")
        if args.json:
            messages = [headline_message(digest).checked(), *(m.checked() for m in thread_messages(digest))]
            document = {
                "channel": channel,
                "headline": {"text": messages[0].text, "blocks": messages[0].blocks},
                "thread": [{"text": m.text, "blocks": m.blocks} for m in messages[1:]],
                "csv_filename": csv_filename(digest),
                "summary": digest.summary(),
            }
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            sys.stdout.write(digests.text_report(digest))
        return EXIT_OK
    if not channel:
        print(
            "iamwarden: slack.digest_channel: is required to post a digest (or use --channel)",
            file=sys.stderr,
        )
        return EXIT_USAGE

    try:
        posted = post_digest(services, build_client(services), channel=channel)
    except SlackApiError as exc:
        print(f"iamwarden: Slack refused the digest: {exc.response.get('error')}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"Posted the digest to {posted.channel} (ts {posted.ts}) with {posted.replies} thread replies and the CSV file."
    )
    return EXIT_OK
