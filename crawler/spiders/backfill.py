"""The backfill spider: walks one tag's public timeline back to --since, page by page.

It only navigates, like the snapshot spider: the adapter says what a page shows and which page
comes next (`timeline_fetch`, `on_backfill…`), the `Walk` counts posts per day, and the spider
archives every page, yields its new posts (one `PageItems` per page) and, once the walk is done,
one activity row per window day marked with its coverage.

Each page is journaled when read, but the walk's state moves on only at a commit: every
TAGARCHIVE_FLUSH_SECONDS, after the last page and at close, the rows are flushed first (the
`flush_rows` signal, which the store pipeline, owner of the dataset writer, answers by writing
every buffered row or raising) and the state then vouches for the pages whose rows reached the
writer before that flush (`item_scraped`). So no state ever names a page whose rows could still
be lost, and `kill -9`, Ctrl-C and `--resume` lose and repeat nothing (docs/backfill.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.settings import BaseSettings
from twisted.internet import task
from twisted.python.failure import Failure

from crawler.downloader.breaker import PlatformCooling
from crawler.downloader.pages import failed_request, page_from_response
from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import ActivityItem, PageItems, PostItem
from crawler.platforms.base import Fetch, Outcome, Platform, PlatformError
from crawler.platforms.timeline import TimelinePage
from crawler.signals import (
    flush_rows,
    run_started,
    send_checked,
    send_outcome,
    storage_failed,
)
from crawler.spiders.fetchchoice import SIGN_META, choose_fetch, sign_meta
from crawler.spiders.walks import Walk, WalkStore
from storage import StorageError

logger = logging.getLogger(__name__)

SCROLL_MIDDLEWARE = "crawler.downloader.feedscroll.FeedScrollMiddleware"


class Progress(Protocol):
    """Where the spider reports how far the walk got (a display, or nothing)."""

    def update(self, walk: Walk) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Progress reporting switched off (stderr is not a terminal)."""

    def update(self, walk: Walk) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(slots=True)
class Unvouched:
    """A page read and journaled that no state vouches for yet."""

    batch: PageItems  # its items, as handed to the pipelines
    state: dict[str, Any]  # the walk as this page left it
    journal_bytes: int  # the journal's length with the page's line
    final: bool  # the walk's last page: its batch holds the activity rows too
    in_writer: bool = False  # the pipelines are done with it: its rows are in the writer


