"""RenderMiddleware reuses a finished page for the next render of its context; not a failed one.

The last tests drive a real Chromium against a local site: a reused page's old document must
never feed the next request's capture."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector

from crawler.downloader.chromium import (
    collect_captures,
    find_chromium,
    install_capture,
    launch_options,
    stirred,
)
from crawler.downloader.middlewares import RenderMiddleware


class FakePage:
    def __init__(self) -> None:
        self.closed = False
        self.visited: list[str] = []
        self.evaluated: list[str] = []
        self.context = SimpleNamespace()

    def is_closed(self) -> bool:
        return self.closed

    async def goto(self, url: str) -> None:
        self.visited.append(url)

    async def evaluate(self, script: str) -> None:
        self.evaluated.append(script)

    async def close(self) -> None:
        self.closed = True


def _middleware(max_pages: int = 2) -> RenderMiddleware:
    crawler = SimpleNamespace(settings=Settings(), spider=SimpleNamespace(run=None))
    crawler.stats = MemoryStatsCollector(crawler)
    return RenderMiddleware(crawler, pages_per_context=100, max_pages=max_pages)


def _request(capture: list[str] | None = None) -> Request:
    return Request("http://127.0.0.1/x", meta={"tagarchive_render": {"capture": capture or []},
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


def test_a_finished_page_is_stopped_and_reused_and_a_failed_one_closed() -> None:
    async def scenario() -> None:
        mw = _middleware()
        first = _request()
        await mw.process_request(first)
        assert "playwright_page" not in first.meta  # nothing idle yet: scrapy-playwright opens
        page = await _download(mw, first, None)
        # stopped in place, not navigated away: a navigation per render is what this saves
        assert page.evaluated == ["window.stop()"]
        assert page.visited == []
        assert not page.closed
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
        await asyncio.wait_for(waiting, 30)  # a hang guard: it is woken at once
        assert second.meta["playwright_page"] is page

    asyncio.run(scenario())


def test_a_parked_page_that_fetched_again_is_blanked_before_reuse() -> None:
    async def scenario() -> None:
        mw = _middleware()
        first = _request()
        await mw.process_request(first)
        page = await _download(mw, first, None)
        page._tagarchive_stirred = True  # what install_capture's listener sets while parked
        second = _request()
        await mw.process_request(second)
        assert second.meta["playwright_page"] is page
        assert page.visited == ["about:blank"]
        assert not page._tagarchive_stirred
        assert mw.crawler.stats.get_value("tagarchive/browser_pages_blanked") == 1

    asyncio.run(scenario())


def test_a_parked_page_that_cannot_be_blanked_is_closed_and_replaced() -> None:
    class Broken(FakePage):
        async def goto(self, url: str) -> None:
            raise RuntimeError("Target crashed")

    async def scenario() -> None:
        mw = _middleware(max_pages=1)
        first = _request()
        await mw.process_request(first)
        page = await _download(mw, first, Broken())
        page._tagarchive_stirred = True
        second = _request()
        await asyncio.wait_for(mw.process_request(second), 30)  # its slot is free again
        assert page.closed
        assert "playwright_page" not in second.meta
        assert mw.open["tagarchive-0"] == 1

    asyncio.run(scenario())


# --- real Chromium: what a parked page's old document fetches never reaches the next capture --

_DOC = """<html><body><p id=done>%s</p><script>%s</script></body></html>"""
_SCRIPTS = {
    # answered at once, and one answer the server holds for 2 s: in flight when parked
    "/busy": "fetch('/api/busy-fast'); fetch('/api/held');",
    "/next": "fetch('/api/next');",
    # fetches again whenever the test calls tick(): once it is parked
    "/ticking": "window.tick = () => fetch('/api/tick');",
}


class _Site(http.server.BaseHTTPRequestHandler):
    answered: list[str] = []  # the paths answered (or tried: the browser may be gone), in order

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        try:
            self._answer(path)
        finally:
            self.answered.append(path)

    def _answer(self, path: str) -> None:
        if path == "/api/held":
            time.sleep(2.0)
        if path.startswith("/api/"):
            body, kind = json.dumps({"path": path}).encode(), "application/json"
        else:
            body, kind = (_DOC % (path, _SCRIPTS.get(path, ""))).encode(), "text/html"
        try:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the browser aborted it


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def _until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Let the page's events come in until `condition` holds (timeout: a hang guard)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} within {timeout}s"
        await asyncio.sleep(0.02)


async def _render(page: object, url: str) -> list[str]:
    """One render as the crawl does it: fresh capture, navigate, collect."""
    spec = {"capture": ["/api/"], "wait_for": "#done", "timeout_ms": 5_000}
    await install_capture(page, _request(spec["capture"]))
    await page.goto(url)  # type: ignore[attr-defined]
    items = await collect_captures(page, spec)
    return sorted(i["url"].rsplit("/", 1)[1] for i in items)


def _with_page(scenario: Callable[[RenderMiddleware, object], Awaitable[None]]) -> None:
    from playwright.async_api import async_playwright

    async def run() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**launch_options(find_chromium(), images=False))
            try:
                page = await browser.new_page()
                await scenario(_middleware(), page)
            finally:
                await browser.close()

    asyncio.run(run())


def test_a_parked_document_is_stopped_and_its_late_answers_never_captured(site: str) -> None:
    async def scenario(mw: RenderMiddleware, page: object) -> None:
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))  # type: ignore[attr-defined]
        held_before = _Site.answered.count("/api/held")
        first = await _render(page, f"{site}/busy")
        assert "busy-fast" in first
        assert "held" not in first
        await mw._park(page, "tagarchive-0", ok=True)
        assert mw.idle["tagarchive-0"] == [page]
        assert not stirred(page)
        assert page.url == f"{site}/busy"  # type: ignore[attr-defined]  # not navigated away
        await _until(lambda: failed, "the stopped page's requestfailed event")
        assert failed == [f"{site}/api/held"]  # the stop aborted what it still fetched
        # the next request reuses the page and captures only its own document's answers
        second = await _render(page, f"{site}/next")
        assert second == ["next"]
        # ... also once the server has sent the held answer the old document asked for
        await _until(lambda: _Site.answered.count("/api/held") > held_before,
                     "the server to answer /api/held")
        capture = page._tagarchive_capture  # type: ignore[attr-defined]
        assert [i["url"].rsplit("/", 1)[1] for i in capture.items] == ["next"]

    _with_page(scenario)


def test_what_the_old_document_fetches_before_the_navigation_is_not_captured(
        site: str) -> None:
    async def scenario(mw: RenderMiddleware, page: object) -> None:
        await _render(page, f"{site}/next")
        await mw._park(page, "tagarchive-0", ok=True)
        spec = {"capture": ["/api/busy", "/api/stale"], "wait_for": "#done", "timeout_ms": 2_000}
        await install_capture(page, _request(spec["capture"]))  # the next request's capture;
        # then, before its navigation starts, the old document still fetches and is answered
        await page.evaluate("fetch('/api/stale').then(r => r.text())")  # type: ignore[attr-defined]
        await page.goto(f"{site}/busy")  # type: ignore[attr-defined]
        items = await collect_captures(page, spec)
        assert [i["url"].rsplit("/", 1)[1] for i in items] == ["busy-fast"]

    _with_page(scenario)


def test_a_parked_page_that_fetches_again_is_stirred_and_blanked_before_reuse(
        site: str) -> None:
    async def scenario(mw: RenderMiddleware, page: object) -> None:
        await _render(page, f"{site}/ticking")
        await mw._park(page, "tagarchive-0", ok=True)
        assert not stirred(page)
        # the parked document fetches again, as a timer or a socket of its own would make it;
        # the capture's listener runs before this waiter, so stirred is set once it is done
        async with page.expect_request(f"{site}/api/tick"):  # type: ignore[attr-defined]
            await page.evaluate("() => { tick(); }")  # type: ignore[attr-defined]
        assert stirred(page)
        second = _request()
        await mw.process_request(second)
        assert second.meta["playwright_page"] is page
        assert page.url == "about:blank"
        assert not stirred(page)

    _with_page(scenario)
