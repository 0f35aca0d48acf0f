"""The project's own Scrapy signals, sent through `crawler.signals` like Scrapy's own.

They are how the components that each own one piece of a run reach one another, none of them
through the spider: the store pipeline owns the dataset writer, the archive extension the WARC
writer, the run record extension how the run went (crawler/extensions/).
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

# --- a run's life ---------------------------------------------------------------------------

# A run begins in this process: sent with `run` (its RunState: the run id, the output root, the
# jobs) as the spider opens, and again for each batch of a worker, which is a new run. Each
# component starts its own state for the run from it: the store pipeline opens a DatasetWriter,
# the archive an ArchiveWriter, the run record its ledger; the dedupe pipeline forgets the keys
# it has seen, the middlewares sign in with the run's sessions.
run_started = object()

# A worker's batch is over (sent with `reason`), what close_spider is to a crawl: the store
# pipeline and the archive write and close what they hold for the run.
run_ending = object()

# Then (sent with `reason`), what spider_closed is to a crawl: the run record checks the run's
# health and writes its `runs` row.
run_ended = object()

# --- what the run record keeps ----------------------------------------------------------------

# A tag reached an outcome (crawler/platforms/base.py Outcome: stored, rejected, blocked, ...):
# sent with platform, key (TagJob.key), outcome and detail. Spiders and pipelines report every
# outcome this way; the run record is the one receiver, so how a tag ended is kept in one place.
tag_outcome = object()

# Rows or archive files could not be stored (sent with `error`, one line): the run record keeps
# the first such error, which makes the run's verdict `error` and its exit code 3.
storage_failed = object()

# The privacy pipeline's mode and key id for the run (sent with `mode`, `key_id`: never the key):
# the run record stores them in `runs.privacy` and `runs.privacy_key`.
privacy_in_force = object()

# --- asked of the writers' owners (send_checked: a receiver that cannot, raises) ---------------

# An item failed validation: the store pipeline writes its `rejects` row (sent with `row`).
item_rejected = object()

# Write every buffered row now (the store pipeline): a backfill commit vouches only for rows on
# disk, and the health checks compare the run's own rows with the history.
flush_rows = object()

# Rows about to be written may point into open WARC files: the archive publishes them first
# (sent by the store pipeline before each flush).
publish_archive = object()


def send_outcome(signals: Any, platform: str, key: str, outcome: str, detail: str = "") -> None:
    """Report how a tag ended through the crawler's signals (`crawler.signals`)."""
    signals.send_catch_log(tag_outcome, platform=platform, key=key, outcome=outcome,
                           detail=detail)


def send_checked(signals: Any, signal: object, **kwargs: Any) -> None:
    """Send `signal` to receivers that answer by raising: the first exception one raised is
    raised again here, as a direct call would (`send_catch_log` only logs it). A StorageError
    is not logged on the way: the sender reports it."""
    from storage.errors import StorageError

    for _receiver, result in signals.send_catch_log(signal, dont_log=StorageError, **kwargs):
        if isinstance(result, Failure):
            result.raiseException()
