"""Baseline for the HTTP path: a bare Scrapy spider that fetches and parses, and stores nothing.

`python -m benchmarks.bare_http URLS_FILE CONCURRENCY`: fetches every URL (one a line) with the
same politeness settings a tagarchive crawl with `--delay 0 --concurrency N` uses, extracts the
`__UNIVERSAL_DATA_FOR_REHYDRATION__` script with parsel and decodes it with json.loads. Timed by
the same probe extension as the tagarchive crawl; prints a one-line JSON summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

from benchmarks.probe import PROBE_EXTENSIONS

SCRIPT_CSS = "script#__UNIVERSAL_DATA_FOR_REHYDRATION__::text"
SCOPE = "webapp.challenge-detail"


class BareTagSpider(scrapy.Spider):
    """Fetches tag pages and decodes their embedded JSON; keeps only counts."""

    name = "bare_http"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.parsed = 0
        self.posts = 0

    async def start(self) -> AsyncIterator[scrapy.Request]:
        """Every URL once (the same request count as the tagarchive crawl)."""
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: Response) -> None:
        """The same extraction tagarchive does first: script text, then json.loads."""
        raw = response.css(SCRIPT_CSS).get()
        if raw is None:
            return
        detail = json.loads(raw).get("__DEFAULT_SCOPE__", {}).get(SCOPE) or {}
        self.parsed += 1
        self.posts += len(detail.get("itemList") or [])


def settings(concurrency: int) -> dict[str, Any]:
    """What `tagarchive crawl --delay 0 --concurrency N` sets, minus everything tagarchive adds."""
    return {
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "CONCURRENT_REQUESTS": max(16, concurrency),
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "ROBOTSTXT_OBEY": True,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "EXTENSIONS": PROBE_EXTENSIONS,
    }


def main(argv: list[str]) -> int:
    """Crawl, then print {"parsed": n, "posts": n}."""
    urls = Path(argv[0]).read_text(encoding="utf-8").split()
    process = CrawlerProcess(settings(int(argv[1])))
    crawler = process.create_crawler(BareTagSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    spider = crawler.spider
    print(json.dumps({"parsed": spider.parsed, "posts": spider.posts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
