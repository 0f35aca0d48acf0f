"""The raw archive: every page a spider asked for, kept as WARC as it is received.

One owner for the run's ArchiveWriter (storage/archive.py): this extension opens it when the run
starts and closes it when the run ends. It archives on Scrapy's `response_received`, after every
downloader middleware, so a rendered page is kept with the responses it captured; the spider
finds where in `response.meta` (`tagarchive_record`), and the page's observation time beside it
(`tagarchive_observed_at`), so the rows it yields point into the archive and carry the same time
as the record (reparse rebuilds them from it). A response a signing session signed or fetched
says so in `WARC-Tagarchive-Fetched-By` (`signed_http`, `in_page_fetch`); a plain or rendered
one carries no such header (its record type tells them apart).
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from twisted.internet import task

from crawler import clock
from crawler.logredact import redact
from crawler.signals import publish_archive, run_ending, run_started, storage_failed
from storage import StorageError
from storage.archive import ArchiveWriter

logger = logging.getLogger(__name__)


class ArchiveExtension:
    """A Scrapy extension (EXTENSIONS in crawler/settings.py); TAGARCHIVE_ARCHIVE_ENABLED off
    (`--no-archive`) disables it.

    Open files are published every TAGARCHIVE_FLUSH_SECONDS, so a crash loses at most one
    interval, and whenever the store pipeline is about to write rows (`publish_archive`), so a
    row never points into a file readers cannot see.
    """

    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.out: str | None = None
        self.run_id: str | None = None
        self.writer: ArchiveWriter | None = None  # made at the run's first page
        self._timer: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArchiveExtension:
        settings = crawler.settings
        if not settings.getbool("TAGARCHIVE_ARCHIVE_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_ARCHIVE_ENABLED is off (--no-archive)")
        extension = cls(crawler, settings.getfloat("TAGARCHIVE_FLUSH_SECONDS", 30.0))
        connect = crawler.signals.connect
        connect(extension.start_run, signal=run_started)
        connect(extension.archive, signal=scrapy_signals.response_received)
        connect(extension.publish, signal=publish_archive)
        connect(extension.close, signal=run_ending)
        connect(extension.spider_opened, signal=scrapy_signals.spider_opened)
        connect(extension.spider_closed, signal=scrapy_signals.spider_closed)
        return extension

    def start_run(self, run: Any) -> None:
        """The receiver of `run_started`: archive for this run (its id names the files)."""
        self.close()  # a worker's previous batch closed it already: then nothing to do
        self.out, self.run_id, self.writer = run.out, run.run_id, None

    def spider_opened(self) -> None:
        if self.interval > 0:
            # bounds what a crash loses to one interval, even when no row is written
            self._timer = task.LoopingCall(self._timed_publish)
            self._timer.start(self.interval, now=False)

    def spider_closed(self) -> None:
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self.close()

    def archive(self, response: Response) -> None:
        """The receiver of `response_received`: keep a page a spider asked for (robots.txt and
        sign-in responses carry no job), and say where in its meta."""
        job = response.meta.get("tagarchive_job")
        if job is None or self.out is None or self.run_id is None:
            return
        observed_at = clock.now()
        response.meta["tagarchive_observed_at"] = observed_at
        meta = {"Platform": job["platform"], "Tag": {"name": job["name"], "id": job["id"]},
                "Step": job["step"], "State": job["state"], "Run-Id": self.run_id,
                # a backfill's pages say so: reparse tells timeline pages from snapshot pages
                **(response.meta.get("tagarchive_archive_meta") or {})}
        fetched_by = response.meta.get("tagarchive_fetched_by")
        if fetched_by:
            # signed_http or in_page_fetch (crawler/downloader/signing.py): nothing else in the
            # record tells such a response from a plain one, and reparse labels it as it came
            meta["Fetched-By"] = fetched_by
        try:
            if self.writer is None:
                self.writer = ArchiveWriter(self.out, self.run_id, redact=redact)
            if response.meta.get("tagarchive_rendered"):
                ref = self.writer.write_rendered(
                    job["platform"], url=response.url, dom=_text(response),
                    observed_at=observed_at, meta=meta,
                    captured=list(response.meta.get("tagarchive_captured") or ()))
            else:
                ref = self.writer.write_response(
                    job["platform"], url=response.url, status=response.status,
                    headers=_headers(response), body=response.body, observed_at=observed_at,
                    meta=meta)
        except StorageError as exc:
            logger.error("archive failed: %s", exc)
            self.crawler.signals.send_catch_log(storage_failed, error=str(exc))
            return
        response.meta["tagarchive_record"] = (ref.file, ref.record_id)

    def publish(self) -> None:
        """The receiver of `publish_archive`: publish every open file; StorageError if not."""
        if self.writer is not None:
            self.writer.rotate()

    def close(self) -> None:
        """Publish what is open and close (the run's end; a worker's batch: `run_ending`); a
        failure is logged and reported (`storage_failed`), and the next publish retries."""
        if self.writer is None:
            return
        try:
            self.writer.close()
        except StorageError as exc:
            logger.error("storage failed: %s", exc)
            self.crawler.signals.send_catch_log(storage_failed, error=str(exc))

    def _timed_publish(self) -> None:
        # errors are logged, and reported when the run closes (a full disk must not stop this)
        if self.writer is None:
            return
        try:
            self.writer.rotate()
        except Exception as exc:
            logger.error("timed flush failed: %s", exc)


def _headers(response: Response) -> dict[str, str]:
    """The response's headers as the adapters see them (crawler/downloader/pages.py)."""
    return {k.decode("latin-1").lower(): v[0].decode("latin-1") if v else ""
            for k, v in response.headers.items()}


def _text(response: Response) -> str:
    try:
        text: str = response.text
    except AttributeError:  # not a TextResponse (an empty or binary body)
        text = response.body.decode("utf-8", errors="replace")
    return text
