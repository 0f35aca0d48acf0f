"""`tagarchive schedule`: one APScheduler 3 BlockingScheduler, one crawl subprocess per fire.

This module is the service: it keeps the job store in step with the config, fires watches
through the CrawlRunner (crawler/services/runner.py), and stores a `runs` row for the fires that
did not happen (skipped, missed; crawler/services/fires.py). The job store names the job
functions `fire` and `compact_now` by this module's path, so they stay here.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from crawler.services.alerts.service import after_fire
from crawler.services.fires import CATCH_UP, SCHEDULE, join_notes
from crawler.services.jobstore import job_store_path, service_lock_path
from crawler.services.locks import file_lock
from crawler.services.runner import CrawlRunner
from crawler.services.watchmodel import Config, Watch
from crawler.services.watchvalues import ConfigError, cron_trigger, format_duration

logger = logging.getLogger("tagarchive.schedule")

_SERVICE: ScheduleService | None = None

# What signal.signal() returns and takes back: a function, SIG_DFL/SIG_IGN, or None for a handler
# not set from Python.
_SignalHandler = Callable[[int, FrameType | None], object] | int | None


COMPACT_JOB = "__compaction__"


def compact_now(out: str) -> None:
    """The daily compaction job: past days of every dataset, one line in the log."""
    from storage.compact import compact

    report = compact(out)
    for name, result in report.datasets.items():
        if result.compacted:
            logger.info("compacted %s: %d files -> %d, %d duplicate rows dropped", name,
                        result.files_before, result.files_after, result.rows_dropped)
    for error in report.errors:
        logger.error("compaction: %s", error)


_RETENTION = threading.Lock()  # one prune at a time, whatever fires end together


def apply_retention(config: Config) -> None:
    """`[archive] max_age`: prune the raw archive after a run (docs/privacy.md). A failure is
    logged, never raised: the run it follows is already stored."""
    days = config.archive.max_age_days
    if days is None:
        return
    from storage.archive import prune

    with _RETENTION:
        try:
            report = prune(config.out, max_age_days=days)
        except Exception as exc:  # noqa: BLE001 - storage, S3 or a refused path: logged
            logger.error("retention: archive prune failed: %s", exc)
            return
    if report.removed:
        logger.info("retention: removed %d WARC files (%d bytes) older than %d days",
                    len(report.removed), report.removed_bytes, days)


def fire(watch: str, fingerprint: str = "") -> None:
    """The job function stored in the job store (importable by name, as APScheduler needs).

    `fingerprint` is the cadence the job was scheduled with; it is read at start-up, not here.
    """
    service = _SERVICE
    if service is None:
        raise RuntimeError("no schedule service is running in this process")
    service.on_fire(watch)


class ScheduleService:
    """The foreground service behind `tagarchive schedule run`."""

    def __init__(self, config: Config, runner: CrawlRunner | None = None,
                 install_signals: bool = True) -> None:
        self.config = config
        self.runner = runner or CrawlRunner(config)
        self.install_signals = install_signals
        self.started = threading.Event()
        self._stopping = threading.Event()
        self._scheduler: Any = None
        self._scheduled: dict[str, datetime] = {}  # job id -> run time being submitted
        self._catch_up: dict[str, str] = {}  # job id -> why its next fire is a catch-up

    def run(self) -> int:
        """Block until SIGTERM/SIGINT (or stop()); returns the exit code (0)."""
        global _SERVICE
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(service_lock_path(self.config)):
            self._scheduler = self._build()
            previous = self._install_signals()
            _SERVICE = self
            try:
                if not self._stopping.is_set():
                    self._scheduler.start()  # returns once shutdown() ran
            finally:
                self.runner.drain(self.config.service.stop_grace)
                _SERVICE = None
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        logger.info("scheduler stopped")
        return 0

    def stop(self) -> None:
        """Stop firing; running crawls get `stop_grace` to finish. A second call ends them now."""
        if self._stopping.is_set():
            logger.warning("stopping now: ending running crawls")
            self.runner.stop_now.set()
            return
        self._stopping.set()
        running = self.runner.running()
        logger.info("stopping: no new fires; %d crawl(s) running, waiting up to %s",
                    len(running), format_duration(self.config.service.stop_grace))
        # never from a signal handler directly: shutdown() takes locks the interrupted main
        # thread may hold
        threading.Thread(target=self._shutdown_scheduler, daemon=True).start()

    def _shutdown_scheduler(self) -> None:
        from apscheduler.schedulers import SchedulerNotRunningError

        with contextlib.suppress(SchedulerNotRunningError):
            self._scheduler.shutdown(wait=False)

    def _install_signals(self) -> dict[signal.Signals, _SignalHandler]:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[signal.Signals, _SignalHandler] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous

    def _build(self) -> Any:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            EVENT_SCHEDULER_STARTED,
        )
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.blocking import BlockingScheduler
        from sqlalchemy import create_engine
        from sqlalchemy.engine import URL

        engine = create_engine(URL.create("sqlite", database=str(job_store_path(self.config))))
        scheduler = BlockingScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)},
            executors={"default": _make_executor(self, self.config.service.max_parallel)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(self.config.service.misfire_grace) or 1},
            timezone=UTC,
        )
        scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        scheduler.add_listener(self._on_error, EVENT_JOB_ERROR)
        return scheduler

    # --- start-up: reconcile the job store with the config ---

    def _on_started(self, _event: Any) -> None:
        scheduler = self._scheduler
        now = datetime.now(UTC)
        wanted = {w.name: w for w in self.config.watches.values() if w.enabled}
        grace = int(self.config.service.misfire_grace) or 1
        self._schedule_compaction(scheduler)
        for job in scheduler.get_jobs():
            if job.id == COMPACT_JOB:
                continue
            watch = wanted.pop(job.id, None)
            if watch is None:
                scheduler.remove_job(job.id)
                logger.info("watch %s is no longer in the config: unscheduled", job.id)
                continue
            fingerprint = watch.cadence.fingerprint
            if job.kwargs.get("fingerprint") != fingerprint:
                scheduler.modify_job(job.id, kwargs={"fingerprint": fingerprint},
                                     misfire_grace_time=grace, coalesce=True, max_instances=1)
                job = scheduler.reschedule_job(job.id, trigger=watch.cadence.trigger())
                logger.info("watch %s: cadence is now %s; next run %s", job.id,
                            watch.cadence.describe(), _iso(job.next_run_time))
                continue
            if job.next_run_time is not None and job.next_run_time < now:
                missed = len(job._get_run_times(now))  # what coalescing will fold into one
                self._catch_up[job.id] = (f"{missed} fire(s) came due while the scheduler was "
                                          "down; coalesced into one catch-up run")
            scheduler.modify_job(job.id, misfire_grace_time=grace, coalesce=True,
                                 max_instances=1)
        for name, watch in wanted.items():
            options: dict[str, Any] = {}
            if watch.cadence.every is not None:
                # a new interval watch runs now (spread by its jitter), not one interval from now
                options["next_run_time"] = now + timedelta(
                    seconds=random.uniform(0, watch.cadence.jitter))
            job = scheduler.add_job(fire, trigger=watch.cadence.trigger(), id=name, name=name,
                                    args=[name], kwargs={"fingerprint": watch.cadence.fingerprint},
                                    replace_existing=True, **options)
            logger.info("watch %s scheduled %s; next run %s", name, watch.cadence.describe(),
                        _iso(job.next_run_time))
        logger.info("scheduler started: %d watch(es), state in %s, crawls write to %s",
                    len([w for w in self.config.watches.values() if w.enabled]),
                    self.config.state_dir, self.config.out)
        self.started.set()
        if self._stopping.is_set():
            threading.Thread(target=self._shutdown_scheduler, daemon=True).start()

    def _schedule_compaction(self, scheduler: Any) -> None:
        """The daily compaction of `service.compact`, kept in step with the config."""
        expr = self.config.service.compact
        if not expr:
            if scheduler.get_job(COMPACT_JOB) is not None:
                scheduler.remove_job(COMPACT_JOB)
            return
        job = scheduler.add_job(compact_now, trigger=cron_trigger(expr, UTC), id=COMPACT_JOB,
                                name="compaction", args=[str(self.config.out)],
                                replace_existing=True, coalesce=True, max_instances=1,
                                misfire_grace_time=int(self.config.service.misfire_grace) or 1)
        logger.info("compaction scheduled (%s UTC); next run %s", expr,
                    _iso(getattr(job, "next_run_time", None)))  # pending until started

    # --- fires and the events of fires that did not happen ---

    def note_submitted(self, job_id: str, run_time: datetime) -> None:
        """Remember the run time a job is being submitted for (on_fire reads it)."""
        self._scheduled[job_id] = run_time

    def on_fire(self, job_id: str) -> None:
        """A job came due: fire its watch, or record it skipped while the service stops."""
        scheduled_at = self._scheduled.pop(job_id, None)
        note = self._catch_up.pop(job_id, None)
        trigger = CATCH_UP if note else SCHEDULE
        try:
            watch = self.config.watch(job_id)
        except ConfigError:
            logger.error("job %s has no watch in the config", job_id)
            return
        if self._stopping.is_set():
            self.runner.record_event(watch, trigger, "skipped", "the scheduler was stopping",
                                     scheduled_at=scheduled_at, log=True)
            return
        with self.runner.in_flight():  # the service waits for all of it when it stops
            result = self.runner.fire(job_id, trigger, note, scheduled_at)
            apply_retention(self.config)
            after_fire(self.config, result)  # [[alert]]s, from the Parquet the run left

    def _on_skipped(self, event: Any) -> None:
        watch = self._watch(event.job_id)
        if watch is None:
            return
        running = self.runner.running(watch.name)
        due = _iso(event.scheduled_run_times[-1])
        # no crawl of it running: this scheduler was still handling the previous fire (its
        # lock, its record, its alerts), which a loaded machine can make outlast the interval
        reason = (f"the previous run ({', '.join(running)}) was still going when the fire "
                  f"due at {due} came" if running else
                  f"the previous fire of this watch was still being handled when the fire "
                  f"due at {due} came")
        self.runner.record_event(watch, SCHEDULE, "skipped", reason,
                                 scheduled_at=event.scheduled_run_times[-1], log=True)

    def _on_missed(self, event: Any) -> None:
        self._scheduled.pop(event.job_id, None)
        watch = self._watch(event.job_id)
        if watch is None:
            return
        late = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
        reason = (f"the fire due at {_iso(event.scheduled_run_time)} came {format_duration(late)}"
                  f" late, beyond misfire_grace "
                  f"({format_duration(self.config.service.misfire_grace)})")
        note = self._catch_up.pop(event.job_id, None)
        trigger = CATCH_UP if note else SCHEDULE
        self.runner.record_event(watch, trigger, "missed", join_notes(note, reason) or reason,
                                 scheduled_at=event.scheduled_run_time, log=True)

    def _on_error(self, event: Any) -> None:
        logger.error("fire of %s failed: %s", event.job_id, event.exception,
                     extra={"fields": {"watch": event.job_id}})

    def _watch(self, job_id: str) -> Watch | None:
        try:
            return self.config.watch(job_id)
        except ConfigError:
            return None


def _make_executor(service: ScheduleService, workers: int) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor

    class _NotingExecutor(ThreadPoolExecutor):  # type: ignore[misc]  # apscheduler ships no types
        """Tells the service which run time each fire is for (APScheduler does not pass it)."""

        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            service.note_submitted(job.id, run_times[-1])
            super()._do_submit_job(job, run_times)

    return _NotingExecutor(max_workers=workers)


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


