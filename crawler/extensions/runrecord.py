"""One crawl run's bookkeeping: which tags were asked for, how each ended, and the run record."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from crawler.extensions.health import NOT_ATTEMPTED
from crawler.logredact import display_url, redact, redact_url_credentials
from crawler.platforms.base import Outcome
from crawler.signals import run_started
from crawler.text.tags import TagRef, normalize_tag
from storage import DatasetWriter, StorageError, check_partition_value, new_run_id
from storage.archive import ArchiveWriter

# exit codes, documented in README "Exit codes"
EXIT_OK = 0
EXIT_TAG_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
# every tag stored, but a health check flagged something (crawler/extensions/health.py)
EXIT_UNHEALTHY = 4
EXIT_INTERRUPTED = 130

PENDING = "pending"
NO_ANSWER = "no answer from the platform"

logger = logging.getLogger(__name__)

def redact_urls(argv: Sequence[str]) -> list[str]:
    """A command line safe to record (`runs.argv`): no URL keeps its user:password@, and a
    Redis URL keeps only scheme, host, port and path (`display_url`: its query may hold a
    password too)."""
    out = []
    for arg in argv:
        for scheme in ("redis://", "rediss://"):
            at = arg.find(scheme)
            if at >= 0:
                arg = arg[:at] + display_url(arg[at:])
        out.append(redact_url_credentials(arg))
    return out


@dataclass(slots=True)
class TagJob:
    """One (platform, tag) a run must observe."""

    platform: str
    ref: TagRef

    @property
    def key(self) -> str:
        """The normalized tag, or `id:<id>`; the name a user sees in outcomes."""
        # a TagRef holds exactly one of name and id (TagRef.__post_init__)
        name = self.ref.name
        return f"id:{self.ref.id}" if name is None else normalize_tag(name)


@dataclass
class RunState:
    """Shared by the spider and the pipelines of one crawl process."""

    out: str
    jobs: list[TagJob]
    command: str = "crawl"
    argv: list[str] = field(default_factory=list)
    settings_json: str = "{}"
    run_id: str = field(default_factory=new_run_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    flush_rows: int = 50_000
    flush_seconds: float = 30.0
    outcomes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    storage_error: str | None = None
    # sign-in by platform (crawler/downloader/signin.py Session, a sibling layer this one may
    # not import): the middlewares read them from the run `run_started` announces
    sessions: dict[str, Any] = field(default_factory=dict, repr=False)
    close_reason: str | None = None
    # set from -s TAGARCHIVE_WATCH / TAGARCHIVE_TRIGGER by `tagarchive schedule` (label_from)
    watch: str | None = None
    trigger: str | None = None
    health_checked: bool = False
    findings: list[dict[str, str | None]] = field(default_factory=list)
    archive_enabled: bool = True
    # (platform, key) of the tags a request was sent for (RequestedTags): when the run ends
    # early, the tags without one were never attempted, which says nothing about the platform
    requested: set[tuple[str, str]] = field(default_factory=set, repr=False)
    _writer: DatasetWriter | None = None
    _archive: ArchiveWriter | None = None

    def __post_init__(self) -> None:
        for job in self.jobs:
            self.outcomes[(job.platform, job.key)] = (PENDING, "")

    @property
    def writer(self) -> DatasetWriter:
        if self._writer is None:
            self._writer = DatasetWriter(self.out, self.run_id, flush_rows=self.flush_rows,
                                         flush_seconds=self.flush_seconds,
                                         before_flush=self._publish_archive)
        return self._writer

    @property
    def archive(self) -> ArchiveWriter | None:
        """The raw archive of this run (None when disabled with --no-archive)."""
        if self._archive is None and self.archive_enabled:
            self._archive = ArchiveWriter(self.out, self.run_id, redact=redact)
        return self._archive

    def _publish_archive(self) -> None:
        # rows about to be written may point into open WARC files: publish those first
        if self._archive is not None:
            self._archive.rotate()

    def close_storage(self) -> None:
        """Flush rows (publishing the archive first) and close everything; idempotent."""
        self.writer.close()
        if self._archive is not None:
            self._archive.close()

    def timed_flush(self) -> None:
        """Write rows that waited flush_seconds and publish the open archive files, so a crash
        loses at most one interval even when no item arrives; errors are logged, and reported
        when the run closes (a full disk must not stop the timer)."""
        try:
            self.writer.maybe_flush()
            if self.archive is not None:
                self.archive.rotate()
        except Exception as exc:
            logger.error("timed flush failed: %s", exc)

    def store_record(self, record: dict[str, Any]) -> None:
        """Add the run's `runs` row and close storage; a storage failure is kept, not raised."""
        try:
            self.writer.add("runs", record)
            self.close_storage()
        except StorageError as exc:
            self.storage_error = str(exc)
            logger.error("storage failed: %s", exc)

    def set_outcome(self, platform: str, key: str, outcome: str, detail: str = "") -> None:
        """Record how a tag ended; a stored snapshot is final, a later failure cannot undo it."""
        current = self.outcomes.get((platform, key), (PENDING, ""))[0]
        if current == Outcome.STORED and outcome != Outcome.STORED:
            return
        self.outcomes[(platform, key)] = (str(outcome), redact(redact_url_credentials(detail)))

    def finish(self) -> None:
        """Tags that never reached a verdict: requested ones failed without an answer, the
        others (a run interrupted or timed out before their turn) were not attempted."""
        for key, (status, detail) in list(self.outcomes.items()):
            if status == PENDING:
                self.outcomes[key] = ((str(Outcome.ERROR), detail or NO_ANSWER)
                                      if key in self.requested else (NOT_ATTEMPTED, ""))

    @property
    def not_attempted(self) -> int:
        """How many tags ended `not_attempted`."""
        return sum(s == NOT_ATTEMPTED for s, _d in self.outcomes.values())

    @property
    def failures(self) -> list[tuple[str, str, str, str]]:
        return [(p, t, s, d) for (p, t), (s, d) in self.outcomes.items()
                if s != Outcome.STORED]

    @property
    def exit_code(self) -> int:
        if self.close_reason == "shutdown":
            return EXIT_INTERRUPTED
        if self.storage_error:
            return EXIT_ENVIRONMENT
        if self.failures:
            return EXIT_TAG_FAILED
        return EXIT_UNHEALTHY if self.findings else EXIT_OK

    def label_from(self, settings: Any) -> None:
        """Adopt the run id, watch and trigger a scheduler passed as settings, so its log line
        and the rows it may write itself name the same run."""
        run_id = settings.get("TAGARCHIVE_RUN_ID")
        if run_id:
            self.run_id = check_partition_value("run_id", str(run_id))
        self.watch = settings.get("TAGARCHIVE_WATCH") or self.watch
        self.trigger = settings.get("TAGARCHIVE_TRIGGER") or self.trigger

    def record(self, stats: dict[str, Any], finished_at: datetime, reason: str) -> dict[str, Any]:
        """The `runs` row for this run."""
        verdict = "ok"
        if reason not in ("finished",):
            verdict = {"shutdown": "interrupted", "closespider_timeout": "timeout"}.get(
                reason, "error")
        elif self.storage_error:
            verdict = "error"
        elif self.failures:
            verdict = "failed"
        exit_code = self.exit_code
        return {
            "run_id": self.run_id,
            "date": self.started_at.strftime("%Y-%m-%d"),
            "command": self.command,
            "argv": redact_urls(self.argv),
            "platforms": sorted({j.platform for j in self.jobs}),
            "tags": sorted({j.key for j in self.jobs}),
            "started_at": self.started_at,
            "finished_at": finished_at,
            "duration_s": (finished_at - self.started_at).total_seconds(),
            "snapshots": int(stats.get("tagarchive/stored/snapshots", 0)),
            "posts": int(stats.get("tagarchive/stored/posts", 0)),
            "activity": int(stats.get("tagarchive/stored/activity", 0)),
            "rejects": int(stats.get("tagarchive/rejected", 0)),
            "requests": int(stats.get("downloader/request_count", 0)),
            "rendered_requests": int(stats.get("tagarchive/rendered_requests", 0)),
            "errors": int(stats.get("log_count/ERROR", 0)),
            "outcomes": [
                {"platform": p, "tag": t, "status": s, "detail": d}
                for (p, t), (s, d) in sorted(self.outcomes.items())
            ],
            "verdict": verdict,
            "exit_code": exit_code,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": _version(),
            "settings": self.settings_json,
            "watch": self.watch,
            "trigger": self.trigger,
            "reason": None if reason == "finished" else reason,
            "health": (("unhealthy" if self.findings else "healthy")
                       if self.health_checked else None),
            "findings": list(self.findings),
        }


