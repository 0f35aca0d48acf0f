"""`tagarchive schedule`: one APScheduler 3 BlockingScheduler, one crawl subprocess per fire.

The scheduler never imports Scrapy: a Twisted reactor cannot restart (ENGINEERING-NOTES 2.1), so
every fire runs `python -m crawler.cli crawl ...` in its own process group with a time limit.
The crawl inherits the watch's lock, so a crawl orphaned by a killed scheduler keeps its watch
busy until it ends.
Every fire ends with a row in `runs`: the crawl writes its own, and for the fires where it could
not (skipped, missed, timed out, crashed) the scheduler writes one with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from crawler.extensions.logs import JsonFormatter
from crawler.services.watchconfig import Config, ConfigError, Watch, cron_trigger, format_duration
from storage import DatasetWriter, StorageError, new_run_id, utc_day

logger = logging.getLogger("tagarchive.schedule")
crawl_logger = logging.getLogger("tagarchive.crawl")

SCHEDULE = "schedule"  # the watch's cadence came round
CATCH_UP = "catch-up"  # the one coalesced run for fires due while the scheduler was down
RUN_NOW = "run-now"  # `tagarchive schedule run-now`
CRON = "cron"  # a line of `tagarchive crontab`

_TAIL_LINES = 20  # crawl output kept to explain a crash in one line


@dataclass
class FireResult:
    """How one fire ended: what is logged, and what the scheduler stores if the crawl did not."""

    run_id: str
    watch: str
    trigger: str
    verdict: str
    exit_code: int | None = None
    health: str | None = None
    reason: str | None = None
    duration_s: float = 0.0
    snapshots: int | None = None
    rejects: int | None = None
    findings: int = 0
    recorded_by: str = "crawl"
    scheduled_at: datetime | None = None  # the fire time the scheduler meant (None: run-now)


@dataclass
class _Crawl:
    """One running crawl process."""

    watch: str
    run_id: str
    proc: subprocess.Popen[str]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    ended_by: str | None = None  # "timeout" or "stopping" once the scheduler ends it
    lock: threading.Lock = field(default_factory=threading.Lock)


def default_command() -> list[str]:
    """This interpreter running the CLI module: the crawl gets exactly this installation."""
    return [sys.executable, "-m", "crawler.cli"]


class LockBusy(Exception):
    """Another process holds a scheduler lock (the state directory, or one watch)."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[IO[str]]:
    """An exclusive, non-blocking flock on `path`; LockBusy names the pid that holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the with block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise LockBusy(handle.read().strip() or "?") from None
        _name_holder(handle, os.getpid())
        yield handle
    finally:
        handle.close()  # closing releases the flock


def _name_holder(handle: IO[str], pid: int) -> None:
    """Write `pid` into a lock file this process holds (LockBusy reports it to others)."""
    handle.seek(0)
    handle.truncate()
    handle.write(str(pid))
    handle.flush()


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock at `path`, or None when nobody does."""
    try:
        with file_lock(path):
            return None
    except LockBusy as exc:
        text = str(exc)
        return int(text) if text.isdigit() else -1
    except OSError:
        return None


def find_record(out: Path, run_id: str) -> dict[str, Any] | None:
    """The `runs` row a crawl wrote for `run_id`, found by its file name (unique per run)."""
    import pyarrow.parquet as pq

    from storage.fs import is_remote

    if is_remote(out):  # s3://: no glob; the runs dataset filtered by run id
        import pyarrow.dataset as ds

        from storage.reading import open_dataset

        found = open_dataset(out, "runs").to_table(filter=ds.field("run_id") == run_id)
        return found.slice(0, 1).to_pylist()[0] if found.num_rows else None
    for path in sorted(Path(out, "runs").glob(f"date=*/part-{run_id}-*.parquet")):
        rows = pq.read_table(path).to_pylist()
        # the writer names a file after the run that wrote it: its row is this run's record
        return next((r for r in rows if r.get("run_id") == run_id), rows[0] if rows else None)
    return None


