"""The demo tour's scan step: ``iamwarden scan`` of the demo account, as the terminal shows it."""

from __future__ import annotations

import io
from typing import Any

from bot.scan import scan_accounts
from bot.scan.report import summary_line, write_table


def demo_tour(session: Any) -> None:
    """The demo (``sandbox.demo.TOUR``): ``iamwarden scan`` of the demo account, as the terminal shows it."""
    session.say("\n── The hygiene scan: `iamwarden scan` reads the demo account in a few bulk calls ──")
    [scan] = scan_accounts(session.services)
    if scan.error:
        session.say(f"  {summary_line(scan)}")
        return
    out = io.StringIO()
    write_table([scan], out)
    lines = out.getvalue().splitlines()
    shown = [line for line in lines if line.strip()]
    for line in shown[:-1][:14]:
        session.say("  " + line)
    if len(shown) - 1 > 14:
        session.say(f"  … {len(shown) - 15} more (iamwarden scan --format json|csv has them all)")
    session.say("  " + shown[-1])
    session.say(
        f"  Stored as snapshot {scan.snapshot_id}: answers, digests and alerts read it, never AWS live."
    )
