"""The project's own Scrapy signals, sent through `crawler.signals` like Scrapy's own."""

from __future__ import annotations

from typing import Any

# A run begins in this process: sent with `run` (its RunState) when the spider opens, and again
# for each batch of a worker, which is a new run. Components that write for the run (the
# pipelines, the requested-tags extension) take it from here, never from `crawler.spider`; state
# kept per run starts over (the dedupe pipeline forgets the keys it has seen).
run_started = object()

# A tag reached an outcome (crawler/platforms/base.py Outcome: stored, rejected, blocked, ...):
# sent with platform, key (TagJob.key), outcome and detail. Spiders and pipelines report every
# outcome this way; the run's record is the one receiver (the spider connects it, as the holder
# of the run's RunState), so how a tag ended is kept in one place.
tag_outcome = object()


def send_outcome(signals: Any, platform: str, key: str, outcome: str, detail: str = "") -> None:
    """Report how a tag ended through the crawler's signals (`crawler.signals`)."""
    signals.send_catch_log(tag_outcome, platform=platform, key=key, outcome=outcome,
                           detail=detail)