class RequestedTags:
    """A Scrapy extension (EXTENSIONS in crawler/settings.py): marks in the current run's
    RunState (announced by `run_started`) each tag a request has gone out for, so `finish()`
    tells `not_attempted` from no answer.

    `request_reached_downloader` comes after every downloader middleware (robots.txt, sign-in)
    let the request through; on a graceful stop Scrapy still completes those requests.
    """

    def __init__(self, crawler: Any) -> None:
        from scrapy import signals

        self.run: RunState | None = None
        crawler.signals.connect(self.start_run, signal=run_started)
        crawler.signals.connect(self.reached, signal=signals.request_reached_downloader)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RequestedTags:
        return cls(crawler)

    def start_run(self, run: Any) -> None:
        """The receiver of `run_started`: mark requests in this run from now on."""
        self.run = run

    def reached(self, request: Any) -> None:
        job = request.meta.get("tagarchive_job")
        run = self.run
        if job is not None and isinstance(run, RunState):  # robots.txt and sign-in carry none
            tag = TagJob(job["platform"], TagRef(name=job["name"], id=job["id"]))
            run.requested.add((tag.platform, tag.key))


def _version() -> str:
    try:
        return version("tagarchive")
    except PackageNotFoundError:
        return "0+unknown"


# The settings a run record keeps (its `settings` column), for crawl, backfill and worker.
RECORDED_SETTINGS = ("CONCURRENT_REQUESTS_PER_DOMAIN", "DOWNLOAD_DELAY", "ROBOTSTXT_OBEY",
                     "TAGARCHIVE_BROWSER_ENABLED", "AUTOTHROTTLE_ENABLED")


def recorded_settings(settings: Any) -> str:
    """settings_summary() of the RECORDED_SETTINGS of a Scrapy Settings object."""
    return settings_summary({key: settings[key] for key in RECORDED_SETTINGS})


def settings_summary(settings: dict[str, Any]) -> str:
    """JSON of the settings worth keeping in the run record; nothing secret-looking."""
    keep = {}
    for key, value in settings.items():
        if any(s in key.upper() for s in ("SECRET", "TOKEN", "PASSWORD", "COOKIE", "KEY", "AUTH")):
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            keep[key] = value
    return json.dumps(keep, sort_keys=True, ensure_ascii=False)
