"""One crawl subprocess per fire: its time limit, its watch's lock, and ending it on shutdown.

The scheduler never imports Scrapy: a Twisted reactor cannot restart (ENGINEERING-NOTES 2.1), so
every fire runs `python -m crawler.cli crawl ...` in its own process group with a time limit.
The crawl inherits the watch's lock, so a crawl orphaned by a killed scheduler keeps its watch
busy until it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO

from crawler.services.fires import FireResult, find_record, join_notes, log_result, record_fire
from crawler.services.locks import LockBusy, file_lock, name_holder
from crawler.services.pauses import after_fire, before_fire
from crawler.services.watchmodel import Config, Watch
from crawler.services.watchvalues import ConfigError, format_duration
from storage import new_run_id

logger = logging.getLogger("tagarchive.schedule")
crawl_logger = logging.getLogger("tagarchive.crawl")

_TAIL_LINES = 20  # crawl output kept to explain a crash in one line


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
        with self.in_flight():
            result = self._fire(name, trigger, note)
            result.scheduled_at = scheduled_at
            log_result(result)
            return result

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """A fire at work, its crawl and what follows it (the scheduler's retention and
        alerts): drain() waits for it, so the process never exits under a thread still writing
        or reading the datasets."""
        with self._cond:
            self._fires += 1
        try:
            yield
        finally:
            with self._cond:
                self._fires -= 1
                self._cond.notify_all()

    def _fire(self, name: str, trigger: str, note: str | None) -> FireResult:
        watch = self.config.watch(name)
        run_id = new_run_id()
        extra = {"TAGARCHIVE_RUN_ID": run_id, "TAGARCHIVE_TRIGGER": trigger}
        # a platform paused after a lost login is left out until its session is renewed
        remaining, paused = before_fire(self.config, watch, self.environ)
        if paused is not None:
            if not remaining:
                return self.record_event(watch, trigger, "skipped", join_notes(note, paused),
                                         run_id=run_id)
            watch = replace(watch, platforms=remaining)
            note = join_notes(note, paused)
            extra["TAGARCHIVE_RUN_NOTE"] = paused  # the crawl's own row says it too
        argv = self.config.crawl_args(watch, extra)
        started_at = datetime.now(UTC)
        if self.config.distributed is not None:  # the workers crawl: queue the jobs
            return self._enqueue(watch, run_id, trigger, note)
        try:
            with file_lock(self.config.state_dir / "locks" / f"{name}.lock") as held:
                result = self._spawn(watch, run_id, argv, trigger, note, started_at, held)
        except LockBusy as exc:
            return self.record_event(watch, trigger, "skipped",
                                     f"another run of this watch is still going (pid {exc})",
                                     argv=argv, run_id=run_id)
        after_fire(self.config, watch, run_id, self.environ)  # a login lost: pause it
        return result

    def _enqueue(self, watch: Watch, run_id: str, trigger: str, note: str | None) -> FireResult:
        """Distributed mode: one job per (platform, tag) in Redis, the round named by run_id.
        Its row says how many were queued; the workers' own rows say how they ended."""
        from crawler.logredact import display_url
        from crawler.spiders.jobqueue import JobQueue, RedisLost, enqueue_tags

        dist = self.config.distributed
        assert dist is not None
        argv = ["enqueue", ",".join(watch.platforms), *watch.tag_keys, "--redis",
                display_url(dist.redis), "--queue", dist.queue, "--round", run_id]
        try:
            queue = JobQueue.from_url(dist.redis, dist.queue)
            count = enqueue_tags(queue, watch.platforms, watch.tag_keys, run_id,
                                 watch=watch.name, trigger=trigger)
        except RedisLost as exc:
            return self.record_event(watch, trigger, "error", join_notes(note, str(exc)) or "",
                                     argv=argv, run_id=run_id, exit_code=3)
        return self.record_event(
            watch, trigger, "ok",
            join_notes(note, f"queued {count} job(s) on {queue.url} ({queue.jobs_key}) "
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
            name_holder(held, proc.pid)  # the crawl, which may outlive this scheduler
        crawl = _Crawl(watch.name, run_id, proc)
        code = self._follow(crawl, watch.timeout)
        duration = time.monotonic() - begun
        return self._result(crawl, code, watch, trigger, note, argv, started_at, duration)

    def _follow(self, crawl: _Crawl, timeout: float) -> int:
        """Relay a crawl's output until it exits or its time limit ends it; its exit code."""
        proc = crawl.proc
        relay = threading.Thread(target=self._relay, args=(crawl,), daemon=True)
        relay.start()
        with self._cond:
            self._active[crawl.run_id] = crawl
        logger.debug("started run %s of %s (pid %d)", crawl.run_id, crawl.watch, proc.pid,
                     extra={"fields": {"run_id": crawl.run_id, "watch": crawl.watch,
                                       "pid": proc.pid}})
        try:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.end(crawl, "timeout")
                code = proc.wait()
            relay.join(timeout=5)
        finally:
            with self._cond:
                self._active.pop(crawl.run_id, None)
            if proc.stdout is not None:
                proc.stdout.close()
        return code

    def _result(self, crawl: _Crawl, code: int, watch: Watch, trigger: str, note: str | None,
                argv: list[str], started_at: datetime, duration: float) -> FireResult:
        """How an ended crawl's fire went: from the row it wrote, or a row written for it."""
        run_id = crawl.run_id
        try:
            record = find_record(self.config.out, run_id)
        except (OSError, ValueError) as exc:  # a damaged file: say so, and keep our own row
            logger.warning("cannot read the record of run %s: %s", run_id, exc)
            record = None
        if record is not None:
            return FireResult(
                run_id=run_id, watch=watch.name, trigger=trigger, verdict=record["verdict"],
                exit_code=code, health=record.get("health"),
                reason=join_notes(note, record.get("reason"),
                                  f"ended at the {_limit(watch)} time limit"
                                  if crawl.ended_by == "timeout" else None),
                duration_s=duration,
                snapshots=record.get("snapshots"), rejects=record.get("rejects"),
                findings=len(record.get("findings") or ()))
        verdict, reason = self._explain(crawl, code, watch)
        return self.record_event(watch, trigger, verdict, join_notes(note, reason), argv=argv,
                                 run_id=run_id, started_at=started_at, exit_code=code,
                                 pid=crawl.proc.pid, duration_s=duration)

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

    def record_event(self, watch: Watch, trigger: str, verdict: str, reason: str | None, *,
                     argv: list[str] | None = None, run_id: str | None = None,
                     started_at: datetime | None = None, exit_code: int | None = None,
                     pid: int | None = None, duration_s: float = 0.0,
                     scheduled_at: datetime | None = None, log: bool = False) -> FireResult:
        """Store a `runs` row for a fire no crawl recorded (and log it, if `log`)."""
        return record_fire(self.config, watch, trigger, verdict, reason, argv=argv,
                           run_id=run_id, started_at=started_at, exit_code=exit_code, pid=pid,
                           duration_s=duration_s, scheduled_at=scheduled_at, log=log)


def _limit(watch: Watch) -> str:
    return format_duration(watch.timeout)


def watch_environment(config: Config, watch: Watch, environ: dict[str, str]) -> dict[str, str]:
    """Sign-in references for the crawl's environment: never on its command line or in a log;
    and the [archive] recipients its WARC files are encrypted to."""
    return {**config.signin.environment(watch.platforms, environ), **config.archive.environment()}
