"""Baseline for the rendered path: the naive scrapy-playwright setup, over the same two pages.

`python -m benchmarks.naive_rendered BASE_URL CONCURRENCY TAG...`: scrapy-playwright as its
README sets it up, with nothing tuned. That is, as the benchmark issue describes it:

- a new page per request (scrapy-playwright's default; the page is closed after its response);
- no asset blocking (no PLAYWRIGHT_ABORT_REQUEST): the page fetches whatever it references;
- one long-lived browser context (the default one, never rotated or closed until the end);
- navigation waits for the `load` event (Playwright's default), then for the same end-state
  selector tagarchive waits for.

Same Chromium and base launch options as tagarchive (`launch_options(executable)`: the
executable and headless are needed to run at all; the crawl's image switch, IMAGES_OFF, is asset
blocking and so left out), same concurrency (CONCURRENT_REQUESTS_PER_DOMAIN), robots.txt
obeyed, no delay. For each tag it renders the Xiaohongshu topic search, follows the first topic
link and renders the topic page. It reads the rendered DOM and stores nothing. Timed by the
probe extension; prints a JSON summary.
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

from benchmarks.bare_http import settings as bare_settings
from crawler.downloader.chromium import find_chromium, launch_options

SEARCH_DONE = "ul.topic-list, .captcha, .empty"
TOPIC_DONE = ".summary .meta, .error, .captcha"


def _meta(selector: str) -> dict[str, Any]:
    return {"playwright": True,
            "playwright_page_methods": [PageMethod("wait_for_selector", selector)]}


class NaiveRenderedSpider(scrapy.Spider):
    """Search page, then topic page, both rendered; reads the DOM and keeps only counts."""

    name = "naive_rendered"

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
    """The bare HTTP baseline's plain Scrapy settings plus scrapy-playwright's documented
    minimum, at tagarchive's concurrency and browser binary."""
    return {
        **bare_settings(concurrency),
        "DOWNLOAD_HANDLERS": {"http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": launch_options(find_chromium()),
    }


def main(argv: list[str]) -> int:
    """Crawl, then print {"topics": n}."""
    replica_url, concurrency, tags = argv[0], int(argv[1]), argv[2:]
    base = f"{replica_url.rstrip('/')}/xiaohongshu"
    process = CrawlerProcess(settings(concurrency))
    crawler = process.create_crawler(NaiveRenderedSpider)
    process.crawl(crawler, base_url=base, tags=tags)
    process.start()
    print(json.dumps({"topics": crawler.spider.topics}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
