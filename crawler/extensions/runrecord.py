"""How a run went: which tags were asked for, how each ended, its health, and its `runs` row.

`RunState` is what a run was asked to do (given by whoever starts it: the command line, the
spider for `scrapy crawl`, a worker per batch) and the ledger of how it went. The `RunRecord`
extension alone fills that ledger, from the project's signals (`tag_outcome`, `storage_failed`)
and Scrapy's stats, and writes the run's `runs` row when it ends, as spidermon reads stats:
after the pipelines have closed their writers, so the health checks see the run's own rows.
"""

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

from pyarrow import ArrowException
from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler

from crawler import clock
from crawler.extensions.health import NOT_ATTEMPTED, HealthThresholds, TagOutcome, check_run
from crawler.logredact import display_url, redact, redact_url_credentials
from crawler.platforms.base import Outcome
from crawler.signals import (
    flush_rows,
    privacy_in_force,
    run_ended,
    run_started,
    send_checked,
    storage_failed,
    tag_outcome,
)
from crawler.text.tags import TagRef, normalize_tag
from storage import DatasetWriter, StorageError, check_partition_value, new_run_id

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
    """What one run was asked to do, and how it went (filled in by the RunRecord extension)."""

    out: str
    jobs: list[TagJob]
    command: str = "crawl"
    argv: list[str] = field(default_factory=list)
    settings_json: str = "{}"
    run_id: str = field(default_factory=new_run_id)
    started_at: datetime = field(default_factory=clock.now)
    # sign-in by platform (crawler/downloader/signin.py Session, a sibling layer this one may
    # not import): the middlewares read them from the run `run_started` announces
    sessions: dict[str, Any] = field(default_factory=dict, repr=False)
    # set from -s TAGARCHIVE_WATCH / TAGARCHIVE_TRIGGER by `tagarchive schedule` (label_from)
    watch: str | None = None
    trigger: str | None = None
    # -s TAGARCHIVE_RUN_NOTE: what the scheduler left out of this fire (a paused platform),
    # kept in the row's reason
    note: str | None = None
    # --- the ledger ---
    outcomes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    storage_error: str | None = None
    close_reason: str | None = None
    health_checked: bool = False
    findings: list[dict[str, str | None]] = field(default_factory=list)
    # (platform, key) of the tags a request was sent for: when the run ends early, the tags
    # without one were never attempted, which says nothing about the platform
    requested: set[tuple[str, str]] = field(default_factory=set, repr=False)
    # the privacy mode and key id the privacy pipeline announced (`privacy_in_force`)
    privacy: str | None = None
    privacy_key: str | None = None

    def __post_init__(self) -> None:
        for job in self.jobs:
            self.outcomes[(job.platform, job.key)] = (PENDING, "")

    def add_job(self, job: TagJob) -> None:
        """A job joins the run after it began (a worker's batch, entry by entry)."""
        self.jobs.append(job)
        self.outcomes[(job.platform, job.key)] = (PENDING, "")

    def withdraw(self, job: TagJob) -> None:
        """A job leaves the run unrecorded (a stopping worker hands it back to the queue)."""
        self.outcomes.pop((job.platform, job.key), None)
        if job in self.jobs:
            self.jobs.remove(job)

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
        self.note = settings.get("TAGARCHIVE_RUN_NOTE") or self.note

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
            "reason": "; ".join(r for r in (None if reason == "finished" else reason,
                                            self.note) if r) or None,
            "health": (("unhealthy" if self.findings else "healthy")
                       if self.health_checked else None),
            "findings": list(self.findings),
            "privacy": self.privacy,
            "privacy_key": self.privacy_key,
        }


