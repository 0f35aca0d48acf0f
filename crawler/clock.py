"""The crawl's clock: when a page was observed.

Normally the wall clock. `tagarchive demo` replays January 2025 on the replica's clock and sets
TAGARCHIVE_SIMULATED_NOW (an ISO time) for each crawl it starts: that crawl's observations are
then stamped from that moment on, advancing with the real time elapsed since the process
started, so its rows land on the replayed days. Such runs are marked `trigger = demo`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from functools import cache

SIMULATED_NOW = "TAGARCHIVE_SIMULATED_NOW"


@cache
def _simulated() -> tuple[datetime, float] | None:
    given = os.environ.get(SIMULATED_NOW, "").strip()
    if not given:
        return None
    moment = datetime.fromisoformat(given)
    if moment.tzinfo is None:
        raise ValueError(f"{SIMULATED_NOW} must name its time zone: {given!r}")
    return moment.astimezone(UTC), time.monotonic()


def now() -> datetime:
    """The observation time: the wall clock, or the simulated clock a demo replay set."""
    simulated = _simulated()
    if simulated is None:
        return datetime.now(UTC)
    start, began = simulated
    return start + timedelta(seconds=time.monotonic() - began)