class BackfillSpider(scrapy.Spider):
    """One tag's timeline over a window of days, resumable page by page."""

    name = "backfill"

    def __init__(self, run: RunState | None = None, walk: Walk | None = None,
                 store: WalkStore | None = None, progress: Progress | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if run is None or walk is None or store is None:
            raise ValueError("the backfill spider is started by `tagarchive backfill`")
        self.run = run
        self.walk = walk
        self.store = store
        self.progress = progress or NoProgress()
        self.job = TagJob(walk.platform, walk.tag)
        self.adapters: dict[str, Platform] = {}
        self.browser_enabled = True
        self.signing_enabled = True
        self.commit_seconds = 0.0  # TAGARCHIVE_FLUSH_SECONDS
        self._committer: task.LoopingCall | None = None
        self.unvouched: list[Unvouched] = []
        self._commit_error: str | None = None

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        # rendered timelines (TikTok, Xiaohongshu) load further pages only when scrolled
        middlewares = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
        middlewares.setdefault(SCROLL_MIDDLEWARE, 960)  # after RenderMiddleware (950)
        settings.set("DOWNLOADER_MIDDLEWARES", middlewares, priority="spider")

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> BackfillSpider:
        from crawler.platforms import platform_class

        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.run.label_from(settings)
        spider.browser_enabled = settings.getbool("TAGARCHIVE_BROWSER_ENABLED", True)
        spider.signing_enabled = settings.getbool("TAGARCHIVE_SIGNING_ENABLED", True)
        spider.commit_seconds = settings.getfloat("TAGARCHIVE_FLUSH_SECONDS", 30.0)
        base_urls: dict[str, str] = settings.getdict("TAGARCHIVE_BASE_URLS")
        platform = spider.walk.platform
        spider.adapters[platform] = platform_class(platform)(base_urls.get(platform))
        crawler.signals.connect(spider._on_opened, scrapy.signals.spider_opened)
        crawler.signals.connect(spider._on_item_scraped, scrapy.signals.item_scraped)
        crawler.signals.connect(spider._on_item_error, scrapy.signals.item_error)
        return spider

    @property
    def adapter(self) -> Platform:
        return self.adapters[self.walk.platform]

    def _on_opened(self) -> None:
        self.crawler.signals.send_catch_log(run_started, run=self.run)
        if self.commit_seconds > 0:
            # bounds what a crash costs to one interval of pages fetched again (the store
            # pipeline and the archive publish on the same interval themselves)
            self._committer = task.LoopingCall(self.commit)
            self._committer.start(self.commit_seconds, now=False)

    def _on_item_scraped(self, item: Any) -> None:
        for page in self.unvouched:
            if page.batch is item:
                page.in_writer = True
                if page.final:
                    self.commit()
                return

    def _on_item_error(self, item: Any, failure: Failure) -> None:
        if any(page.batch is item for page in self.unvouched):
            # its rows may or may not be buffered: no later state may vouch for it
            error = f"storing a page failed: {type(failure.value).__name__}: {failure.value}"
            self.crawler.signals.send_catch_log(storage_failed, error=error)
            logger.error("backfill stopped: %s", error)
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(self.crawler.engine.close_spider_async(reason="storage_error"))

    def commit(self) -> bool:
        """Flush the writer, then move the state past every page whose rows were in it.

        Returns whether there was anything to commit. A failure is logged and leaves the state
        where it was: the next tick and close try again, and `--resume` fetches those pages again.
        """
        ready = 0
        while ready < len(self.unvouched) and self.unvouched[ready].in_writer:
            ready += 1
        if not ready:
            return False
        last = self.unvouched[ready - 1]
        try:
            # the store pipeline writes every buffered row, the archive files they point into
            # published first; a failure is raised here
            send_checked(self.crawler.signals, flush_rows)
            self.store.commit(last.state, last.journal_bytes, durable_rename=last.final)
        except (StorageError, OSError) as exc:
            self._commit_error = f"{type(exc).__name__}: {exc}"
            logger.error("backfill state not advanced past page %d: %s",
                         last.state["pages"], exc)
            return True
        del self.unvouched[:ready]
        self._commit_error = None
        return True

    async def start(self) -> AsyncIterator[scrapy.Request]:
        fetch = self.walk.next_fetch
        if fetch is None:
            return
        request = self._request(fetch)
        if request is not None:
            yield request

    def _request(self, asked: Fetch) -> scrapy.Request | None:
        # signed, or rendered instead, chosen as for a crawl (crawler/spiders/fetchchoice.py)
        fetch = choose_fetch(asked, signing=self.signing_enabled, browser=self.browser_enabled)
        if fetch is None:
            self._fail(Outcome.UNSUPPORTED,
                       "this timeline needs the browser, which is disabled (--no-browser)")
            return None
        return scrapy.Request(fetch.url, method=fetch.method, body=fetch.body,
                              headers=fetch.headers or None, callback=self.on_page,
                              errback=self.on_error, meta=self._meta(fetch), dont_filter=True)

    def _meta(self, fetch: Fetch) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "tagarchive_job": {"platform": self.job.platform, "name": self.job.ref.name,
                               "id": self.job.ref.id, "step": fetch.step, "state": fetch.state},
            "handle_httpstatus_all": True,
            # the archive's record says so: reparse tells timeline pages from snapshot pages
            "tagarchive_archive_meta": {"Command": "backfill"},
        }
        if fetch.render is not None:
            meta["tagarchive_render"] = fetch.render.to_meta()
            meta["playwright_page_goto_kwargs"] = {"wait_until": "domcontentloaded"}
            scroll = getattr(self.adapter, "timeline_scroll", None)
            if scroll and fetch.step == "backfill":  # the listing itself, not a lookup step
                meta["tagarchive_scroll"] = dict(scroll)
        if fetch.sign is not None:
            # signed in a live page; its rendered (and scrolled) fallback built here is sent
            # instead when signing is unavailable (crawler/downloader/signing.py)
            meta[SIGN_META] = sign_meta(fetch.sign, self._meta)
        return meta

    def _fail(self, outcome: str, detail: str) -> None:
        self.crawler.stats.inc_value(f"tagarchive/outcome/{outcome}")
        send_outcome(self.crawler.signals, self.job.platform, self.job.key, outcome, detail)

    def on_page(self, response: Response) -> Iterator[Any]:
        info = response.meta["tagarchive_job"]
        page = page_from_response(response)
        try:
            result = self.adapter.handle(info["step"], page, self.job.ref, info["state"])
        except PlatformError as exc:
            # the walk's state still names this page: --resume asks for it again
            self._fail(exc.outcome, exc.detail)
            return
        if not isinstance(result, TimelinePage):
            self._fail(Outcome.ERROR, f"step {info['step']!r} did not answer a timeline page")
            return
        # how the page came: a signing session says so, else the record type tells
        fetched_by = response.meta.get("tagarchive_fetched_by") or (
            "render" if page.rendered else "http")
        self.crawler.stats.inc_value(f"tagarchive/backfill/fetched_by/{fetched_by}")
        fresh, entries = self.walk.accept(result, fetched_by)
        record = response.meta.get("tagarchive_record")  # where the archive kept the page
        provenance = {"archive_file": record[0], "archive_record": record[1]} if record else {}
        batch = PageItems()
        for post in fresh:
            item = PostItem(**post, **provenance)
            item.tag = self._tag() or item.tag_display
            batch.items.append(item)
        self.crawler.stats.inc_value("tagarchive/backfill/pages")
        if self.walk.done:
            batch.items.extend(self._finish())
        # journaled now; vouched for by the state only once these rows are flushed (commit)
        self.unvouched.append(Unvouched(batch, self.walk.as_state(),
                                        self.store.journal(self.walk, entries, fetched_by),
                                        self.walk.done))
        yield batch
        self.progress.update(self.walk)
        if self.walk.next_fetch is not None:
            request = self._request(self.walk.next_fetch)
            if request is not None:
                yield request

    def _tag(self) -> str | None:
        """The tag's name for rows: as asked, or as the platform named an id-addressed tag."""
        return self.job.ref.normalized if self.job.ref.name is not None else self.walk.tag_display

    def _finish(self) -> Iterator[ActivityItem]:
        source = getattr(self.adapter, "timeline_source", "api")
        for row in self.walk.activity(datetime.now(UTC), source):
            item = ActivityItem(**row)
            item.tag = self._tag()
            item.job_key = self.job.key
            yield item
        send_outcome(self.crawler.signals, self.job.platform, self.job.key, Outcome.STORED)

    def on_error(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, PlatformCooling):  # not sent: the platform's breaker is open
            # as `crawl` names it; the walk's state still names this page, so `--resume`
            # after the cool-off (or with --ignore-cooloff) asks for it again
            self._fail(Outcome.COOLING_OFF, error.detail)
            return
        if isinstance(error, IgnoreRequest) and "robots.txt" in str(error):
            self._fail(Outcome.ROBOTS_DISALLOWED, f"{failed_request(failure).url} is disallowed by "
                       "robots.txt")
            return
        self._fail(Outcome.ERROR, f"{type(error).__name__}: {error}".strip()[:300])

    def closed(self, reason: str) -> None:
        """Vouch for the pages stored so far: the store pipeline closed the writer before this
        (close_spider), and the run record writes the `runs` row after it (spider_closed)."""
        if self._committer is not None and self._committer.running:
            self._committer.stop()
        self.progress.close()
        self.commit()
        if self._commit_error:
            self.crawler.signals.send_catch_log(
                storage_failed, error=f"the walk's state could not be advanced: "
                                      f"{self._commit_error}")
        logger.info("backfill %s: %d pages, %d posts", self.run.run_id, self.walk.pages,
                    self.walk.posts)
