"""Scrolling a rendered feed so that it loads its next pages, before captures are collected.

TikTok's tag page and Xiaohongshu's topic page fetch the next page of their feed (signed by the
page's own script: `item_list?cursor=`, the notes feed `cursor=`) only when the reader scrolls
near the bottom. A backfill asks for that with `tagarchive_scroll` meta `{"rounds": N, "ready":
css, "end": css, "quiet_ms": ms}`: wait for the feed (`ready`), then scroll to the bottom until
the page stops growing, the feed says it ended (`end`), or N rounds passed. Every page the feed
fetched meanwhile is captured like any other (crawler/downloader/chromium.py), so the adapter
reads the signed JSON without ever computing a signature.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy_playwright.page import PageMethod

_HEIGHT = "() => document.body ? document.body.scrollHeight : 0"
# a real wheel scroll fires `scroll` only when the position changes; the event is sent as well
# so that a feed shorter than the window still hears it
_SCROLL = ("() => { window.scrollTo(0, document.body.scrollHeight);"
           " window.dispatchEvent(new Event('scroll')); return document.body.scrollHeight; }")
_POLL_S = 0.05


async def scroll_feed(page: Any, spec: dict[str, Any]) -> int:
    """Scroll until the feed stops growing; returns the rounds that made it grow."""
    loop = asyncio.get_running_loop()
    quiet = spec.get("quiet_ms", 1500) / 1000
    ready = spec.get("ready")
    if ready:
        try:
            await page.wait_for_selector(ready, timeout=spec.get("ready_ms", 15_000))
        except Exception:  # an error page or a captcha: the adapter names it from the DOM
            return 0
    end = spec.get("end")
    grown = 0
    for _ in range(int(spec.get("rounds", 20))):
        if end and await page.query_selector(end):
            break
        before = await page.evaluate(_SCROLL)
        deadline = loop.time() + quiet
        while loop.time() < deadline:
            await asyncio.sleep(_POLL_S)
            if await page.evaluate(_HEIGHT) > before or (end and await page.query_selector(end)):
                break
        if await page.evaluate(_HEIGHT) <= before:
            break  # nothing more came: the feed ended, or it stopped answering
        grown += 1
    return grown


class FeedScrollMiddleware:
    """Put a scroll before the capture collection of requests that ask for one."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FeedScrollMiddleware:
        if not crawler.settings.getbool("TAGARCHIVE_BROWSER_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_BROWSER_ENABLED is off")
        return cls()

    def process_request(self, request: Request) -> None:
        spec = request.meta.get("tagarchive_scroll")
        methods = request.meta.get("playwright_page_methods")
        if not spec or not methods:
            return None
        # RenderMiddleware (before us) made the collection the last page method, and reads its
        # result as the captures: the scroll goes in front of it
        request.meta["playwright_page_methods"] = [PageMethod(scroll_feed, spec), *methods]
        return None
