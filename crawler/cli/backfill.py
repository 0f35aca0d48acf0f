"""`tagarchive backfill PLATFORM TAG --since DAY --until DAY`: a tag's past, day by day.

Exit codes: 0 the window was walked and its activity rows replace any earlier ones; 1 the
platform answered with a failure, or is cooling off after one (`cooling_off`: its breaker is
open, nothing was sent), named on its own line and in the `runs` row; `--resume` retries from
that page;
2 usage error, including a platform without a usable timeline (the reason is named); 3 the
environment (output not writable, another backfill of the same window running, storage
failed); 130 interrupted (Ctrl-C): `--resume` continues where it stopped. See docs/backfill.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.cli.main import (
    _add_crawl_options,
    _load_sessions,
    build_settings,
    load_config_sources,
    parse_day,
    prepare_out,
    project_settings,
    resolve_base_urls,
    start_process,
)
from crawler.extensions.runrecord import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    RunState,
    TagJob,
)

if TYPE_CHECKING:
    from crawler.platforms.base import Fetch
    from crawler.platforms.timeline import Window
    from crawler.text.tags import TagRef

logger = logging.getLogger(__name__)


class _Timeline(Protocol):
    """A platform adapter with a timeline (crawler/platforms/timeline.py)."""

    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch: ...


# A compaction already running holds the activity dataset's lock; wait this long for it.
ACTIVITY_LOCK_WAIT_S = 30.0


def register(subparsers: Any) -> None:
    """Add `backfill` to the `tagarchive` command line."""
    p = subparsers.add_parser(
        "backfill",
        help="walk a tag's public timeline back in time: posts and per-day activity",
        description="Walk the tag's public timeline from --until back to --since, store the "
        "posts it shows and one activity row per day (posts, distinct authors) marked complete "
        "or lower_bound. Ctrl-C stops cleanly; --resume continues. Running the same window "
        "again replaces its activity rows. See docs/backfill.md.",
    )
    p.add_argument("platform", help="e.g. mastodon, bluesky, weibo, bilibili, tiktok, xhs")
    p.add_argument("tag", help="tag name (with or without #), or id:<id>")
    p.add_argument("--since", type=parse_day, required=True, metavar="YYYY-MM-DD",
                   help="first UTC day of the window")
    p.add_argument("--until", type=parse_day, required=True, metavar="YYYY-MM-DD",
                   help="last UTC day of the window (included)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted backfill of this window where it stopped")
    _add_crawl_options(p)
    p.set_defaults(func=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    from crawler.spiders.walks import BackfillStateError, WalkStore
    from storage.errors import StorageError
    from storage.locks import LockBusyError

    load_config_sources(args.config)
    cls, ref, window = _asked(args)
    job = TagJob(cls.name, ref)
    base_urls = resolve_base_urls([job.platform], args.base_url, args.replica, dict(os.environ))
    sessions = _load_sessions([job.platform], args.session)
    out = prepare_out(args.out)
    try:
        store = WalkStore(walk_state_root(out), job.platform, job.key, window)
    except StorageError as exc:  # .tagarchive is a symlink leading out of the root
        raise EnvironmentProblem(str(exc)) from None
    label = f"{job.platform} {job.key} {window.since}..{window.until}"
    settings, run = _run_state(args, out, job, base_urls, sessions)
    try:
        with store.locked():
            if args.resume:
                walk = _resumed(store, label, out, job.platform, run.run_id)
            else:
                walk = _fresh(store, label, cls, base_urls.get(job.platform), job, window,
                              run.run_id)
            _crawl(args, settings, run, walk, store, label)
    except LockBusyError:
        raise EnvironmentProblem(f"another backfill of {label} is running") from None
    except BackfillStateError as exc:
        raise UsageError(f"cannot resume {label}: {exc}") from None
    return _report(run, walk, store, out, label, quiet=args.quiet)


def _asked(args: argparse.Namespace) -> tuple[Any, TagRef, Window]:
    """The platform class, tag and window asked for; UsageError for any that cannot be walked."""
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.platforms.timeline import Window, timeline_refusal
    from crawler.text.tags import InvalidTagError, parse_tag_arg

    try:
        cls = platform_class(args.platform)
        ref = parse_tag_arg(args.tag)
        window = Window(args.since, args.until)
    except (UnknownPlatformError, InvalidTagError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if window.until > datetime.now(UTC).date():
        raise UsageError(f"--until {window.until} is in the future")
    refusal = timeline_refusal(cls)
    if refusal is not None:
        raise UsageError(f"{cls.name} cannot be backfilled: {refusal}")
    return cls, ref, window


def walk_state_root(out: str) -> str:
    """Where a walk's state and journal live: under the output root, or for an s3:// root (no
    flock, no append, no fsync there) in a local directory named after the bucket and prefix:
    $TAGARCHIVE_STATE_DIR/s3/<bucket>/<prefix>, default ~/.local/state/tagarchive/s3/..."""
    from storage.backends import backend_for

    return backend_for(out).state_root(out)


def _resumed(store: Any, label: str, out: str, platform: str, run_id: str) -> Any:
    """The interrupted walk, handed to run `run_id` (its state says where it stopped)."""
    from crawler.spiders.walks import stored_posts
    from storage.errors import StorageError

    state = store.read_state()
    if state is None:
        raise UsageError(f"nothing to resume for {label}: run it without --resume")
    if state.get("done"):
        raise UsageError(f"{label} already finished; run it without --resume to walk it again")
    walk = store.resume()
    # rows the interrupted run stored after its last state: counted, not refetched
    previous = store.previous_run
    try:
        stored = stored_posts(out, platform, previous) if previous else []
    except StorageError as exc:
        raise EnvironmentProblem(f"cannot resume {label}: {exc}") from None
    store.adopt(walk, run_id, stored)
    return walk


def _fresh(store: Any, label: str, cls: Any, base_url: str | None, job: TagJob,
           window: Window, run_id: str) -> Any:
    """A new walk of the window from its first timeline page, begun by run `run_id`."""
    from crawler.platforms.base import PlatformError
    from crawler.spiders.walks import Walk

    if store.exists() and not (store.read_state() or {}).get("done"):
        print(f"tagarchive: starting {label} over (an unfinished walk of it exists: "
              "--resume continues one)", file=sys.stderr)
    walk = Walk(platform=job.platform, tag=job.ref, window=window)
    try:
        # timeline_refusal() returned None (_asked): the class has timeline_fetch
        adapter = cast(_Timeline, cls(base_url))
        walk.next_fetch = adapter.timeline_fetch(job.ref, window)
    except PlatformError as exc:
        raise UsageError(f"{job.platform} {job.key}: {exc.detail}") from None
    store.start(walk, run_id)
    return walk


def _run_state(args: argparse.Namespace, out: str, job: TagJob, base_urls: dict[str, str],
               sessions: dict[str, Any]) -> tuple[Any, RunState]:
    """The crawl's settings and its run, whose id the walk's state names before any row is
    written (a scheduler's TAGARCHIVE_RUN_ID included)."""
    from crawler.extensions.runrecord import recorded_settings

    settings = project_settings(build_settings(args, base_urls, [job.platform]))
    run = RunState(out=out, jobs=[job], command="backfill", argv=list(args.argv),
                   settings_json=recorded_settings(settings), sessions=sessions)
    run.label_from(settings)
    return settings, run


def _crawl(args: argparse.Namespace, settings: Any, run: RunState, walk: Any, store: Any,
           label: str) -> None:
    from scrapy.crawler import CrawlerProcess

    from crawler.spiders.backfill import BackfillSpider, NoProgress

    progress = (RichProgress(label, walk) if sys.stderr.isatty() and not args.quiet
                else NoProgress())
    process = CrawlerProcess(settings)
    process.crawl(BackfillSpider, run=run, walk=walk, store=store, progress=progress)
    start_process(process)


def replace_activity(out: str, window: Any, wait: float = ACTIVITY_LOCK_WAIT_S) -> list[str]:
    """Leave one activity row per (platform, tag, day): the newest, i.e. this run's.

    This is compaction's own rule for `activity` (storage/compact.py: newest observed_at per
    (platform, tag, day)), applied with its atomic partition swap, so readers never see a day
    twice or not at all. Returns the lines of partitions that could not be rewritten.
    """
    from storage.compact import compact
    from storage.locks import LockBusyError

    deadline = time.monotonic() + wait
    while True:
        try:
            report = compact(out, ["activity"], before=window.until + timedelta(days=1),
                             include_today=True)
            return report.errors
        except LockBusyError:
            if time.monotonic() >= deadline:
                return [f"activity: a compaction is running; the earlier rows of "
                        f"{window.since}..{window.until} stay until the next "
                        "`tagarchive compact --dataset activity`"]
            time.sleep(0.5)


def _report(run: RunState, walk: Any, store: Any, out: str, label: str, quiet: bool) -> int:
    for platform, tag, status, detail in run.failures:
        print(f"tagarchive: {platform} {tag}: {status}: {detail}", file=sys.stderr)
    if run.storage_error:
        print(f"tagarchive: storage error: {run.storage_error}", file=sys.stderr)
    if run.close_reason == "shutdown":
        print(f"tagarchive: interrupted after {walk.pages} pages; what was fetched is stored "
              f"and `--resume` continues {label}", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = run.exit_code
    if not store.finished:  # not every page, or not every row of them, is on disk
        if run.failures:
            cooling = any(status == "cooling_off" for _p, _t, status, _d in run.failures)
            when = (" once the cool-off is over (`tagarchive breaker`; --ignore-cooloff "
                    "sends it anyway)" if cooling else "")
            print(f"tagarchive: {label} stopped after {walk.pages} pages; `--resume` retries "
                  f"from the page that failed{when}", file=sys.stderr)
        return code or EXIT_ENVIRONMENT
    if code == EXIT_OK:
        errors = replace_activity(out, walk.window)
        for line in errors:
            print(f"tagarchive: warning: {line}", file=sys.stderr)
        if any(not line.startswith("activity: a compaction is running") for line in errors):
            return EXIT_ENVIRONMENT
    if not quiet:
        coverage = walk.coverage()
        complete = sum(1 for c in coverage.values() if c == "complete")
        print(f"backfill {label}: {walk.pages} pages, {walk.posts} posts in the window, "
              f"{complete}/{len(coverage)} days complete"
              + ("" if complete == len(coverage) else
                 f", {len(coverage) - complete} lower bound") + f" (run {run.run_id}, {out})")
    return code


class RichProgress:
    """Pages, posts, the day reached and an ETA (chronological walks) on stderr."""

    def __init__(self, label: str, walk: Any) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task(label, total=None, detail="")
        self.progress.start()
        self.update(walk)

    def update(self, walk: Any) -> None:
        reached = walk.reached.date().isoformat() if walk.reached is not None else "-"
        detail = f"{walk.pages} pages · {walk.posts} posts · reached {reached}"
        fraction = walk.progress()
        if fraction is None:  # a ranked listing: how much is left cannot be known
            self.progress.update(self.task, detail=detail)
        else:
            self.progress.update(self.task, total=1000, completed=round(fraction * 1000),
                                 detail=detail)

    def close(self) -> None:
        self.progress.stop()
