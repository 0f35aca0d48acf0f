"""The snapshot spider: visits each (platform, tag) and yields its snapshot and posts.

It only navigates: which URL to fetch next, and what a page means, is the adapter's business.
It holds the run it was given (or makes one for `scrapy crawl`) and announces it with
`run_started`; the components that write for the run keep their own state from there
(crawler/extensions/, pipelines/), and every outcome goes out as `tag_outcome`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from twisted.python.failure import Failure

from crawler.downloader.breaker import PlatformCooling
from crawler.downloader.pages import failed_request, page_from_response
from crawler.downloader.signedin import LoginLost
from crawler.extensions.runrecord import PENDING, RunState, TagJob
from crawler.items import PageItems, items_from_result
from crawler.platforms import platform_class
from crawler.platforms.base import (
    AdapterFailed,
    Fetch,
    Outcome,
    Platform,
    PlatformError,
    TagResult,
    UnknownStep,
    guarded_handle,
)
from crawler.signals import run_started, send_outcome
from crawler.spiders.fetchchoice import SIGN_META, choose_fetch, sign_meta
from crawler.text.tags import TagRef

logger = logging.getLogger(__name__)


class SnapshotSpider(scrapy.Spider):
    """Headline counters and shown posts for each requested tag, once."""

    name = "snapshot"

    def __init__(self, run: RunState | None = None, platforms: str = "", tags: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run = run
        self._raw_platforms = platforms
        self._raw_tags = tags
        self.adapters: dict[str, Platform] = {}
        self.browser_enabled = True
        self.signing_enabled = True
        # One bound method for every request. Scrapy caches its "generator returns a value"
        # check (inspect.getsource + ast.parse) in a weak-keyed dict keyed by the callback;
        # a fresh bound method per request dies at once, so the check ran on every response
        # (6% of an HTTP crawl's samples). Requests still name the callback by method name.
        self.on_page = self.on_page  # type: ignore[method-assign]

    @property
    def run(self) -> RunState:
        """This spider's run: given by the CLI, or made in `from_crawler` for `scrapy crawl`."""
        if self._run is None:
            # AttributeError, as for any unset attribute: inspect.getmembers (Scrapy's
            # request.to_dict) looks at every attribute and skips only that one
            raise AttributeError("the spider's run is made in from_crawler")
        return self._run

    @run.setter
    def run(self, run: RunState) -> None:
        self._run = run

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        if spider._run is None:
            # `scrapy crawl snapshot -a platforms=tiktok -a tags=a,b` for Scrapy users
            from crawler.platforms import parse_platforms
            from crawler.text.tags import parse_tag_arg
            jobs = [TagJob(p, parse_tag_arg(t)) for p in parse_platforms(spider._raw_platforms)
                    for t in spider._raw_tags.split(",") if t.strip()]
            spider.run = RunState(out=settings.get("TAGARCHIVE_OUT", "data"), jobs=jobs,
                                  command="scrapy crawl")
        spider.run.label_from(settings)
        spider.browser_enabled = settings.getbool("TAGARCHIVE_BROWSER_ENABLED", True)
        spider.signing_enabled = settings.getbool("TAGARCHIVE_SIGNING_ENABLED", True)
        base_urls: dict[str, str] = settings.getdict("TAGARCHIVE_BASE_URLS")
        for job in spider.run.jobs:
            if job.platform not in spider.adapters:
                spider.adapters[job.platform] = platform_class(job.platform)(
                    base_urls.get(job.platform))
        crawler.signals.connect(spider._on_opened, scrapy.signals.spider_opened)
        return spider

    def _on_opened(self) -> None:
        self.crawler.signals.send_catch_log(run_started, run=self.run)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for job in self.run.jobs:
            if self.run.outcomes.get((job.platform, job.key), (PENDING, ""))[0] != PENDING:
                continue  # decided before the crawl (a platform that failed its sign-in check)
            adapter = self.adapters[job.platform]
            try:
                fetch = adapter.first_fetch(job.ref)
            except PlatformError as exc:
                send_outcome(self.crawler.signals, job.platform, job.key, exc.outcome, exc.detail)
                continue
            request = self._request(fetch, job)
            if request is not None:
                yield request

    def _request(self, asked: Fetch, job: TagJob) -> scrapy.Request | None:
        # signed, or rendered instead (crawler/spiders/fetchchoice.py, as backfills choose)
        fetch = choose_fetch(asked, signing=self.signing_enabled, browser=self.browser_enabled)
        if fetch is None:
            send_outcome(self.crawler.signals, job.platform, job.key, Outcome.UNSUPPORTED,
                         "this page needs the browser, which is disabled (--no-browser)")
            return None
        return scrapy.Request(
            fetch.url, method=fetch.method, body=fetch.body, headers=fetch.headers or None,
            callback=self.on_page, errback=self.on_error, meta=self._meta(fetch, job),
            dont_filter=True,  # the same tag page is legitimately fetched again (CSR fallback)
        )

    def _meta(self, fetch: Fetch, job: TagJob) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "tagarchive_job": {"platform": job.platform, "name": job.ref.name, "id": job.ref.id,
                               "step": fetch.step, "state": fetch.state},
            # adapters read every status themselves (461 captcha, 302 to a login page, …)
            "handle_httpstatus_all": True,
        }
        if fetch.render is not None:
            meta["tagarchive_render"] = fetch.render.to_meta()
            meta["playwright_page_goto_kwargs"] = {"wait_until": "domcontentloaded"}
        if fetch.sign is not None:
            # signed in a live page (crawler/downloader/signing.py), which sends the rendered
            # fallback instead, as built here, when signing is unavailable
            meta[SIGN_META] = sign_meta(fetch.sign, lambda f: self._meta(f, job))
        return meta

    @staticmethod
    def _job(meta: dict[str, Any]) -> TagJob:
        info = meta["tagarchive_job"]
        return TagJob(info["platform"], TagRef(name=info["name"], id=info["id"]))

    def on_page(self, response: Response) -> Iterator[Any]:
        info = response.meta["tagarchive_job"]
        job = self._job(response.meta)
        page = page_from_response(response)
        try:
            # anything but a PlatformError from the adapter is this page's layout_changed
            result = guarded_handle(self.adapters[job.platform], info["step"], page, job.ref,
                                    info["state"])
        except PlatformError as exc:
            if isinstance(exc, AdapterFailed):
                # one line, no traceback: where it broke, for whoever fixes the adapter
                logger.warning("%s %s: step %r at %s: %s", job.platform, job.key,
                               info["step"], exc.where or "?", exc.detail)
                self.crawler.stats.inc_value("tagarchive/adapter_failed")
            self.crawler.stats.inc_value(f"tagarchive/outcome/{exc.outcome}")
            send_outcome(self.crawler.signals, job.platform, job.key, exc.outcome, exc.detail)
            return
        except UnknownStep as exc:  # a request from another version (JOBDIR): not the page's
            self.crawler.stats.inc_value(f"tagarchive/outcome/{Outcome.ERROR}")
            send_outcome(self.crawler.signals, job.platform, job.key, Outcome.ERROR, str(exc))
            return
        if isinstance(result, Fetch):
            request = self._request(result, job)
            if request is not None:
                yield request
            return
        # how the page came: a downloader that signed or fetched it in a live page says so
        fetched_by = response.meta.get("tagarchive_fetched_by") or (
            "render" if page.rendered else "http")
        yield from self._items(result, job, response.meta.get("tagarchive_record"), fetched_by)

    def _items(self, result: TagResult, job: TagJob, record: tuple[str, str] | None,
               fetched_by: str) -> Iterator[Any]:
        """`record`: the (file, record id) the archive kept the page under, if it did."""
        tag = job.ref.normalized if job.ref.name is not None else None
        # one item per page through the pipelines (crawler/items.py PageItems)
        yield PageItems(items_from_result(result, tag, job.key, record, fetched_by))

    def on_error(self, failure: Failure) -> None:
        request = failed_request(failure)
        job = self._job(request.meta)
        error = failure.value
        if error is None:  # Twisted types it Optional; a Failure is always made from one
            raise TypeError("a download failure without its exception")
        if isinstance(error, LoginLost):  # not sent: the platform's login was lost mid-crawl
            send_outcome(self.crawler.signals, job.platform, job.key, Outcome.LOGIN_WALL,
                         error.detail)
            return
        if isinstance(error, PlatformCooling):  # not sent: the platform's breaker is open
            send_outcome(self.crawler.signals, job.platform, job.key, Outcome.COOLING_OFF,
                         error.detail)
            return
        if isinstance(error, IgnoreRequest) and "robots.txt" in str(error):
            send_outcome(self.crawler.signals, job.platform, job.key, Outcome.ROBOTS_DISALLOWED,
                         f"{request.url} is disallowed by robots.txt")
            return
        send_outcome(self.crawler.signals, job.platform, job.key, Outcome.ERROR,
                     error_detail(error))


def error_detail(error: BaseException) -> str:
    """`Name: message` of a download failure; some (ResponseDataLossError) carry no message, so
    the first line of their docstring says what happened instead of a bare trailing colon."""
    message = str(error).strip()
    if not message:
        doc = (type(error).__doc__ or "").strip().splitlines()
        message = doc[0].rstrip(".") if doc else "no detail"
    return f"{type(error).__name__}: {message}"[:300]


