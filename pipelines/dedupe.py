"""Dedupe within a run: one snapshot per (platform, tag), post per (platform, tag, post), and
activity row per (platform, tag, day)."""

from __future__ import annotations

from typing import Any

from scrapy.exceptions import DropItem

from crawler.items import ActivityItem, PageItems, PostItem, SnapshotItem
from crawler.platforms.base import Outcome
from pipelines import RunPipeline


class DedupePipeline(RunPipeline):
    """Third pipeline: drops repeats within a run (compaction handles repeats across runs)."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.seen: set[tuple[str, ...]] = set()

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            return self.each(item, self.process_item)
        if isinstance(item, SnapshotItem):
            key: tuple[str, ...] = ("snapshot", item.platform, item.tag)
        elif isinstance(item, PostItem):
            key = ("post", item.platform, item.tag, item.post_id)
        elif isinstance(item, ActivityItem):
            key = ("activity", item.platform, item.tag, str(item.day))
        else:
            return item
        if key in self.seen:
            self.stats.inc_value(f"tagarchive/duplicates/{key[0]}")
            if isinstance(item, SnapshotItem) and item.job_key:
                # the same topic asked for twice (by name and by id): its data is stored once,
                # and the second request is answered by that
                self.run.set_outcome(item.platform, item.job_key, Outcome.STORED,
                                     "same topic as another requested tag")
            raise DropItem(f"duplicate {key[0]} {key[1:]}")
        self.seen.add(key)
        return item
