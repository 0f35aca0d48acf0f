"""Dedupe: one snapshot per (platform, tag) and one post per (platform, tag, post) per run."""

from __future__ import annotations

from typing import Any

from scrapy.exceptions import DropItem

from crawler.items import PostItem, SnapshotItem
from pipelines import RunPipeline


class DedupePipeline(RunPipeline):
    """Third pipeline: drops repeats within a run (compaction handles repeats across runs)."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.seen: set[tuple[str, ...]] = set()

    def process_item(self, item: Any) -> Any:
        if isinstance(item, SnapshotItem):
            key: tuple[str, ...] = ("snapshot", item.platform, item.tag)
        elif isinstance(item, PostItem):
            key = ("post", item.platform, item.tag, item.post_id)
        else:
            return item
        if key in self.seen:
            self.stats.inc_value(f"tagarchive/duplicates/{key[0]}")
            raise DropItem(f"duplicate {key[0]} {key[1:]}")
        self.seen.add(key)
        return item
