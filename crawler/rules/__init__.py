"""The item rules as plain functions: normalize, problems, dedupe key, storage row.

The pipelines (pipelines/) wrap them for a crawl; `reparse` (services/reparse.py) calls them
directly. Nothing here knows Scrapy's pipeline machinery or a run's state.
"""

from __future__ import annotations

from crawler.rules.dedupe import dedupe_key
from crawler.rules.normalize import TagMemo, normalize_counter, normalize_counters, normalize_item
from crawler.rules.rows import DATASET_OF, Rows
from crawler.rules.validate import item_kind, item_problems, raw_json, reject_row

__all__ = ["DATASET_OF", "Rows", "TagMemo", "dedupe_key", "item_kind", "item_problems",
           "normalize_counter", "normalize_counters", "normalize_item", "raw_json", "reject_row"]
