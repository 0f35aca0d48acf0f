"""The backfill spider: walks one tag's public timeline back to --since, page by page.

It only navigates, like the snapshot spider: the adapter says what a page shows and which page
comes next (`timeline_fetch`, `on_backfill…`), the `Walk` counts posts per day, and the spider
archives every page, yields its new posts (one `PageItems` per page) and, once the walk is done,
one activity row per window day marked with its coverage.

Each page is journaled when read, but the walk's state moves on only at a commit: every
TAGARCHIVE_FLUSH_SECONDS, after the last page and at close, the dataset writer is flushed first
and the state then vouches for the pages whose rows reached the writer before that flush
(`item_scraped`). So no state ever names a page whose rows could still be lost, and `kill -9`,
Ctrl-C and `--resume` lose and repeat nothing (docs/backfill.md).
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

from crawler.downloader.pages import captured_dict, failed_request, page_from_response
from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import ActivityItem, PageItems, PostItem
from crawler.platforms.base import Fetch, Outcome, Page, Platform, PlatformError
from crawler.platforms.timeline import TimelinePage
from crawler.signals import run_started, send_outcome, tag_outcome
from crawler.spiders.walks import Walk, WalkStore
from storage import StorageError
from storage.archive import RecordRef

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
        self._flusher: task.LoopingCall | None = None
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
        base_urls: dict[str, str] = settings.getdict("TAGARCHIVE_BASE_URLS")
        platform = spider.walk.platform
        spider.adapters[platform] = platform_class(platform)(base_urls.get(platform))
        crawler.signals.connect(spider._on_opened, scrapy.signals.spider_opened)
        crawler.signals.connect(spider._on_item_scraped, scrapy.signals.item_scraped)
        crawler.signals.connect(spider._on_item_error, scrapy.signals.item_error)
        crawler.signals.connect(spider.record_outcome, signal=tag_outcome)
        return spider

    def record_outcome(self, platform: str, key: str, outcome: str, detail: str = "") -> None:
        """The receiver of `tag_outcome`: the run this spider holds keeps the outcome."""
        self.run.set_outcome(platform, key, outcome, detail)

    @property
    def adapter(self) -> Platform:
        return self.adapters[self.walk.platform]

    def _on_opened(self) -> None:
        self.crawler.signals.send_catch_log(run_started, run=self.run)
        if self.run.flush_seconds > 0:
            # bounds what a crash costs to one interval of pages fetched again
            self._flusher = task.LoopingCall(self._tick)
            self._flusher.start(self.run.flush_seconds, now=False)

    def _tick(self) -> None:
        if not self.commit():
            self.run.timed_flush()  # nothing to vouch for: rejects and archive files as usual

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
            self.run.storage_error = self.run.storage_error or (
                f"storing a page failed: {type(failure.value).__name__}: {failure.value}")
            logger.error("backfill stopped: %s", self.run.storage_error)
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
            # also publishes the archive files the rows point into (RunState._publish_archive)
            self.run.writer.flush()
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

    def _request(self, fetch: Fetch) -> scrapy.Request | None:
        if fetch.render is not None and not self.browser_enabled:
            self._fail(Outcome.UNSUPPORTED,
                       "this timeline needs the browser, which is disabled (--no-browser)")
            return None
        meta: dict[str, Any] = {
            "tagarchive_job": {"platform": self.job.platform, "name": self.job.ref.name,
                               "id": self.job.ref.id, "step": fetch.step, "state": fetch.state},
            "handle_httpstatus_all": True,
        }
        if fetch.render is not None:
            meta["tagarchive_render"] = fetch.render.to_meta()
            meta["playwright_page_goto_kwargs"] = {"wait_until": "domcontentloaded"}
            scroll = getattr(self.adapter, "timeline_scroll", None)
            if scroll and fetch.step == "backfill":  # the listing itself, not a lookup step
                meta["tagarchive_scroll"] = dict(scroll)
        return scrapy.Request(fetch.url, method=fetch.method, body=fetch.body,
                              headers=fetch.headers or None, callback=self.on_page,
                              errback=self.on_error, meta=meta, dont_filter=True)

    def _fail(self, outcome: str, detail: str) -> None:
        self.crawler.stats.inc_value(f"tagarchive/outcome/{outcome}")
        send_outcome(self.crawler.signals, self.job.platform, self.job.key, outcome, detail)

    def on_page(self, response: Response) -> Iterator[Any]:
        info = response.meta["tagarchive_job"]
        page = page_from_response(response)
        ref = self._archive(page, info, response.body)
        try:
            result = self.adapter.handle(info["step"], page, self.job.ref, info["state"])
        except PlatformError as exc:
            # the walk's state still names this page: --resume asks for it again
            self._fail(exc.outcome, exc.detail)
            return
        if not isinstance(result, TimelinePage):
            self._fail(Outcome.ERROR, f"step {info['step']!r} did not answer a timeline page")
            return
        fresh, entries = self.walk.accept(result)
        provenance = {"archive_file": ref.file, "archive_record": ref.record_id} if ref else {}
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
                                        self.store.journal(self.walk, entries), self.walk.done))
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

    def _archive(self, page: Page, info: dict[str, Any], body: bytes) -> RecordRef | None:
        """Keep what was received as WARC, exactly as the snapshot spider does."""
        archive = self.run.archive
        if archive is None:
            return None
        meta = {"Platform": self.job.platform,
                "Tag": {"name": self.job.ref.name, "id": self.job.ref.id},
                "Step": info["step"], "State": info["state"], "Run-Id": self.run.run_id,
                # reparse tells timeline pages (TimelinePage answers) from snapshot pages by this
                "Command": "backfill"}
        try:
            if page.rendered:
                return archive.write_rendered(
                    self.job.platform, url=page.url, dom=page.text, observed_at=page.observed_at,
                    captured=[captured_dict(c) for c in page.captured], meta=meta)
            return archive.write_response(self.job.platform, url=page.url, status=page.status,
                                          headers=page.headers, body=body,
                                          observed_at=page.observed_at, meta=meta)
        except StorageError as exc:
            self.run.storage_error = str(exc)
            logger.error("archive failed: %s", exc)
            return None

    def on_error(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, IgnoreRequest) and "robots.txt" in str(error):
            self._fail(Outcome.ROBOTS_DISALLOWED, f"{failed_request(failure).url} is disallowed by "
                       "robots.txt")
            return
        self._fail(Outcome.ERROR, f"{type(error).__name__}: {error}".strip()[:300])

    def closed(self, reason: str) -> None:
        """Vouch for the pages stored so far, then write the run record last (pipelines are
        closed by now) and close the writer."""
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self.progress.close()
        run = self.run
        self.commit()
        if self._commit_error and not run.storage_error:
            run.storage_error = f"the walk's state could not be advanced: {self._commit_error}"
        run.close_reason = reason
        run.finish()
        record = run.record(self.crawler.stats.get_stats(), datetime.now(UTC), reason)
        run.store_record(record)
        logger.info("backfill %s %s: %d pages, %d posts", run.run_id, record["verdict"],
                    self.walk.pages, self.walk.posts)
