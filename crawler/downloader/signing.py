"""Signing sessions: a few live pages per platform whose own script makes API calls acceptable.

A platform such as Xiaohongshu refuses any API call that its page script did not sign. Instead
of rendering a whole page per tag to get at the JSON that page fetches, a crawl keeps a small
pool of pages open on the platform's origin (`SigningPool`, TAGARCHIVE_SIGNING_PAGES each) and
asks them to sign the adapter's own API requests (`SigningMiddleware`):

- a request whose `Fetch` carries a `SignSpec` is signed just before it is downloaded, by the
  site's own function in a live page, and then sent by Scrapy's HTTP downloader like any other
  request: retried, throttled, archived and parsed as usual (`signed_http`); or, where the
  signature cannot be taken apart from the call, run as a `fetch()` inside the page
  (`in_page_fetch`) by the download handler, in the request's turn (after the downloader's
  delay and concurrency, as a download), and answered like one. The site signers are in
  crawler/downloader/signing_sites.py;
- a refused signature is signed again and resent: first by any live page (it had expired), then
  by a page loaded afresh (the site's script changed: its pages are re-created), and a request
  refused even then is rendered instead; a captcha is no refused signature (each site signer
  tells them apart): it goes to the adapter as it came, which names it `captcha`, and the
  platform breaker stops the platform's other requests;
- a page that crashed or closed is re-created; a page with no signer after loading counts as
  signing being unavailable, and the request is rendered instead (its `SignSpec.fallback`),
  as is every request of a platform whose signing failed TAGARCHIVE_SIGNING_FAILURES times in
  a row (then for the rest of the run).

Pages live in their own browser context per platform, with the user's session cookies when
there is one (as rendering has them): in the crawl's Chromium, or in the user's own browser when
the crawl attached to it over CDP (--browser-cdp; a context of the crawl's own, closed with its
connection, holding the cookies read from that browser); or in the platform's persistent
profile when it has one (--browser-profile). The response says how it came in
`tagarchive_fetched_by`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler.downloader.breaker import READ_FIRST, TICKET, PlatformBreakerMiddleware, tag_key
from crawler.downloader.chromium import browser_handler, signing_browser
from crawler.downloader.middlewares import (
    PROFILE_SUFFIX,
    AdapterSpider,
    SignedInRun,
    _session_state,
)
from crawler.downloader.profiles import persistent_context_kwargs
from crawler.downloader.signing_sites import IN_PAGE_FETCH, SITES, SignerMissing, SiteSigner
from crawler.signals import run_started

logger = logging.getLogger(__name__)

SIGN_META = "tagarchive_sign"  # the SignSpec, as the spider put it in the request's meta
# set while a request to be fetched in a page is in the downloader: the coroutine the download
# handler runs instead of downloading it (crawler/downloader/chromium.py)
IN_PAGE_META = "tagarchive_in_page_fetch"
REFUSED_META = "tagarchive_sign_refused"  # how many times this request's signature was refused
_SIGNED = "_tagarchive_signed"  # set while a signed request is in the downloader
COOKIE_SECONDS = 10.0  # a session's cookies are read again after this long
# after a page failed to show its signer, the platform's pool answers "unavailable" at once
# for this long rather than load (and wait on) another page per request
DOWN_SECONDS = 30.0


class SigningUnavailable(IgnoreRequest):
    """No page could sign (no signer after loading, pages crashing); the request has no
    rendered fallback."""


@dataclass(eq=False)
class SigningSession:
    """One live page on a platform's origin."""

    page: Any
    context: Any
    owned: bool  # the context is ours to close (not a persistent profile rendering shares)
    generation: int
    created: float = field(default_factory=time.monotonic)
    dead: bool = False
    _cookies: dict[str, tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)

    async def cookies(self, url: str) -> list[dict[str, Any]]:
        """The context's cookies for `url`'s origin, read at most every COOKIE_SECONDS (each
        read is a round trip to the browser)."""
        origin = "/".join(url.split("/", 3)[:3])
        now = time.monotonic()
        cached = self._cookies.get(origin)
        if cached is None or now - cached[0] >= COOKIE_SECONDS:
            cookies: list[dict[str, Any]] = await self.context.cookies([url])
            cached = self._cookies[origin] = (now, cookies)
        return cached[1]

    def usable(self, generation: int) -> bool:
        return not self.dead and self.generation >= generation and not self.page.is_closed()


