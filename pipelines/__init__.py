"""Item pipelines, one concern each: normalize -> validate -> dedupe -> store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.items import PageItems

logger = logging.getLogger(__name__)


class RunPipeline:
    """Base: gives a pipeline the crawl's `RunState` (held by the spider)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(crawler)

    @property
    def run(self) -> Any:
        return self.crawler.spider.run

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
