"""Dedupe within a run, by the key of crawler/rules/dedupe.py."""

from __future__ import annotations

from typing import Any

from scrapy.exceptions import DropItem

from crawler.items import PageItems, SnapshotItem
from crawler.platforms.base import Outcome
from crawler.rules.dedupe import dedupe_key
from crawler.signals import send_outcome
from pipelines import RunPipeline, validated


class DedupePipeline(RunPipeline):
    """Third pipeline: drops repeats within a run (compaction handles repeats across runs)."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.seen: set[tuple[str | None, ...]] = set()

    def start_run(self, run: Any) -> None:
        """A new run (a worker's next batch) dedupes on its own: every key seen is let go."""
        super().start_run(run)
        self.seen.clear()

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            return self.each(item, self.process_item)
        key = dedupe_key(item)
        if key is None:
            return item
        if key in self.seen:
            self.stats.inc_value(f"tagarchive/duplicates/{key[0]}")
            if isinstance(item, SnapshotItem) and item.job_key:
                # the same topic asked for twice (by name and by id): its data is stored once,
                # and the second request is answered by that
                send_outcome(self.crawler.signals, validated(item.platform, "platform"),
                             item.job_key, Outcome.STORED,
                             "same topic as another requested tag")
            raise DropItem(f"duplicate {key[0]} {key[1:]}")
        self.seen.add(key)
        return item