class SigningPool:
    """`size` live pages on one platform's origin, created on first use and re-created when
    they crash, close, or belong to an older generation (`renew`)."""

    def __init__(self, crawler: Crawler, platform: str, site: SiteSigner, url: str, size: int,
                 ready_ms: int, context_kwargs: dict[str, Any] | None,
                 profile: dict[str, Any] | None = None) -> None:
        self.crawler = crawler
        self.profile = profile  # the kwargs of the platform's persistent context (a profile)
        self.platform = platform
        self.site = site
        self.url = url
        self.ready_ms = ready_ms
        self.context_kwargs = context_kwargs
        self.slots: list[SigningSession | None] = [None] * max(1, size)
        self.locks = [asyncio.Lock() for _ in self.slots]
        self.generation = 0
        self.turn = 0
        self.context: Any = None  # our context for this platform's pages (None: not made yet)
        self.context_lock = asyncio.Lock()
        self.down: tuple[float, str] | None = None  # (until, why) after a page had no signer

    async def session(self) -> SigningSession:
        """A live page that can sign, taking the slots in turn."""
        slot = self.turn % len(self.slots)
        self.turn += 1
        async with self.locks[slot]:
            current = self.slots[slot]
            if current is not None and current.usable(self.generation):
                return current
            if self.down is not None and time.monotonic() < self.down[0]:
                raise SigningUnavailable(self.down[1])
            if current is not None:
                why = "older script" if current.generation < self.generation else "page lost"
                logger.info("%s: re-creating signing page %d (%s)", self.platform, slot, why)
                self.crawler.stats.inc_value("tagarchive/signing/sessions_recreated")
                await self._close_page(current)
            fresh = await self._open()
            self.slots[slot] = fresh
            return fresh

    def lost(self, session: SigningSession) -> None:
        """A page that failed under a call: re-created before its next use."""
        session.dead = True

    def renew(self, generation: int) -> None:
        """The site's script changed under pages of `generation`: every page of that
        generation or older is loaded afresh before its next use (once per change)."""
        if generation >= self.generation:
            self.generation = generation + 1
            logger.info("%s: a fresh page's signature was refused; signing pages are re-created",
                        self.platform)
            self.crawler.stats.inc_value("tagarchive/signing/renewed")

    async def _context(self) -> tuple[Any, bool]:
        if self.profile is not None:
            handler = await browser_handler(self.crawler)
            # the platform's persistent profile, the one context rendering uses too (a profile
            # directory can be open once): its cookies are the session (profiles.py)
            name = f"tagarchive-{self.platform}{PROFILE_SUFFIX}"
            async with handler.context_launch_lock:
                wrapper = handler.context_wrappers.get(name)
                if wrapper is None:
                    wrapper = await handler._create_browser_context(name=name,
                                                                    context_kwargs=self.profile)
            return wrapper.context, False
        async with self.context_lock:
            if self.context is None or not _alive(self.context):
                browser = await signing_browser(self.crawler)
                self.context = await browser.new_context(**(self.context_kwargs or {}))
            return self.context, True

    async def _open(self) -> SigningSession:
        generation = self.generation
        try:
            context, owned = await self._context()
            page = await context.new_page()
        except Exception as exc:
            raise SigningUnavailable(f"no page for signing: {type(exc).__name__}: "
                                     f"{str(exc)[:120]}") from exc
        session = SigningSession(page=page, context=context, owned=owned, generation=generation)
        page.on("crash", lambda *_: self.lost(session))
        page.on("close", lambda *_: self.lost(session))
        self.crawler.stats.inc_value("tagarchive/signing/navigations")
        try:
            await page.goto(self.url, wait_until="load")  # its scripts have run
            await page.wait_for_function(self.site.ready, timeout=self.ready_ms)
        except Exception as exc:
            await self._close_page(session)
            why = (f"the {self.platform} page at {self.url} has no signer "
                   f"({type(exc).__name__})")
            self.down = (time.monotonic() + DOWN_SECONDS, why)
            raise SigningUnavailable(why) from exc
        self.down = None
        self.crawler.stats.inc_value("tagarchive/signing/sessions_created")
        logger.info("%s: signing page ready (%s)", self.platform, self.url)
        return session

    async def _close_page(self, session: SigningSession) -> None:
        try:
            await session.page.close()
        except Exception as exc:  # crashed or gone with its browser
            logger.debug("closing a signing page of %s: %s", self.platform, exc)

    async def close(self) -> None:
        for session in self.slots:
            if session is not None:
                await self._close_page(session)
        if self.context is not None:
            try:
                await self.context.close()
            except Exception as exc:  # gone with its browser
                logger.debug("closing the signing context of %s: %s", self.platform, exc)


