"""Normalize: canonical tag, counters parsed from display text, exact values kept exact.

Each post's language and hashtags are not found here: the store pipeline finds them in a second
process, off the crawl's thread, before its rows are written (pipelines/store.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from crawler.items import PageItems
from crawler.rules.normalize import TagMemo, normalize_item
from pipelines import RunPipeline


class NormalizePipeline(RunPipeline):
    """First pipeline: puts every item into its canonical form (crawler/rules/normalize.py)."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.tags = TagMemo()
        # the rule as one C-level callable for each item of a page
        self._rule = partial(normalize_item, tag_rule=self.tags, texts=False)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            return self.each(item, self._rule)
        return self._rule(item)
