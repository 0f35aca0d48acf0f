"""Item pipelines, one concern each: normalize -> validate -> dedupe -> store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.items import PageItems
from crawler.signals import run_started

logger = logging.getLogger(__name__)


def validated(value: str | None, what: str) -> str:
    """An identity field (platform, tag) of an item past ValidatePipeline, hence set.

    ValidatePipeline runs before dedupe and store and drops every item missing one; an item
    that skipped it is a wiring error, said here rather than reported under a None key.
    """
    if value is None:
        raise RuntimeError(f"an item without {what} got past ValidatePipeline")
    return value


class RunPipeline:
    """Base: a pipeline of the current run, as the `run_started` signal announces it (a
    worker's next batch is a new run)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self._run: Any = None
        crawler.signals.connect(self.start_run, signal=run_started)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(crawler)

    def start_run(self, run: Any) -> None:
        """The receiver of `run_started`: from now on, work for this run."""
        self._run = run

    @property
    def run_id(self) -> str:
        """The current run's id, which its rows carry."""
        if self._run is None:
            raise RuntimeError("no run started: the spider sends run_started when it opens")
        run_id: str = self._run.run_id
        return run_id

    def each(self, batch: PageItems, process: Callable[[Any], Any]) -> PageItems:
        """Apply a single-item rule to every item of a page; keep those it does not drop.

        A drop is counted and logged as Scrapy does for a single item (item_dropped_count,
        item_dropped_reasons_count/DropItem, a WARNING naming the reason).
        """
        kept = []
        for item in batch.items:
            try:
                kept.append(process(item))
            except DropItem as exc:
                self.stats.inc_value("item_dropped_count")
                self.stats.inc_value(f"item_dropped_reasons_count/{type(exc).__name__}")
                logger.warning("Dropped: %s", exc)
        batch.items = kept
        return batch
