"""The worker spider: the snapshot spider fed with tag jobs from Redis (scrapy-redis).

Jobs are taken in batches. A batch is one run: its own run id, Parquet files and `runs` row,
exactly as a `tagarchive crawl` of those tags. Its jobs stay in this worker's in-flight list
in Redis until the batch's rows are written; only then are they acknowledged. A batch starts
with `run_started` and ends with `run_ending` (the store pipeline and the archive write and
close what they hold for it) and `run_ended` (the run record writes its `runs` row), as a crawl
ends with close_spider and spider_closed. The follow-up requests of a job (pagination, signing
steps) stay in this process's own Scrapy scheduler, because how a tag ended is tracked
in-process (RunState); no Redis dupefilter is involved and every request keeps
dont_filter=True, so the same tag is crawled again in every round.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider
from scrapy.settings import BaseSettings
from scrapy_redis.spiders import RedisMixin
from twisted.internet import task

from crawler.extensions.runrecord import PENDING, RunState, TagJob
from crawler.platforms import UnknownPlatformError, platform_class
from crawler.platforms.base import Platform, PlatformError
from crawler.signals import run_ended, run_ending, run_started, send_outcome
from crawler.spiders.jobqueue import BadJob, JobQueue, RedisLost, parse_entry
from crawler.spiders.snapshot import SnapshotSpider
from crawler.text.tags import InvalidTagError, parse_tag_arg

logger = logging.getLogger(__name__)

# TAGARCHIVE_FLUSH_SECONDS in a worker: a batch's rows are written once, when the batch ends, and
# only then are its jobs acknowledged (a timed flush in between would only widen the duplicate
# window)
BATCH_FLUSH_SECONDS = 86_400.0


@dataclass
class BatchRunState(RunState):
    """A RunState for one batch of a long-running worker: its record counts only what the
    batch did (the crawler's stats keep adding up over the whole process)."""

    baseline: dict[str, Any] = field(default_factory=dict)

    def record(self, stats: dict[str, Any], finished_at: datetime, reason: str) -> dict[str, Any]:
        delta = {k: v - self.baseline.get(k, 0) if isinstance(v, int | float) else v
                 for k, v in stats.items()}
        return super().record(delta, finished_at, reason)


class _Adapters(dict[str, Platform]):
    """Platform adapters made on first use: a worker learns its platforms from the jobs."""

    def __init__(self, base_urls: dict[str, str]) -> None:
        super().__init__()
        self.base_urls = base_urls

    def __missing__(self, platform: str) -> Platform:
        adapter = self[platform] = platform_class(platform)(self.base_urls.get(platform))
        return adapter


class WorkerSpider(RedisMixin, SnapshotSpider):  # type: ignore[misc]  # scrapy-redis: untyped
    """Takes jobs from `<prefix>:jobs` when idle, a batch at a time (see the module doc)."""

    name = "worker"

    def __init__(self, run: RunState | None = None, queue: JobQueue | None = None,
                 worker_id: str = "", batch_size: int = 50, idle_exit: float = 0.0,
                 heartbeat: float = 5.0, poll: float = 1.0,
                 new_run: Callable[[list[TagJob]], RunState] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(run=run, **kwargs)
        if queue is None or new_run is None:
            raise ValueError("the worker spider is started by `tagarchive worker`")
        self.queue = queue
        self.worker_id = worker_id
        self.redis_batch_size = batch_size
        self.redis_key = queue.jobs_key
        self.server = queue.client  # scrapy-redis's setup_redis then keeps this client
        self.idle_exit = idle_exit
        self.heartbeat_interval = heartbeat
        self.poll_interval = poll
        self.new_run = new_run
        self.batch: list[tuple[bytes, TagJob]] = []
        self.batches = 0
        self.stopping_signal: int | None = None
        self.fatal: str | None = None  # why the worker stopped itself (Redis lost, storage)
        self._last_work = time.monotonic()
        self._loops: list[task.LoopingCall] = []
        self._beating: threading.Thread | None = None
        self._stop_beating = threading.Event()
        self._closing = False
        self.info = {"host": socket.gethostname(), "pid": os.getpid(),
                     "started_at": datetime.now(UTC).isoformat(), "state": "running"}

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        settings.set("TAGARCHIVE_FLUSH_SECONDS", BATCH_FLUSH_SECONDS, priority="cmdline")

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WorkerSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.adapters = _Adapters(crawler.settings.getdict("TAGARCHIVE_BASE_URLS"))
        spider.setup_redis(crawler)  # reads the key and batch size set above
        spider.fetch_data = spider._take
        crawler.signals.connect(spider.spider_idle, scrapy.signals.spider_idle)
        return spider

    # --- lifecycle ---

    def _on_opened(self) -> None:
        # no run yet: each batch is one, announced when it is taken (_take)
        self._beat()  # registered before the first job is taken
        # the heartbeat has its own thread: writing a batch blocks the reactor for a while
        # (Parquet, fsync), and a heartbeat that lapsed then would have the worker's jobs
        # requeued and crawled twice while it is alive
        self._beating = threading.Thread(target=self._beat_loop, daemon=True,
                                         name=f"heartbeat-{self.worker_id}")
        self._beating.start()
        loop = task.LoopingCall(self._poll)
        loop.start(self.poll_interval, now=True)
        self._loops.append(loop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if callable(previous):
                signal.signal(signum, self._signal_wrapper(previous))

    def _signal_wrapper(self, previous: Callable[..., Any]) -> Callable[..., Any]:
        def handler(signum: int, frame: Any) -> None:
            if self.stopping_signal is None:
                self.stopping_signal = signum
                logger.warning("worker %s: %s: taking no more jobs; finishing the batch",
                               self.worker_id, signal.Signals(signum).name)
            previous(signum, frame)  # Scrapy's graceful stop (a second signal: at once)

        return handler

    def _beat_loop(self) -> None:
        while not self._stop_beating.wait(self.heartbeat_interval):
            self._beat()

    def _beat(self) -> None:
        try:
            fresh = self.queue.beat(self.worker_id, self.info, self.heartbeat_interval)
            if not fresh and (self.batches or self.batch):
                logger.warning("worker %s: its heartbeat had expired; jobs it holds may "
                               "have been requeued and be crawled twice", self.worker_id)
            self.queue.reap()
        except RedisLost as exc:  # the batch's end retries, and gives up if it must
            logger.warning("heartbeat: %s", exc)

    def _poll(self) -> None:
        """Between Scrapy's own idle checks (every 5 s): end a finished batch, take the next."""
        if self._closing or self.crawler.engine is None or self.crawler.engine.spider is None:
            return
        try:
            idle = self.crawler.engine.spider_is_idle()
        except RuntimeError:  # the engine is closing
            return
        if idle:
            self._cycle()

    def spider_idle(self) -> None:  # replaces RedisMixin.spider_idle: batches, idle exit
        if self._cycle():
            raise DontCloseSpider

    def _cycle(self) -> bool:
        """End the finished batch, take the next one; True while the worker should go on."""
        if self._closing:
            return False
        try:
            if self.batch:
                self._finish_batch("finished")
            if self.fatal or self.stopping_signal is not None:
                return False
            self.schedule_next_requests()
        except RedisLost as exc:
            self._stop(str(exc))
            return False
        if self.batch:
            self._last_work = time.monotonic()
            return True
        return not (self.idle_exit and time.monotonic() - self._last_work >= self.idle_exit)

    def _stop(self, why: str) -> None:
        self.fatal = why
        logger.error("worker %s: %s", self.worker_id, why)
        from scrapy.utils.defer import deferred_from_coro

        deferred_from_coro(self.crawler.engine.close_spider_async(reason="redis_lost"))

    # --- taking jobs ---

    def _take(self, _key: str, count: int) -> list[bytes]:
        """scrapy-redis's fetch_data, made reliable: LMOVE into our in-flight list."""
        entries = self.queue.take(self.worker_id, count)
        if entries:
            self.batches += 1
            self.run = self.new_run([])
            if isinstance(self.run, BatchRunState):
                self.run.baseline = dict(self.crawler.stats.get_stats())
            self.crawler.signals.send_catch_log(run_started, run=self.run)
        return entries

    def make_request_from_data(self, data: bytes) -> list[scrapy.Request]:
        """A job entry -> the first request of that tag (scrapy-redis calls this per entry)."""
        try:
            entry = parse_entry(data)
            platform = platform_class(entry["platform"]).name
            ref = parse_tag_arg(entry["tag"])
        except (BadJob, UnknownPlatformError, InvalidTagError, ValueError) as exc:
            logger.error("worker %s: not a job, set aside in %s: %s", self.worker_id,
                         self.queue.dead_key, exc)
            self.queue.bury(self.worker_id, data, str(exc))
            return []
        job = TagJob(platform, ref)
        run = self.run
        run.add_job(job)
        watch = entry.get("watch")
        if len(run.jobs) == 1:
            run.watch = watch
        elif run.watch != watch:
            run.watch = None  # a batch of several watches' jobs belongs to none of them
        self.batch.append((data, job))
        try:
            fetch = self.adapters[platform].first_fetch(ref)
        except PlatformError as exc:
            send_outcome(self.crawler.signals, platform, job.key, exc.outcome, exc.detail)
            return []
        request = self._request(fetch, job)
        return [request] if request is not None else []

    # --- ending a batch ---

    def _finish_batch(self, reason: str) -> None:
        """Write the batch's rows and its `runs` row, then acknowledge its jobs in Redis.

        On a stop, jobs without a verdict go back to the queue instead and are left out of
        the record. If the rows cannot be written, nothing is acknowledged and the worker
        stops: the reaper hands the jobs to another worker once the heartbeat has expired.
        """
        run, batch = self.run, self.batch
        unfinished = [(e, j) for e, j in batch
                      if run.outcomes.get((j.platform, j.key), (PENDING, ""))[0] == PENDING]
        if reason == "shutdown" and unfinished:
            for _entry, job in unfinished:
                run.withdraw(job)
        else:
            unfinished = []
        begun = time.perf_counter()
        self.crawler.signals.send_catch_log(run_ending, reason=reason)  # rows and archive
        self.crawler.signals.send_catch_log(run_ended, reason=reason)  # then the runs row
        written = time.perf_counter() - begun
        if run.storage_error:
            self._closing_fatal(f"storage failed, jobs left in Redis: {run.storage_error}")
            return
        self.batch = []
        back = {id(e) for e, _ in unfinished}
        done = [e for e, _ in batch if id(e) not in back]
        self.queue.ack(self.worker_id, done)
        self.queue.hand_back(self.worker_id, [e for e, _ in unfinished])
        logger.info("worker %s: run %s: %d job(s) written in %.3f s, then acknowledged",
                    self.worker_id, run.run_id, len(done), written,
                    extra={"fields": {"run_id": run.run_id, "jobs": len(done),
                                      "write_s": round(written, 3)}})
        if unfinished:
            logger.warning("worker %s: handed %d unfinished job(s) back to the queue",
                           self.worker_id, len(unfinished))

    def _closing_fatal(self, why: str) -> None:
        self.batch = []
        self.fatal = why
        logger.error("worker %s: %s", self.worker_id, why)
        if not self._closing:
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(self.crawler.engine.close_spider_async(reason="storage_error"))

    def closed(self, reason: str) -> None:
        self._closing = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        try:
            if self.batch:
                self._finish_batch("shutdown" if reason != "finished" else reason)
        except RedisLost as exc:
            self.fatal = str(exc)
            logger.error("worker %s: %s", self.worker_id, exc)
        self._stop_beating.set()  # beating went on while the last batch was written
        if self._beating is not None:
            self._beating.join(timeout=30)
        with contextlib.suppress(RedisLost):
            self.queue.leave(self.worker_id, self.info)
