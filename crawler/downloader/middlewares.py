"""Downloader middlewares: rendering on demand, and retries that back off and honour Retry-After."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy_playwright.page import PageMethod

from crawler.downloader.chromium import collect_captures, park, stirred
from crawler.downloader.profiles import persistent_context_kwargs
from crawler.downloader.signin import Session, session_hosts
from crawler.logredact import register_secrets
from crawler.platforms.base import Platform
from crawler.signals import run_started
from crawler.text.counts import digit_string_value

logger = logging.getLogger(__name__)


class SignedInRun(Protocol):
    """What the middlewares read of a run: its sign-in sessions by platform."""

    # RunState (crawler/extensions/runrecord.py) is a sibling layer the downloader may not import

    @property
    def sessions(self) -> Mapping[str, Session]: ...


class AdapterSpider(Protocol):
    """What the middlewares read of the spider, a layer above them: its adapters by platform."""

    @property
    def adapters(self) -> Mapping[str, Platform]: ...


def _adapter(crawler: Crawler, platform: str) -> Platform:
    # every spider of this project holds its adapters (snapshot, worker, backfill)
    return cast(AdapterSpider, crawler.spider).adapters[platform]


PROFILE_SUFFIX = "-profile"  # the name of a platform's persistent context ends so

_PLAYWRIGHT_KEYS = ("playwright", "playwright_context", "playwright_page_methods",
                    "playwright_page_init_callback", "playwright_context_kwargs",
                    "playwright_page", "playwright_include_page")


class RenderMiddleware:
    """Turn `tagarchive_render` meta into scrapy-playwright meta just before download.

    Requests wait in the scheduler with plain, picklable meta; the callables and Page objects
    scrapy-playwright needs exist only while the request is in the downloader, and are removed
    again on the way back (so a retry re-enters the queue picklable). Browser contexts are
    rotated every TAGARCHIVE_CONTEXT_PAGES pages and closed when their last page is done,
    because long-lived contexts grow without bound (scrapy-playwright #240, playwright #6319).

    Pages are reused within their context: a page that finished cleanly is stopped (its
    document's fetches aborted, `browser.park`) and waits for the next render request of the
    same context, instead of being closed; the next navigation replaces its document, and its
    capture listens only to that new document (`browser._Capture`). A parked page whose
    document fetched again is sent to about:blank before reuse. A new Chromium page costs a
    renderer process; reusing one more than halves the time per rendered page, and stopping
    rather than blanking saves one more navigation per render. A page that failed is closed,
    never reused.
    """

    def __init__(self, crawler: Crawler, pages_per_context: int, max_pages: int = 4) -> None:
        self.crawler = crawler
        self.pages_per_context = pages_per_context
        self.generation = 0
        self.served = 0
        self.inflight: dict[str, int] = {}
        self.contexts: dict[str, Any] = {}
        self.idle: dict[str, list[Any]] = {}  # open pages waiting for their context's next request
        self.open: dict[str, int] = {}  # pages opened per context and not closed by us yet
        self.max_pages = max_pages
        self.page_returned = asyncio.Condition()
        self.run: SignedInRun | None = None  # the current run, from run_started
        # platform -> the kwargs of its persistent context (--browser-profile): one per
        # platform, never rotated, for its cookies must outlive the crawl (profiles.py)
        self.profiles: dict[str, dict[str, Any]] = {}

    def start_run(self, run: SignedInRun | None) -> None:
        """The receiver of `run_started`: render with this run's sessions from now on."""
        self.run = run

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RenderMiddleware:
        if not crawler.settings.getbool("TAGARCHIVE_BROWSER_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_BROWSER_ENABLED is off")
        settings = crawler.settings
        max_pages = (settings.getint("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT")
                     or settings.getint("CONCURRENT_REQUESTS"))
        middleware = cls(crawler, settings.getint("TAGARCHIVE_CONTEXT_PAGES", 100), max_pages)
        launch = settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
        middleware.profiles = {
            platform: persistent_context_kwargs(directory, launch)
            for platform, directory in settings.getdict("TAGARCHIVE_BROWSER_PROFILES").items()}
        crawler.signals.connect(middleware.start_run, signal=run_started)
        return middleware

    def _context_name(self, platform: str | None) -> str:
        if self.served and self.served % self.pages_per_context == 0:
            self.generation += 1
        self.served += 1
        # a signed-in platform gets contexts of its own: its cookies must not leak to others
        if platform is not None:
            return f"tagarchive-{platform}-{self.generation}"
        return f"tagarchive-{self.generation}"

    def _current(self, name: str) -> bool:
        return name.endswith(f"-{self.generation}") or name.endswith(PROFILE_SUFFIX)

    async def process_request(self, request: Request) -> None:
        spec = request.meta.get("tagarchive_render")
        if not spec:
            return None
        platform = (request.meta.get("tagarchive_job") or {}).get("platform")
        profile = self.profiles.get(platform) if platform else None
        state = None if profile else _session_state(self.crawler, self.run, platform)
        if profile:  # its own cookies live in the profile: no storage_state on top
            name = f"tagarchive-{platform}{PROFILE_SUFFIX}"
            request.meta["playwright_context_kwargs"] = profile
        else:
            name = self._context_name(platform if state else None)
        self.inflight[name] = self.inflight.get(name, 0) + 1
        if state:
            # only read when the context is created; cookies go to the base URL's origin
            request.meta["playwright_context_kwargs"] = {"storage_state": state}
        # A page of this context that is open but not idle is being parked: wait for it rather
        # than open one more, which scrapy-playwright would block on at the page limit.
        async with self.page_returned:
            await self.page_returned.wait_for(
                lambda: self.idle.get(name) or self.open.get(name, 0) < self.max_pages)
        idle = self.idle.get(name)
        page = idle.pop() if idle else None
        if page is not None and await self._settled(page, name):
            request.meta["playwright_page"] = page
            self.crawler.stats.inc_value("tagarchive/browser_pages_reused")
        elif page is None:
            self.open[name] = self.open.get(name, 0) + 1
        # else: a parked page that could not be settled was closed; the new one takes its slot
        request.meta.update({
            "playwright": True,
            "playwright_include_page": True,  # kept open for reuse; _release decides
            "playwright_context": name,
            "playwright_page_init_callback": "crawler.downloader.chromium.install_capture",
            "playwright_page_methods": [PageMethod(self._collect, spec, name)],
        })
        self.crawler.stats.inc_value("tagarchive/rendered_requests")
        return None

    async def _collect(self, page: Any, spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
        self.contexts.setdefault(name, page.context)
        return await collect_captures(page, spec)

    async def _release(self, request: Request, ok: bool = True) -> None:
        methods = request.meta.get("playwright_page_methods") or []
        captured = methods[-1].result if methods else None
        name = request.meta.get("playwright_context")
        page = request.meta.get("playwright_page")
        for key in _PLAYWRIGHT_KEYS:
            request.meta.pop(key, None)
        request.meta["tagarchive_captured"] = captured or []
        request.meta["tagarchive_rendered"] = True
        if name is None:
            return
        if page is not None:
            await self._park(page, name, ok)
        else:  # failed before scrapy-playwright had a page for it
            async with self.page_returned:
                self.open[name] = max(0, self.open.get(name, 0) - 1)
                self.page_returned.notify_all()
        self.inflight[name] -= 1
        retired = not self._current(name)
        if retired and self.inflight[name] == 0:
            del self.inflight[name]
            self.idle.pop(name, None)
            self.open.pop(name, None)
            context = self.contexts.pop(name, None)
            if context is not None:
                try:
                    await context.close()
                    self.crawler.stats.inc_value("tagarchive/browser_contexts_closed")
                    logger.info("closed browser context %s after its %d pages", name,
                                self.pages_per_context)
                except Exception as exc:  # already closed by a browser restart
                    logger.debug("closing context %s: %s", name, exc)

    async def _settled(self, page: Any, name: str) -> bool:
        """A parked page, ready for its next request: blanked first if it fetched while parked.

        False if it could not be (crashed, closed): it is closed and not reused.
        """
        if not stirred(page) or page.is_closed():
            return not page.is_closed()
        self.crawler.stats.inc_value("tagarchive/browser_pages_blanked")
        try:
            await page.goto("about:blank")  # ends its document and whatever it fetches
            page._tagarchive_stirred = False
            return True
        except Exception as exc:
            logger.debug("parked page of %s not reusable: %s", name, exc)
        try:
            await page.close()
        except Exception as exc:  # already gone with its context or browser
            logger.debug("closing a page of %s: %s", name, exc)
        return False

    async def _park(self, page: Any, name: str, ok: bool) -> None:
        """Keep a page for the next request of its context (stopped, see browser.park), or
        close it."""
        page._tagarchive_capture = None  # nothing it still receives belongs to a request
        parked = False
        if ok and self._current(name) and not page.is_closed():
            try:
                await park(page)
                parked = True
            except Exception as exc:  # crashed or closed meanwhile: not reusable
                logger.debug("page of %s not reusable: %s", name, exc)
        if not parked and not page.is_closed():
            try:
                await page.close()
            except Exception as exc:  # already gone with its context or browser
                logger.debug("closing a page of %s: %s", name, exc)
        async with self.page_returned:
            if parked:
                self.idle.setdefault(name, []).append(page)
            else:
                self.open[name] = max(0, self.open.get(name, 0) - 1)
            self.page_returned.notify_all()

    async def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get("playwright"):
            await self._release(request)
        return response

    async def process_exception(self, request: Request, exception: Exception) -> None:
        if request.meta.get("playwright"):
            await self._release(request, ok=False)
        return None


def _session_state(crawler: Crawler, run: SignedInRun | None,
                   platform: str | None) -> dict[str, Any] | None:
    """A Playwright storage_state holding the platform's session cookies, or None."""
    if run is None or not platform:
        return None
    session = run.sessions.get(platform)
    if session is None or not session.cookies:
        return None
    adapter = _adapter(crawler, platform)
    origin = urlsplit(adapter.base_url)
    url = f"{origin.scheme}://{origin.netloc}"
    cookies = [{"name": c.name, "value": c.value, "url": url}
               for c in session.cookies_for(session_hosts(adapter))]
    return {"cookies": cookies, "origins": []} if cookies else None


class SessionMiddleware:
    """Attach the user's sign-in to its platform's requests, inside the downloader only.

    Cookies become a Cookie header (the browser gets them through its context instead); token
    sign-in (Bluesky) is exchanged once per run through the adapter's `login_fetch`. What is
    added is removed again on the way back, so a retried request re-enters the queue clean.
    """

    ADDED = "_tagarchive_session_headers"

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.tokens: dict[str, dict[str, str]] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.run: SignedInRun | None = None  # the current run, from run_started

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SessionMiddleware:
        middleware = cls(crawler)
        crawler.signals.connect(middleware.start_run, signal=run_started)
        return middleware

    def start_run(self, run: SignedInRun | None) -> None:
        """The receiver of `run_started`: sign requests in with this run's sessions."""
        self.run = run

    async def process_request(self, request: Request) -> None:
        if request.meta.get("tagarchive_login") or request.meta.get("tagarchive_render"):
            return None
        platform: str | None = (request.meta.get("tagarchive_job") or {}).get("platform")
        run = self.run
        if run is None or not platform:
            return None
        session = run.sessions.get(platform)
        if session is None:
            return None
        adapter = _adapter(self.crawler, platform)
        added: dict[str, str] = {}
        cookies = session.cookies_for(session_hosts(adapter))
        if cookies:
            mine = "; ".join(f"{c.name}={c.value}" for c in cookies)
            existing = request.headers.get("Cookie")
            added["Cookie"] = f"{existing.decode('latin-1')}; {mine}" if existing else mine
        if session.login:
            added.update(await self._token(platform, adapter, session))
        for name, value in added.items():
            request.headers[name] = value
        request.meta[self.ADDED] = list(added)
        return None

    async def _token(self, platform: str, adapter: Platform, session: Session) -> dict[str, str]:
        lock = self.locks.setdefault(platform, asyncio.Lock())
        async with lock:
            if platform in self.tokens:
                return self.tokens[platform]
            headers: dict[str, str] = {}
            fetch = adapter.login_fetch(session.login)
            if fetch is not None:
                login = Request(fetch.url, method=fetch.method, body=fetch.body,
                                headers=fetch.headers or None, dont_filter=True,
                                meta={"tagarchive_login": True, "handle_httpstatus_all": True})
                try:
                    response = await self.crawler.engine.download_async(login)
                    from crawler.downloader.pages import page_from_response

                    headers = adapter.login_headers(page_from_response(response))
                    # the token is as secret as the password it was exchanged for
                    register_secrets([v.split(" ", 1)[-1] for v in headers.values()])
                    self.crawler.stats.inc_value("tagarchive/signin/ok")
                except Exception as exc:  # the crawl goes on unauthenticated: tags say why
                    logger.error("%s sign-in failed (%s): %s", platform, session.origin,
                                 type(exc).__name__)
                    self.crawler.stats.inc_value("tagarchive/signin/failed")
            self.tokens[platform] = headers
            return headers

    def _strip(self, request: Request) -> None:
        for name in request.meta.pop(self.ADDED, ()):
            request.headers.pop(name, None)

    def process_response(self, request: Request, response: Response) -> Response:
        self._strip(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._strip(request)
        return None


def retry_after_seconds(value: str | bytes | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    seconds = digit_string_value(value)  # ASCII digits only: "²" passes isdigit() but not float()
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def rate_limit_reset_seconds(reset: str | bytes | None, date_header: str | bytes | None,
                             now: datetime | None = None) -> float | None:
    """Seconds until an `X-RateLimit-Reset` (Mastodon: an ISO time; others: unix seconds).

    Measured against the response's own Date header when there is one, so a skewed local clock
    does not turn the wait into zero or hours.
    """
    if reset is None:
        return None
    text = (reset.decode("latin-1") if isinstance(reset, bytes) else reset).strip()
    server_now = now or datetime.now(UTC)
    if date_header is not None:
        try:
            raw = date_header.decode("latin-1") if isinstance(date_header, bytes) else date_header
            server_now = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            pass
    stamp = digit_string_value(text)  # ASCII, at most 20 digits: "²" or 10^30 name no time
    if stamp is not None:
        try:
            when = datetime.fromtimestamp(stamp, UTC)
        except (OverflowError, OSError, ValueError):  # past the years a datetime holds
            return None
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - server_now).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, plus waiting before each retry: Retry-After when the server gives one,
    else exponential backoff with jitter. A Retry-After longer than TAGARCHIVE_RETRY_AFTER_MAX
    is not waited out: the response goes to the spider, which reports the tag rate-limited.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("TAGARCHIVE_BACKOFF_BASE", 1.0)
        self.cap = settings.getfloat("TAGARCHIVE_BACKOFF_MAX", 30.0)
        self.retry_after_max = settings.getfloat("TAGARCHIVE_RETRY_AFTER_MAX", 120.0)

    def _backoff(self, request: Request) -> float:
        attempt: int = request.meta.get("retry_times", 0)
        delay = min(self.cap, self.base * 2.0**attempt)  # int ** int is typed Any
        return delay * (0.5 + random.random() / 2)  # jitter keeps workers from stampeding

    # Scrapy awaits coroutine middleware methods (and calls them without `spider`);
    # RetryMiddleware declares the sync form, so the override differs on purpose
    async def process_response(  # type: ignore[override]
            self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        delay = retry_after_seconds(response.headers.get("Retry-After"))
        if delay is None:
            delay = rate_limit_reset_seconds(response.headers.get("X-RateLimit-Reset"),
                                             response.headers.get("Date"))
        if delay is not None and delay > self.retry_after_max:
            self.crawler.stats.inc_value("tagarchive/retry_after_too_long")
            return response
        retry = self._retry(request, f"HTTP {response.status}")
        if retry is None:
            return response
        wait = delay if delay is not None else self._backoff(request)
        self.crawler.stats.inc_value("tagarchive/retry_wait_seconds", int(round(wait)))
        await asyncio.sleep(wait)
        return retry

    async def process_exception(  # type: ignore[override]  # coroutine form: see above
            self, request: Request, exception: Exception) -> Request | None:
        if request.meta.get("dont_retry") or not isinstance(exception, self.exceptions_to_retry):
            return None
        retry = self._retry(request, exception)
        if retry is not None:
            await asyncio.sleep(self._backoff(request))
        return retry
