"""A passive Scrapy extension that times the crawl phase of one process for the benchmarks.

It records `time.perf_counter()` at `spider_opened`, at the first and the last
`response_received` and at `spider_closed`, plus this process's CPU time (all its threads, not
its child processes) over the same span, and writes them with a few stats as JSON to the file
named by $TAGARCHIVE_BENCH_PROBE. Its
`spider_closed` receiver is connected after the spider's own (Scrapy connects `Spider.close`
when the spider is created, extensions later, and runs receivers in connection order), so for
tagarchive the measured phase includes `SnapshotSpider.closed()`: the run record and the final
Parquet write. Interpreter start, imports, settings and engine set-up are excluded.
Enabled in any crawl with `-s 'EXTENSIONS={"benchmarks.probe.CrawlClock": 900}'`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

ENV = "TAGARCHIVE_BENCH_PROBE"
EXTENSIONS_SETTING = json.dumps({"benchmarks.probe.CrawlClock": 900})

_STATS = {
    "requests": "downloader/request_count",
    "responses": "downloader/response_count",
    "items": "item_scraped_count",
    "robots_requests": "robotstxt/request_count",
    "playwright_responses": "playwright/response_count/resource_type/document",
    "rendered_requests": "tagarchive/rendered_requests",
    "log_errors": "log_count/ERROR",
}


class CrawlClock:
    """Writes this crawl's spider_opened -> spider_closed wall time to $TAGARCHIVE_BENCH_PROBE."""

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path
        self.opened_at: float | None = None
        self.opened_cpu: float | None = None
        self.first_response_at: float | None = None
        self.last_response_at: float | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlClock:
        """Enabled only when the benchmark named an output file."""
        path = os.environ.get(ENV)
        if not path:
            raise NotConfigured(f"${ENV} is not set")
        probe = cls(crawler, Path(path))
        crawler.signals.connect(probe.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(probe.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(probe.response_received, signal=signals.response_received)
        return probe

    def spider_opened(self) -> None:
        """Start of the crawl phase."""
        self.opened_at = time.perf_counter()
        self.opened_cpu = time.process_time()

    def response_received(self) -> None:
        """First and last response (the first is robots.txt in every crawl here)."""
        now = time.perf_counter()
        if self.first_response_at is None:
            self.first_response_at = now
        self.last_response_at = now

    def _since_open(self, at: float | None) -> float | None:
        return at - self.opened_at if at is not None and self.opened_at is not None else None

    def spider_closed(self, reason: str) -> None:
        """End of the crawl phase: write the measurement."""
        closed_at = time.perf_counter()
        cpu = time.process_time() - self.opened_cpu if self.opened_cpu is not None else None
        stats = self.crawler.stats
        record: dict[str, Any] = {
            "crawl_s": self._since_open(closed_at),
            "crawl_cpu_s": cpu,
            "first_response_s": self._since_open(self.first_response_at),
            "last_response_s": self._since_open(self.last_response_at),
            "reason": reason,
        }
        for key, stat in _STATS.items():
            record[key] = stats.get_value(stat, 0) if stats is not None else 0
        self.path.write_text(json.dumps(record), encoding="utf-8")
