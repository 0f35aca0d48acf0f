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

With $TAGARCHIVE_BENCH_MEMORY_AT="500,3000" it also samples the memory of this process and all
its descendants (Playwright driver, Chromium) as rendered pages arrive: every
MEMORY_EVERY-th rendered response in the last MEMORY_WINDOW of the pages before each mark
(e.g. pages 451-500), so a figure is the median of ~5 samples rather than one instant.
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

from crawler.settings import EXTENSIONS as PROJECT_EXTENSIONS

ENV = "TAGARCHIVE_BENCH_PROBE"
MEMORY_ENV = "TAGARCHIVE_BENCH_MEMORY_AT"
MEMORY_EVERY = 10
MEMORY_WINDOW = 0.1
PROBE_EXTENSIONS = {"benchmarks.probe.CrawlClock": 900}
# for tagarchive's own crawls: `-s EXTENSIONS=` replaces the project's dict, so the project's
# extensions are named again beside the probe, or a benchmark would measure a crawl without them
EXTENSIONS_SETTING = json.dumps({**PROJECT_EXTENSIONS, **PROBE_EXTENSIONS})

_STATS = {
    "requests": "downloader/request_count",
    "responses": "downloader/response_count",
    "items": "item_scraped_count",
    "robots_requests": "robotstxt/request_count",
    "playwright_responses": "playwright/response_count/resource_type/document",
    "rendered_requests": "tagarchive/rendered_requests",
    "browser_started": "tagarchive/browser_started",
    "pages_reused": "tagarchive/browser_pages_reused",
    "log_errors": "log_count/ERROR",
}


def _tree_memory() -> dict[str, float]:
    """RSS and PSS (bytes) summed over this process and its descendants, and their count."""
    import psutil

    me = psutil.Process()
    rss = pss = 0
    procs = [me, *me.children(recursive=True)]
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.Error, AttributeError):
            continue
        rss += info.rss
        pss += getattr(info, "pss", 0)
    return {"rss": rss, "pss": pss, "procs": len(procs)}


class CrawlClock:
    """Writes this crawl's spider_opened -> spider_closed wall time to $TAGARCHIVE_BENCH_PROBE."""

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path
        self.opened_at: float | None = None
        self.opened_cpu: float | None = None
        self.first_response_at: float | None = None
        self.last_response_at: float | None = None
        marks = os.environ.get(MEMORY_ENV, "")
        self.memory_marks = sorted(int(m) for m in marks.split(",") if m.strip())
        self.rendered = 0
        self.memory: dict[int, list[dict[str, float]]] = {m: [] for m in self.memory_marks}

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

    def response_received(self, response: Any) -> None:
        """First and last response (the first is robots.txt in every crawl here)."""
        now = time.perf_counter()
        if self.first_response_at is None:
            self.first_response_at = now
        self.last_response_at = now
        if self.memory_marks and "playwright" in (response.flags or ()):
            self.rendered += 1
            for mark in self.memory_marks:
                low = mark - max(MEMORY_EVERY, int(mark * MEMORY_WINDOW))
                if low < self.rendered <= mark and (mark - self.rendered) % MEMORY_EVERY == 0:
                    self.memory[mark].append(_tree_memory())

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
        if self.memory_marks:
            record["rendered_seen"] = self.rendered
            record["memory_at"] = {str(m): s for m, s in self.memory.items()}
        self.path.write_text(json.dumps(record), encoding="utf-8")
