"""Store: hand each item to `storage/` as a row of its dataset (a thin hand-off).

The store pipeline owns the run's DatasetWriter: it opens one when the run starts (`run_started`,
which the spider sends as it opens) and writes and closes it in close_spider (a worker's batch:
`run_ending`), before the run record writes the `runs` row on spider_closed. Others reach the
writer only through signals it answers: `item_rejected` (the validate pipeline's `rejects`
rows) and `flush_rows` (a backfill commit, the health checks). Before each flush it asks the
archive to publish the WARC files the rows point into (`publish_archive`).

It also gives each post row its language (`lang`, `lang_confidence`) and `hashtags`: the texts
go to a second process as pages are stored (crawler.text.langworker.LanguageWorker, started when
the spider opens), and the answers are written into the buffered rows before they are flushed,
so lingua's CPU and its model load stay off the crawl's thread. The texts are as stored, after
the privacy pipeline: its pseudonyms and redactions replace mentions, which both leave out
anyway. Without the process (not started, or it died) the rows are described here.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future
from typing import Any

from scrapy.crawler import Crawler
from twisted.internet import task

from crawler.items import PageItems, PostItem, SnapshotItem
from crawler.platforms.base import Outcome
from crawler.rules.rows import DATASET_OF, Rows
from crawler.signals import (
    flush_rows,
    item_rejected,
    publish_archive,
    run_ending,
    send_checked,
    send_outcome,
    storage_failed,
)
from crawler.text.language import Described
from crawler.text.langworker import LanguageWorker
from pipelines import RunPipeline, validated
from storage import DatasetWriter, StorageError

logger = logging.getLogger(__name__)
Row = dict[str, Any]


class RowTexts:
    """Post rows waiting for what their text says (language and hashtags): the texts go to a
    LanguageWorker in batches of BATCH (a hand-over per page woke the executor's threads often
    enough to cost the crawl's thread more than the work it moved), and label() writes the
    answers into the rows. What the adapter set on a post is kept."""

    BATCH = 256

    def __init__(self) -> None:
        self.worker = LanguageWorker()
        self._rows: list[tuple[Row, bool, bool]] = []  # (row, needs lang, needs hashtags)
        self._texts: list[str | None] = []
        # batches handed over: (rows, texts, the worker's answers to come)
        self._sent: deque[tuple[list[tuple[Row, bool, bool]], list[str | None],
                                Future[list[Described]] | None]] = deque()

    def add(self, posts: list[tuple[Any, Row]]) -> None:
        """Posts about to be buffered, with their rows."""
        for post, row in posts:
            if isinstance(post.text, str) and (post.lang is None or post.hashtags is None):
                self._rows.append((row, post.lang is None, post.hashtags is None))
                self._texts.append(post.text)
        if len(self._texts) >= self.BATCH:
            self._send()

    def _send(self) -> None:
        rows, texts = self._rows, self._texts
        self._rows, self._texts = [], []
        self._sent.append((rows, texts, self.worker.submit(texts)))

    def label(self) -> None:
        """Every waiting row's language and hashtags, written into the row. The writer calls
        this before a flush, holding its flush lock: no other flush reads these rows."""
        if self._texts:
            self._send()
        while self._sent:
            rows, texts, answers = self._sent[0]
            for (row, lang, tags), (found, confidence, hashtags) in zip(
                    rows, self.worker.answers(answers, texts), strict=True):
                if lang:
                    row["lang"], row["lang_confidence"] = found, confidence
                if tags:
                    row["hashtags"] = hashtags
            self._sent.popleft()


class StorePipeline(RunPipeline):
    """Last pipeline: buffers rows in the run's DatasetWriter, which flushes by rows and time
    (TAGARCHIVE_FLUSH_ROWS, TAGARCHIVE_FLUSH_SECONDS)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.rows = Rows()
        self.flush_rows = crawler.settings.getint("TAGARCHIVE_FLUSH_ROWS", 50_000)
        self.flush_seconds = crawler.settings.getfloat("TAGARCHIVE_FLUSH_SECONDS", 30.0)
        self._writer: DatasetWriter | None = None
        self._timer: task.LoopingCall | None = None
        self.texts = RowTexts()
        crawler.signals.connect(self.add_reject, signal=item_rejected)
        crawler.signals.connect(self.flush, signal=flush_rows)
        crawler.signals.connect(self.close_run, signal=run_ending)

    def start_run(self, run: Any) -> None:
        """The receiver of `run_started`: a writer for this run (its id names the files)."""
        self.close_run()  # a worker's previous batch closed it already: then nothing to do
        super().start_run(run)
        self._writer = DatasetWriter(run.out, run.run_id, flush_rows=self.flush_rows,
                                     flush_seconds=self.flush_seconds,
                                     before_flush=self._before_flush)

    @property
    def writer(self) -> DatasetWriter:
        if self._writer is None:
            raise RuntimeError("no run started: the spider sends run_started when it opens")
        return self._writer

    def open_spider(self) -> None:
        self.texts.worker.start()  # the process and its models load while the crawl starts
        if self.flush_seconds > 0:
            # bounds what a crash loses to one interval, even when no item arrives
            self._timer = task.LoopingCall(self._timed_flush)
            self._timer.start(self.flush_seconds, now=False)

    def close_spider(self) -> None:
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self.close_run()
        self.texts.worker.close()

    def close_run(self) -> None:
        """Write every buffered row and close the writer (idempotent); a failure is logged and
        reported (`storage_failed`), not raised: the run record names it."""
        if self._writer is None:
            return
        try:
            self._writer.close()
        except StorageError as exc:
            logger.error("storage failed: %s", exc)
            self.crawler.signals.send_catch_log(storage_failed, error=str(exc))

    def flush(self) -> None:
        """The receiver of `flush_rows`: write every buffered row now; StorageError if not."""
        if self._writer is not None:
            self._writer.flush()

    def add_reject(self, row: dict[str, Any]) -> None:
        """The receiver of `item_rejected`: buffer the row in `rejects`."""
        self.writer.add("rejects", row)

    def _before_flush(self) -> None:
        self.texts.label()
        # rows about to be written may point into open WARC files: the archive publishes them
        send_checked(self.crawler.signals, publish_archive)

    def _timed_flush(self) -> None:
        # rows that waited flush_seconds are written even when no item arrives; errors are
        # logged, and reported when the run closes (a full disk must not stop the timer)
        if self._writer is None:
            return
        try:
            self._writer.maybe_flush()
        except Exception as exc:
            logger.error("timed flush failed: %s", exc)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            # one add_many per dataset: the writer's lock and flush check once per page
            run_id = self.run_id
            rows: dict[str, list[Row]] = {}
            posts: list[tuple[Any, Row]] = []
            for one in item.items:
                dataset = DATASET_OF.get(type(one))
                if dataset is not None:
                    row = self.rows.row(one, dataset, run_id)
                    rows.setdefault(dataset, []).append(row)
                    if dataset == "posts":
                        posts.append((one, row))
            self.texts.add(posts)
            for dataset, batch in rows.items():
                self.writer.add_many(dataset, batch)
                self.stats.inc_value(f"tagarchive/stored/{dataset}", len(batch))
            for one in item.items:
                self._stored(one)
            return item
        dataset = DATASET_OF.get(type(item))
        if dataset is None:
            return item
        row = self.rows.row(item, dataset, self.run_id)
        if isinstance(item, PostItem):
            self.texts.add([(item, row)])
        self.writer.add(dataset, row)
        self.stats.inc_value(f"tagarchive/stored/{dataset}")
        self._stored(item)
        return item

    def _stored(self, item: Any) -> None:
        if isinstance(item, SnapshotItem):
            send_outcome(self.crawler.signals, validated(item.platform, "platform"),
                         item.job_key or validated(item.tag, "tag"), Outcome.STORED)