def _alive(context: Any) -> bool:
    try:
        context.pages  # noqa: B018 - raises once the browser is gone
        return bool(context.browser is None or context.browser.is_connected())
    except Exception:
        return False


class SigningMiddleware:
    """Sign the requests that ask for it in a live page; fall back to rendering them."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.size = settings.getint("TAGARCHIVE_SIGNING_PAGES", 1)
        self.ready_ms = settings.getint("TAGARCHIVE_SIGNING_READY_MS", 5_000)
        self.max_failures = settings.getint("TAGARCHIVE_SIGNING_FAILURES", 3)
        self.pools: dict[str, SigningPool] = {}
        self.failures: dict[str, int] = {}  # platform -> signing failures in a row
        self.off: dict[str, str] = {}  # platform -> why its requests are rendered from now on
        self.run: SignedInRun | None = None
        launch = settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
        self.profiles = {  # as RenderMiddleware opens them
            platform: persistent_context_kwargs(directory, launch)
            for platform, directory in settings.getdict("TAGARCHIVE_BROWSER_PROFILES").items()}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SigningMiddleware:
        settings = crawler.settings
        if not settings.getbool("TAGARCHIVE_BROWSER_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_BROWSER_ENABLED is off")
        if not settings.getbool("TAGARCHIVE_SIGNING_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_SIGNING_ENABLED is off")
        middleware = cls(crawler)
        crawler.signals.connect(middleware.start_run, signal=run_started)
        from scrapy import signals

        crawler.signals.connect(middleware.close, signal=signals.spider_closed)
        return middleware

    def start_run(self, run: SignedInRun | None) -> None:
        """The receiver of `run_started`: sign with this run's sessions from now on."""
        self.run = run

    async def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            await pool.close()

    def _pool(self, platform: str, site: SiteSigner) -> SigningPool:
        pool = self.pools.get(platform)
        if pool is None:
            adapter = cast(AdapterSpider, self.crawler.spider).adapters[platform]
            profile = self.profiles.get(platform)
            state = None if profile else _session_state(self.crawler, self.run, platform)
            pool = SigningPool(self.crawler, platform, site, adapter.url(adapter.signing_page),
                               self.size, self.ready_ms,
                               {"storage_state": state} if state else None, profile)
            self.pools[platform] = pool
        return pool

    async def process_request(self, request: Request) -> Request | Response | None:
        spec = request.meta.get(SIGN_META)
        if not spec:
            return None
        platform = (request.meta.get("tagarchive_job") or {}).get("platform") or ""
        site = SITES.get(spec.get("signer", ""))
        if site is None:
            return self._fallback(request, f"no signer named {spec.get('signer')!r}")
        if platform in self.off:
            return self._fallback(request, self.off[platform], quiet=True)
        pool = self._pool(platform, site)
        if site.fetched_by == IN_PAGE_FETCH:  # fetched in its turn by the download handler
            request.meta[IN_PAGE_META] = functools.partial(self._in_page, pool, site, spec)
            request.meta[_SIGNED] = {"url": request.url, "headers": {}, "generation": 0,
                                     "at": time.time()}
            return None
        problem = ""
        for _ in range(2):  # a page that fails under the call is replaced once
            try:
                session = await pool.session()
            except SigningUnavailable as exc:
                problem = str(exc)
                break
            original = (request.url, {k: request.headers.get(k) for k in _SIGNED_HEADERS})
            try:
                answer = await site.sign(session, request, spec)
            except SignerMissing as exc:
                problem = str(exc)
                pool.renew(session.generation)  # a page that lost its signer is reloaded once
                self._restore(request, original)
                continue
            except Exception as exc:  # the page crashed, closed or navigated away meanwhile
                problem = f"{type(exc).__name__}: {str(exc)[:120]}"
                pool.lost(session)
                self.crawler.stats.inc_value("tagarchive/signing/sessions_lost")
                self._restore(request, original)
                continue
            breaker = self._breaker()
            job = request.meta.get("tagarchive_job")
            if breaker is not None and job and breaker.holding(platform, tag_key(job)):
                # a captcha came while this was signed: back to the queue, where the breaker
                # holds it until that tag's outcome (and then skips it, if that tripped)
                self._restore(request, original)
                return request.replace(dont_filter=True)
            request.meta[_SIGNED] = {"url": original[0], "headers": original[1],
                                     "generation": session.generation, "at": time.time()}
            request.meta[READ_FIRST] = True  # a captcha holds the platform before its next
            self.crawler.stats.inc_value(f"tagarchive/signing/{site.fetched_by}")
            return answer
        return self._unavailable(request, platform, problem)

    def _breaker(self) -> PlatformBreakerMiddleware | None:
        """The crawl's platform breaker, when it has one (TAGARCHIVE_BREAKER_ENABLED)."""
        for middleware in self.crawler.engine.downloader.middleware.middlewares:
            if isinstance(middleware, PlatformBreakerMiddleware):
                return middleware
        return None

    async def _in_page(self, pool: SigningPool, site: SiteSigner, spec: Mapping[str, Any],
                       request: Request) -> Response:
        """The request fetched in a live page, called by the download handler."""
        problem = ""
        for _ in range(2):  # a page that fails under the call is replaced once
            session = await pool.session()  # SigningUnavailable: rendered instead
            try:
                answer = await site.sign(session, request, spec)
            except SignerMissing as exc:
                problem = str(exc)
                pool.renew(session.generation)
                continue
            except Exception as exc:  # the page crashed, closed or navigated away meanwhile
                problem = f"{type(exc).__name__}: {str(exc)[:120]}"
                pool.lost(session)
                self.crawler.stats.inc_value("tagarchive/signing/sessions_lost")
                continue
            if answer is None:
                raise TypeError(f"{site.name} signs in place, it does not fetch")
            request.meta[_SIGNED]["generation"] = session.generation
            self.crawler.stats.inc_value(f"tagarchive/signing/{site.fetched_by}")
            return answer
        raise SigningUnavailable(problem)

    def process_response(self, request: Request,
                         response: Response) -> Request | Response:
        request.meta.pop(IN_PAGE_META, None)
        request.meta.pop(READ_FIRST, None)
        signed = request.meta.pop(_SIGNED, None)
        if signed is None:
            return response
        self._restore(request, (signed["url"], signed["headers"]))
        platform = (request.meta.get("tagarchive_job") or {}).get("platform") or ""
        site = SITES[request.meta[SIGN_META]["signer"]]
        if site.refused(response):
            return self._refused(request, response, platform, signed)
        if site.captcha(response):
            # the platform's risk control, not the signature: signing again, loading fresh
            # pages or rendering would only ask it again. The adapter names it `captcha`, and
            # the platform breaker cools the platform (breaker.py)
            logger.warning("%s: captcha answered to a signed request (HTTP %d): not signed "
                           "again", platform, response.status)
            self.crawler.stats.inc_value("tagarchive/signing/captcha")
            breaker, job = self._breaker(), request.meta.get("tagarchive_job")
            if breaker is not None and job:  # the platform's other requests wait for its end
                breaker.suspect(platform, tag_key(job))
        self.failures[platform] = 0
        request.meta["tagarchive_fetched_by"] = site.fetched_by  # response.meta, once tied
        return response

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        in_page = request.meta.pop(IN_PAGE_META, None)
        request.meta.pop(READ_FIRST, None)
        signed = request.meta.pop(_SIGNED, None)
        if signed is not None:  # retried as it was asked for, and signed again then
            self._restore(request, (signed["url"], signed["headers"]))
        if in_page is not None and isinstance(exception, SigningUnavailable):
            platform = (request.meta.get("tagarchive_job") or {}).get("platform") or ""
            return self._unavailable(request, platform, str(exception))
        return None

    def _refused(self, request: Request, response: Response, platform: str,
                 signed: Mapping[str, Any]) -> Request | Response:
        """A refused signature: signed again by any page (it expired), then by pages loaded
        afresh (the script changed), then the request is rendered instead."""
        tries = int(request.meta.get(REFUSED_META, 0)) + 1
        self.crawler.stats.inc_value("tagarchive/signing/refused")
        age = time.time() - signed["at"]
        if tries == 1:
            logger.info("%s: signature refused (HTTP %d, made %.1f s before); signing again",
                        platform, response.status, age)
        elif tries == 2:
            self.pools[platform].renew(signed["generation"])
        else:
            return self._unavailable(request, platform, f"signatures refused by a fresh page "
                                                        f"(HTTP {response.status})")
        self.crawler.stats.inc_value("tagarchive/signing/resigned")
        again = request.replace(dont_filter=True)
        again.meta[REFUSED_META] = tries
        return again

    def _unavailable(self, request: Request, platform: str, problem: str) -> Request:
        self.failures[platform] = failures = self.failures.get(platform, 0) + 1
        if failures >= self.max_failures and platform not in self.off:
            self.off[platform] = f"signing failed {failures} times in a row ({problem})"
            logger.warning("%s: %s; its pages are rendered for the rest of the run", platform,
                           self.off[platform])
            self.crawler.stats.inc_value("tagarchive/signing/platform_off")
        return self._fallback(request, problem)

    def _fallback(self, request: Request, problem: str, quiet: bool = False) -> Request:
        """The request's rendered fallback, as the spider would have sent it."""
        fallback = request.meta[SIGN_META].get("fallback")
        if fallback is None:
            raise SigningUnavailable(f"signing unavailable, and nothing to render instead: "
                                     f"{problem}")
        if not quiet:
            logger.warning("%s: rendering instead of signing: %s",
                           (request.meta.get("tagarchive_job") or {}).get("platform"), problem)
        self.crawler.stats.inc_value("tagarchive/signing/fallback")
        meta = dict(fallback["meta"])
        if TICKET in request.meta:  # the platform breaker's room goes with it (breaker.py)
            meta[TICKET] = request.meta[TICKET]
        return request.replace(url=fallback["url"], method=fallback["method"],
                               body=fallback["body"] or b"", headers=fallback["headers"] or None,
                               meta=meta, dont_filter=True)

    @staticmethod
    def _restore(request: Request, original: tuple[str, Mapping[str, bytes | None]]) -> None:
        """The request as it was before signing, so a retry re-enters the queue unsigned."""
        url, headers = original
        if request.url != url:
            request._set_url(url)
        for name, value in headers.items():
            if value is None:
                request.headers.pop(name, None)
            else:
                request.headers[name] = value


# every header a site signer may set (signing_sites.py)
_SIGNED_HEADERS = ("X-S", "X-T", "x-S-Common", "X-B3-Traceid", "Cookie")