class RunRecord:
    """A Scrapy extension (EXTENSIONS in crawler/settings.py): the one keeper of how the run
    announced by `run_started` went, and the writer of its `runs` row.

    It takes every `tag_outcome` and `storage_failed`, marks each tag a request has gone out
    for (`request_reached_downloader` comes after every downloader middleware, robots.txt and
    sign-in, let the request through; on a graceful stop Scrapy still completes those
    requests), and when the run ends (`spider_closed`, after the pipelines' close_spider; a
    worker's batch: `run_ended`) names the tags left without a verdict, checks the run's
    health, and writes its row with the crawler's stats.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.run: RunState | None = None
        connect = crawler.signals.connect
        connect(self.start_run, signal=run_started)
        connect(self.record_outcome, signal=tag_outcome)
        connect(self.record_failure, signal=storage_failed)
        connect(self.record_privacy, signal=privacy_in_force)
        connect(self.reached, signal=scrapy_signals.request_reached_downloader)
        connect(self.close_run, signal=run_ended)
        connect(self.close_run, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecord:
        return cls(crawler)

    def start_run(self, run: RunState) -> None:
        """The receiver of `run_started`: keep this run's ledger from now on."""
        self.run = run

    def record_outcome(self, platform: str, key: str, outcome: str, detail: str = "") -> None:
        """The receiver of `tag_outcome`."""
        if self.run is not None:
            self.run.set_outcome(platform, key, outcome, detail)

    def record_privacy(self, mode: str, key_id: str | None) -> None:
        """The receiver of `privacy_in_force`: which mode and key made the run's rows."""
        if self.run is not None:
            self.run.privacy, self.run.privacy_key = mode, key_id

    def record_failure(self, error: str) -> None:
        """The receiver of `storage_failed`: the first error is the one the run reports."""
        if self.run is not None and self.run.storage_error is None:
            self.run.storage_error = error

    def reached(self, request: Any) -> None:
        job = request.meta.get("tagarchive_job")
        if job is not None and self.run is not None:  # robots.txt and sign-in carry none
            tag = TagJob(job["platform"], TagRef(name=job["name"], id=job["id"]))
            self.run.requested.add((tag.platform, tag.key))

    def close_run(self, reason: str) -> None:
        """Finish the run's ledger, check its health and write its `runs` row (once)."""
        run, self.run = self.run, None
        if run is None:  # a worker between batches, or after its last one was recorded
            return
        run.close_reason = reason
        run.finish()
        self._check_health(run, reason)
        record = run.record(self.crawler.stats.get_stats(), datetime.now(UTC), reason)
        try:
            writer = DatasetWriter(run.out, run.run_id)
            writer.add("runs", record)
            writer.close()
        except StorageError as exc:
            run.storage_error = str(exc)
            logger.error("storage failed: %s", exc)
        failed = len(run.failures)
        logger.info("run %s %s: %d snapshots, %d posts, %d rejects, %d failed tags",
                    run.run_id, record["verdict"], record["snapshots"], record["posts"],
                    record["rejects"], failed,
                    extra={"fields": {"run_id": run.run_id, "verdict": record["verdict"],
                                      "snapshots": record["snapshots"], "posts": record["posts"],
                                      "rejects": record["rejects"], "failed_tags": failed}})

    def _check_health(self, run: RunState, reason: str) -> None:
        """Compare the run with the stored history; findings go into its record and exit code."""
        thresholds = HealthThresholds.from_settings(self.crawler.settings.get)
        if not thresholds.enabled:
            return
        stats = self.crawler.stats
        counts = {k: int(stats.get_value(f"tagarchive/stored/{k}", 0))
                  for k in ("snapshots", "posts", "activity")}
        counts["rejects"] = int(stats.get_value("tagarchive/rejected", 0))
        outcomes = [TagOutcome(p, t, s) for (p, t), (s, _d) in run.outcomes.items()]
        try:
            # the run's rows must be on disk to be compared (the store pipeline closed its
            # writer already: this says whether that wrote them)
            send_checked(self.crawler.signals, flush_rows)
            findings = check_run(run.out, run.run_id, outcomes, counts, thresholds,
                                 finished=reason != "shutdown")
        except StorageError:
            return  # the store pipeline reported it; the record says so
        except (OSError, ArrowException) as exc:  # unreadable history must not lose the record
            logger.error("health checks could not read the history: %s", exc)
            return
        run.health_checked = True
        run.findings = [f.as_row() for f in findings]
        for finding in findings:
            logger.warning("health: %s", finding.line())


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
