"""Baseline for the rendered path: a bare scrapy-playwright spider over the same two pages per tag.

`python -m benchmarks.bare_rendered BASE_URL CONCURRENCY TAG...`: for each tag it renders the
Xiaohongshu topic search, waits for the same end-state selector tagarchive waits for, follows
the first topic link and renders the topic page, waiting likewise. Same browser, launch
options, page and context limits, and resource blocking as tagarchive; no response capture,
no context rotation, nothing stored. Timed by the probe extension; prints a JSON summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy_playwright.page import PageMethod

from benchmarks.probe import EXTENSIONS_SETTING
from crawler import settings as tagarchive_settings

SEARCH_DONE = "ul.topic-list, .captcha, .empty"
TOPIC_DONE = ".summary .meta, .error, .captcha"
# taken from crawler.settings so that both crawls drive the browser identically
PLAYWRIGHT_SETTINGS = (
    "PLAYWRIGHT_BROWSER_TYPE",
    "PLAYWRIGHT_LAUNCH_OPTIONS",
    "PLAYWRIGHT_ABORT_REQUEST",
    "PLAYWRIGHT_MAX_CONTEXTS",
    "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT",
    "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT",
)


def _meta(selector: str) -> dict[str, Any]:
    return {
        "playwright": True,
        "playwright_page_goto_kwargs": {"wait_until": "domcontentloaded"},
        "playwright_page_methods": [PageMethod("wait_for_selector", selector)],
    }


class BareRenderedSpider(scrapy.Spider):
    """Search page, then topic page, both rendered; reads the DOM and keeps only counts."""

    name = "bare_rendered"

    def __init__(self, base_url: str, tags: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.tags = tags
        self.topics = 0

    async def start(self) -> AsyncIterator[scrapy.Request]:
        """One search page per tag."""
        for tag in self.tags:
            url = f"{self.base_url}/search_result?keyword={quote(tag, safe='')}&type=topic"
            yield scrapy.Request(url, callback=self.on_search, meta=_meta(SEARCH_DONE),
                                 dont_filter=True)

    def on_search(self, response: Response) -> Iterator[scrapy.Request]:
        """Follow the first topic of the rendered list."""
        href = response.css("ul.topic-list a::attr(href)").get()
        if href:
            yield response.follow(href, callback=self.on_topic, meta=_meta(TOPIC_DONE),
                                  dont_filter=True)

    def on_topic(self, response: Response) -> None:
        """Read the rendered header."""
        if response.css(".summary .meta ::text").get():
            self.topics += 1


def settings(concurrency: int) -> dict[str, Any]:
    """tagarchive's crawl settings for the browser, minus its middlewares and pipelines."""
    return {
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "CONCURRENT_REQUESTS": max(16, concurrency),
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "ROBOTSTXT_OBEY": True,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "DOWNLOAD_HANDLERS": {"http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"},
        **{name: getattr(tagarchive_settings, name) for name in PLAYWRIGHT_SETTINGS},
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "EXTENSIONS": json.loads(EXTENSIONS_SETTING),
    }


def main(argv: list[str]) -> int:
    """Crawl, then print {"topics": n}."""
    replica_url, concurrency, tags = argv[0], int(argv[1]), argv[2:]
    base = f"{replica_url.rstrip('/')}/xiaohongshu"
    process = CrawlerProcess(settings(concurrency))
    crawler = process.create_crawler(BareRenderedSpider)
    process.crawl(crawler, base_url=base, tags=tags)
    process.start()
    print(json.dumps({"topics": crawler.spider.topics}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
