"""Validate: reject an item with its reasons into `rejects`, never store a doubtful number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.items import PageItems
from crawler.platforms.base import Outcome
from crawler.rules.validate import item_kind, item_problems, reject_row
from crawler.signals import item_rejected, send_checked, send_outcome
from pipelines import RunPipeline


class ValidatePipeline(RunPipeline):
    """Second pipeline: drops invalid items and records them with reasons in `rejects`."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.max_count = crawler.settings.getint("TAGARCHIVE_MAX_COUNT", 10**15)
        self.skew = timedelta(seconds=crawler.settings.getint("TAGARCHIVE_CLOCK_SKEW", 300))

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            now = datetime.now(UTC)  # one page's items are judged at one instant
            return self.each(item, lambda one: self._check(one, now))
        return self._check(item, datetime.now(UTC))

    def _check(self, item: Any, now: datetime) -> Any:
        kind = item_kind(item)
        if kind is None:
            return item
        reasons = item_problems(item, now, self.max_count, self.skew)
        if not reasons:
            return item
        # the store pipeline writes it (it owns the run's writer); a failure is raised here
        send_checked(self.crawler.signals, item_rejected,
                     row=reject_row(item, kind, reasons, now, self.run_id))
        self.stats.inc_value("tagarchive/rejected")
        self.stats.inc_value(f"tagarchive/rejected/{kind}")
        if kind == "snapshot" and item.platform:
            send_outcome(self.crawler.signals, item.platform, item.job_key or item.tag or "",
                         Outcome.REJECTED, "; ".join(reasons))
        raise DropItem(f"rejected {kind}: {'; '.join(reasons)}")