class CrawlRunner:
    """Runs a watch's crawl as a subprocess with a time limit, and sees that `runs` has its row."""

    def __init__(self, config: Config, environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.command = list(config.service.crawl_command) or default_command()
        self.environ = dict(os.environ) if environ is None else environ
        self.stop_now = threading.Event()  # a second SIGTERM: end running crawls at once
        self._active: dict[str, _Crawl] = {}
        self._fires = 0
        self._cond = threading.Condition()

    # --- one fire ---

    def fire(self, name: str, trigger: str, note: str | None = None,
             scheduled_at: datetime | None = None) -> FireResult:
        """Run one crawl of a watch now; returns how it ended (already logged and stored)."""
        with self._cond:
            self._fires += 1
        try:
            result = self._fire(name, trigger, note)
            result.scheduled_at = scheduled_at
            log_result(result)
            return result
        finally:
            with self._cond:
                self._fires -= 1
                self._cond.notify_all()

    def _fire(self, name: str, trigger: str, note: str | None) -> FireResult:
        watch = self.config.watch(name)
        run_id = new_run_id()
        argv = self.config.crawl_args(
            watch, {"TAGARCHIVE_RUN_ID": run_id, "TAGARCHIVE_TRIGGER": trigger})
        started_at = datetime.now(UTC)
        if self.config.distributed is not None:  # the workers crawl: queue the jobs
            return self._enqueue(watch, run_id, trigger, note)
        try:
            with file_lock(self.config.state_dir / "locks" / f"{name}.lock") as held:
                return self._spawn(watch, run_id, argv, trigger, note, started_at, held)
        except LockBusy as exc:
            return self.record_event(watch, trigger, "skipped",
                                     f"another run of this watch is still going (pid {exc})",
                                     argv=argv, run_id=run_id)

    def _enqueue(self, watch: Watch, run_id: str, trigger: str, note: str | None) -> FireResult:
        """Distributed mode: one job per (platform, tag) in Redis, the round named by run_id.
        Its row says how many were queued; the workers' own rows say how they ended."""
        from crawler.services.jobqueue import JobQueue, RedisLost, display_url, enqueue_tags

        dist = self.config.distributed
        assert dist is not None
        argv = ["enqueue", ",".join(watch.platforms), *watch.tag_keys, "--redis",
                display_url(dist.redis), "--queue", dist.queue, "--round", run_id]
        try:
            queue = JobQueue.from_url(dist.redis, dist.queue)
            count = enqueue_tags(queue, watch.platforms, watch.tag_keys, run_id,
                                 watch=watch.name, trigger=trigger)
        except RedisLost as exc:
            return self.record_event(watch, trigger, "error", _join(note, str(exc)) or "",
                                     argv=argv, run_id=run_id, exit_code=3)
        return self.record_event(
            watch, trigger, "ok",
            _join(note, f"queued {count} job(s) on {queue.url} ({queue.jobs_key}) "
                        "for the workers") or "",
            argv=argv, run_id=run_id, exit_code=0)

    def _spawn(self, watch: Watch, run_id: str, argv: list[str], trigger: str,
               note: str | None, started_at: datetime, held: IO[str]) -> FireResult:
        try:
            env = {**self.environ, **watch_environment(self.config, watch, self.environ)}
        except ConfigError as exc:
            return self.record_event(watch, trigger, "error", str(exc), argv=argv, run_id=run_id)
        begun = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*self.command, *argv], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                # its own process group: a terminal's Ctrl-C reaches only the scheduler, which
                # decides when the crawl stops, and a kill reaches the browser it started too
                start_new_session=True,
                # the watch's flock belongs to this open file, and the crawl inherits it: the
                # watch stays busy until the crawl dies, even if this scheduler is killed first
                # and a restarted one fires the watch again (that fire is recorded skipped)
                pass_fds=(held.fileno(),))
        except OSError as exc:
            return self.record_event(watch, trigger, "error",
                                     f"cannot start the crawl: {exc.strerror}: {self.command[0]}",
                                     argv=argv, run_id=run_id)
        with contextlib.suppress(OSError):  # only the pid a skipped fire names; never fatal
            _name_holder(held, proc.pid)  # the crawl, which may outlive this scheduler
        crawl = _Crawl(watch.name, run_id, proc)
        relay = threading.Thread(target=self._relay, args=(crawl,), daemon=True)
        relay.start()
        with self._cond:
            self._active[run_id] = crawl
        logger.debug("started run %s of %s (pid %d)", run_id, watch.name, proc.pid,
                     extra={"fields": {"run_id": run_id, "watch": watch.name, "pid": proc.pid}})
        try:
            try:
                code = proc.wait(timeout=watch.timeout)
            except subprocess.TimeoutExpired:
                self.end(crawl, "timeout")
                code = proc.wait()
            relay.join(timeout=5)
        finally:
            with self._cond:
                self._active.pop(run_id, None)
            if proc.stdout is not None:
                proc.stdout.close()
        duration = time.monotonic() - begun
        try:
            record = find_record(self.config.out, run_id)
        except (OSError, ValueError) as exc:  # a damaged file: say so, and keep our own row
            logger.warning("cannot read the record of run %s: %s", run_id, exc)
            record = None
        if record is not None:
            return FireResult(
                run_id=run_id, watch=watch.name, trigger=trigger, verdict=record["verdict"],
                exit_code=code, health=record.get("health"),
                reason=_join(note, record.get("reason"),
                             f"ended at the {_limit(watch)} time limit"
                             if crawl.ended_by == "timeout" else None),
                duration_s=duration,
                snapshots=record.get("snapshots"), rejects=record.get("rejects"),
                findings=len(record.get("findings") or ()))
        verdict, reason = self._explain(crawl, code, watch)
        return self.record_event(watch, trigger, verdict, _join(note, reason), argv=argv,
                                 run_id=run_id, started_at=started_at, exit_code=code,
                                 pid=proc.pid, duration_s=duration)

    @staticmethod
    def _explain(crawl: _Crawl, code: int, watch: Watch) -> tuple[str, str]:
        """Verdict and reason for a crawl that ended without writing its own record."""
        last = next((line for line in reversed(crawl.tail) if line.strip()), "")
        said = f": {last[-300:]}" if last else ""
        if crawl.ended_by == "timeout":
            return "timeout", f"ended at the {_limit(watch)} time limit{said}"
        if crawl.ended_by == "stopping":
            return "interrupted", "the scheduler stopped and ended the crawl"
        if code < 0:
            return "crashed", f"killed by {signal.Signals(-code).name}{said}"
        if code in (2, 3):  # usage or environment error, already one line from the CLI
            return "error", f"exit {code}{said}"
        return "crashed", f"exit {code} without a run record{said}"

    def _relay(self, crawl: _Crawl) -> None:
        """The crawl's own output, line by line, into this process's log (JSON if asked)."""
        assert crawl.proc.stdout is not None
        fields = {"run_id": crawl.run_id, "watch": crawl.watch}
        for raw in crawl.proc.stdout:
            line = raw.rstrip()
            if line:
                crawl.tail.append(line)
                crawl_logger.info("%s", line, extra={"fields": fields})

    # --- ending crawls ---

    def end(self, crawl: _Crawl, why: str) -> None:
        """Ask a crawl to stop (SIGTERM: it writes what it has), then kill its process group."""
        with crawl.lock:
            if crawl.ended_by is not None or crawl.proc.poll() is not None:
                return
            crawl.ended_by = why
            with contextlib.suppress(ProcessLookupError):
                os.kill(crawl.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.service.kill_grace
        while time.monotonic() < deadline and not self.stop_now.is_set():
            try:
                crawl.proc.wait(timeout=0.1)
                return
            except subprocess.TimeoutExpired:
                continue
        # still running, so the group is still ours: the crawl and any browser it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(crawl.proc.pid, signal.SIGKILL)
        crawl.proc.wait()

    def end_all(self, why: str) -> None:
        """End every running crawl, in parallel."""
        with self._cond:
            crawls = list(self._active.values())
        threads = [threading.Thread(target=self.end, args=(c, why)) for c in crawls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def running(self, watch: str | None = None) -> list[str]:
        """Run ids of the crawls running now (of one watch, or all)."""
        with self._cond:
            return [c.run_id for c in self._active.values() if watch in (None, c.watch)]

    def drain(self, grace: float) -> None:
        """Let running crawls finish for up to `grace` seconds, end the rest, wait for rows."""
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline and not self.stop_now.is_set():
            time.sleep(0.05)
        if self.running():
            logger.warning("ending %d crawl(s) still running after %s", len(self.running()),
                           format_duration(grace))
            self.end_all("stopping")
        with self._cond:  # the fire threads write their rows after their crawl ends
            self._cond.wait_for(lambda: self._fires == 0,
                                timeout=self.config.service.kill_grace + 30)

    # --- rows the scheduler writes itself ---

    def record_event(self, watch: Watch, trigger: str, verdict: str, reason: str, *,
                     argv: list[str] | None = None, run_id: str | None = None,
                     started_at: datetime | None = None, exit_code: int | None = None,
                     pid: int | None = None, duration_s: float = 0.0,
                     scheduled_at: datetime | None = None, log: bool = False) -> FireResult:
        """Store a `runs` row for a fire no crawl recorded (and log it, if `log`)."""
        run_id = run_id or new_run_id()
        finished_at = datetime.now(UTC)
        started_at = started_at or finished_at
        row = {
            "run_id": run_id,
            "date": utc_day(started_at),
            "command": "schedule",
            "argv": argv if argv is not None else self.config.crawl_args(watch),
            "platforms": sorted(watch.platforms),
            "tags": sorted(watch.tag_keys),
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_s": duration_s,
            "verdict": verdict,
            "exit_code": exit_code,
            "host": socket.gethostname(),
            "pid": pid if pid is not None else os.getpid(),
            "version": _version(),
            "watch": watch.name,
            "trigger": trigger,
            "reason": reason,
        }
        result = FireResult(run_id=run_id, watch=watch.name, trigger=trigger, verdict=verdict,
                            exit_code=exit_code, reason=reason, duration_s=duration_s,
                            recorded_by="scheduler", scheduled_at=scheduled_at)
        try:
            with DatasetWriter(self.config.out, run_id, flush_rows=1) as writer:
                writer.add("runs", row)
        except StorageError as exc:
            logger.error("cannot store the record of run %s: %s", run_id, exc,
                         extra={"fields": {"run_id": run_id, "watch": watch.name}})
        if log:
            log_result(result)
        return result


def watch_environment(config: Config, watch: Watch, environ: dict[str, str]) -> dict[str, str]:
    """Sign-in references for the crawl's environment: never on its command line or in a log."""
    return config.signin.environment(watch.platforms, environ)


def log_result(result: FireResult) -> None:
    """The one INFO line per run, with the run id; its fields go into JSON logs as keys."""
    parts = [f"run {result.run_id}", f"watch={result.watch}", f"trigger={result.trigger}",
             f"verdict={result.verdict}"]
    if result.health:
        parts.append(f"health={result.health}")
    if result.exit_code is not None:
        parts.append(f"exit={result.exit_code}")
    parts.append(f"duration={result.duration_s:.1f}s")
    if result.snapshots is not None:
        parts.append(f"snapshots={result.snapshots} rejects={result.rejects}")
    if result.reason:
        parts.append(f"reason={json.dumps(result.reason, ensure_ascii=False)}")
    logger.info(" ".join(parts), extra={"fields": asdict(result)})


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _limit(watch: Watch) -> str:
    return format_duration(watch.timeout)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tagarchive")
    except PackageNotFoundError:
        return "0+unknown"


# --- the service ----------------------------------------------------------------------------------

_SERVICE: ScheduleService | None = None


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


def fire(watch: str, fingerprint: str = "") -> None:
    """The job function stored in the job store (importable by name, as APScheduler needs).

    `fingerprint` is the cadence the job was scheduled with; it is read at start-up, not here.
    """
    service = _SERVICE
    if service is None:
        raise RuntimeError("no schedule service is running in this process")
    service.on_fire(watch)


def job_store_path(config: Config) -> Path:
    return config.state_dir / "jobs.sqlite"


def service_lock_path(config: Config) -> Path:
    return config.state_dir / "service.lock"


def stored_next_runs(config: Config) -> dict[str, datetime]:
    """Next run time per watch as the job store has it, read without a scheduler."""
    import sqlite3

    path = job_store_path(config)
    if not path.is_file():
        return {}
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("select id, next_run_time from apscheduler_jobs").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return {}
    return {job_id: datetime.fromtimestamp(ts, UTC) for job_id, ts in rows if ts is not None}


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

    def _install_signals(self) -> dict[int, Any]:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
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
        self._scheduled[job_id] = run_time

    def on_fire(self, job_id: str) -> None:
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
        self.runner.fire(job_id, trigger, note, scheduled_at)

    def _on_skipped(self, event: Any) -> None:
        watch = self._watch(event.job_id)
        if watch is None:
            return
        running = self.runner.running(watch.name)
        reason = (f"the previous run ({', '.join(running) or 'unknown'}) was still going "
                  f"when the fire due at {_iso(event.scheduled_run_times[-1])} came")
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
        self.runner.record_event(watch, trigger, "missed", _join(note, reason) or reason,
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

    class _NotingExecutor(ThreadPoolExecutor):
        """Tells the service which run time each fire is for (APScheduler does not pass it)."""

        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            service.note_submitted(job.id, run_times[-1])
            super()._do_submit_job(job, run_times)

    return _NotingExecutor(max_workers=workers)


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- logging ------------------------------------------------------------------------------------


class _DropDuplicates(logging.Filter):
    """APScheduler's own skip/miss warnings: the scheduler logs and stores those itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith('Execution of job "%s" skipped')
                    or text.startswith('Run time of job "%s" was missed'))


def setup_logging(log_format: str = "text", level: int = logging.INFO,
                  stream: IO[str] | None = None) -> logging.Handler:
    """Log to stderr as text lines or JSON objects; returns the installed handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                      "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(_DropDuplicates())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # its INFO lines ("Added job", "Running job") repeat what the one line per run says
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler


# --- crontab ------------------------------------------------------------------------------------


def every_as_cron(seconds: float) -> str | None:
    """The crontab schedule of an interval, if cron can say it (cron counts clock minutes)."""
    if seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60:
        if minutes == 1:
            return "* * * * *"
        return f"*/{minutes} * * * *" if 60 % minutes == 0 else None
    if minutes % 60:
        return None
    hours = minutes // 60
    if hours < 24:
        if hours == 1:
            return "0 * * * *"
        return f"0 */{hours} * * *" if 24 % hours == 0 else None
    return {24: "0 0 * * *", 168: "0 0 * * 0"}.get(hours)


def crontab_lines(config: Config, command: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Crontab lines equivalent to the config's watches, and a warning per watch cron cannot say.

    Each line runs `tagarchive crawl` under coreutils `timeout` (the watch's time limit, then
    SIGKILL after kill_grace); two overlapping crawls are safe, every run writes its own files.
    """
    import shlex

    command = command or list(config.service.crawl_command) or default_command()
    kill = f"{config.service.kill_grace:g}s"
    lines = [
        f"# tagarchive watches from {config.path}",
        f"# install: tagarchive crontab --config {shlex.quote(str(config.path))} | crontab -",
        "# (that replaces your crontab; merge by hand if you have other lines)",
        "SHELL=/bin/sh",
    ]
    warnings = []
    ordered = sorted(config.watches.values(),
                     key=lambda w: (w.cadence.every is None and w.cadence.timezone != "local",
                                    w.cadence.timezone if w.cadence.every is None else ""))
    zone = "local"
    for watch in ordered:
        cadence = watch.cadence
        when = every_as_cron(cadence.every) if cadence.every is not None else cadence.cron
        if when is None:
            text = (f"watch {watch.name}: every {format_duration(cadence.every or 0)} has no "
                    "crontab equivalent (cron fires on clock minutes); give it a cron expression")
            warnings.append(text)
            lines.append(f"# {text}")
            continue
        if cadence.every is None and cadence.timezone != zone:
            lines.append("# CRON_TZ is honoured by cronie; Debian's cron uses the machine's zone")
            lines.append(f"CRON_TZ={cadence.timezone}")
            zone = cadence.timezone
        env = [f"{name}={shlex.quote(value)}" for name, value in sorted(
            {f"TAGARCHIVE_SESSION_{p.upper()}": path for p, path in config.signin.session_files
             if p in watch.platforms}.items())]
        for platform, target, _source in config.signin.variables:
            if platform in watch.platforms:
                lines.append(f"# watch {watch.name}: set {target} in cron's environment for "
                             f"{platform} sign-in (secrets are not written here)")
        argv = config.crawl_args(watch, {"TAGARCHIVE_TRIGGER": CRON})
        shell = " ".join([
            *env, "timeout", "-k", kill, f"{watch.timeout:g}s",
            *(shlex.quote(part) for part in [*command, *argv])])
        if cadence.jitter:
            # POSIX sh has no $RANDOM; two bytes of /dev/urandom spread the start instead
            shell = (f"sleep $(( $(od -An -N2 -tu2 /dev/urandom) % {int(cadence.jitter) + 1} ))"
                     f" && {shell}")
        # in a crontab line an unescaped % ends the command (cron feeds the rest to stdin)
        line = f"{when} {shell.replace('%', chr(92) + '%')}"
        lines.append(line if watch.enabled else f"# (disabled) {line}")
    return lines, warnings
