"""RenderMiddleware reuses a finished page for the next render of its context; not a failed one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector

from crawler.middlewares import RenderMiddleware


class FakePage:
    def __init__(self) -> None:
        self.closed = False
        self.visited: list[str] = []
        self.context = SimpleNamespace()

    def is_closed(self) -> bool:
        return self.closed

    async def goto(self, url: str) -> None:
        self.visited.append(url)

    async def close(self) -> None:
        self.closed = True


def _middleware(max_pages: int = 2) -> RenderMiddleware:
    crawler = SimpleNamespace(settings=Settings(), spider=SimpleNamespace(run=None))
    crawler.stats = MemoryStatsCollector(crawler)
    return RenderMiddleware(crawler, pages_per_context=100, max_pages=max_pages)


def _request() -> Request:
    return Request("http://127.0.0.1/x", meta={"tagarchive_render": {"capture": []},
                                                "tagarchive_job": {"platform": "xiaohongshu"}})


async def _download(mw: RenderMiddleware, request: Request, page: FakePage | None,
                    ok: bool = True) -> FakePage:
    """What scrapy-playwright does: use the given page or open one, put it in meta."""
    page = request.meta.get("playwright_page") or page or FakePage()
    request.meta["playwright_page"] = page
    if ok:
        await mw.process_response(request, HtmlResponse(request.url, request=request))
    else:
        await mw.process_exception(request, RuntimeError("navigation failed"))
    return page


def test_a_finished_page_is_blanked_and_reused_and_a_failed_one_closed() -> None:
    async def scenario() -> None:
        mw = _middleware()
        first = _request()
        await mw.process_request(first)
        assert "playwright_page" not in first.meta  # nothing idle yet: scrapy-playwright opens
        page = await _download(mw, first, None)
        assert page.visited == ["about:blank"] and not page.closed
        assert "playwright_page" not in first.meta  # never left in meta (not picklable)

        second = _request()
        await mw.process_request(second)
        assert second.meta["playwright_page"] is page
        await _download(mw, second, None, ok=False)
        assert page.closed  # failed: closed, not parked

        third = _request()
        await mw.process_request(third)
        assert "playwright_page" not in third.meta
        assert mw.crawler.stats.get_value("tagarchive/browser_pages_reused") == 1

    asyncio.run(scenario())


def test_at_the_page_limit_a_request_waits_for_a_parked_page() -> None:
    async def scenario() -> None:
        mw = _middleware(max_pages=1)
        first = _request()
        await mw.process_request(first)
        second = _request()
        waiting = asyncio.ensure_future(mw.process_request(second))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # one page open and busy: do not open another
        page = await _download(mw, first, None)
        await asyncio.wait_for(waiting, 1)
        assert second.meta["playwright_page"] is page

    asyncio.run(scenario())
