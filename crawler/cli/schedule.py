"""Commands for scheduled crawls: `schedule run|list|run-now`, `crontab`, `status`, `config check`.

Exit codes: 0 ok; 2 a config or usage error (one line naming file, key and problem); 3 the
state directory is held by another scheduler; `schedule run-now` exits with its crawl's code
(1 if the fire was skipped, timed out or crashed, 130 if interrupted); `status --check` exits
4 when a watch is not fresh and healthy; `schedule resume PLATFORM` exits 0 (paused or not), 2 for
an unknown platform.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any, TypedDict

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TAG_FAILED,
    EXIT_UNHEALTHY,
    EXIT_USAGE,
)
from crawler.services.watchconfig import find_config, load_config
from crawler.services.watchmodel import Config
from crawler.services.watchvalues import ConfigError


def _config(args: argparse.Namespace, need_watches: bool = True) -> Config:
    try:
        config = load_config(find_config(args.config))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if need_watches and not config.watches:
        raise UsageError(f"{config.path}: watches: no watch defined: add a [watches.<name>] table")
    return config


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="the TOML config (default: $TAGARCHIVE_CONFIG, else ./tagarchive.toml)")


def _add_logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one object per line with run_id, watch, verdict... as keys")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def cmd_schedule_run(args: argparse.Namespace) -> int:
    from crawler.services.jobstore import service_lock_path
    from crawler.services.locks import LockBusy, lock_holder
    from crawler.services.scheduler import ScheduleService
    from crawler.services.servicelog import setup_logging

    config = _config(args)

    def busy(pid: object) -> EnvironmentProblem:
        # APScheduler: "Job stores must never be shared between schedulers"
        return EnvironmentProblem(f"another scheduler (pid {pid}) is using the state directory "
                                  f"{config.state_dir}")

    holder = lock_holder(service_lock_path(config))
    if holder is not None:  # said before any logging starts; run() checks again, atomically
        raise busy(holder)
    handler = setup_logging(args.log_format, getattr(logging, args.log_level))
    try:
        return ScheduleService(config).run()
    except LockBusy as exc:
        raise busy(exc) from None
    except OSError as exc:
        raise EnvironmentProblem(f"state directory {config.state_dir}: {exc.strerror}") from None
    finally:
        logging.getLogger().removeHandler(handler)


class _WatchRow(TypedDict):
    """One watch as `schedule list` shows it (and prints it with --json)."""

    watch: str
    enabled: bool
    cadence: str
    platforms: list[str]
    tags: list[str]
    timeout: str
    next_run: str | None


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from crawler.services.jobstore import stored_next_runs
    from crawler.services.watchvalues import format_duration

    config = _config(args)
    next_runs = stored_next_runs(config)
    rows: list[_WatchRow] = []
    for watch in config.watches.values():
        nxt = next_runs.get(watch.name)
        rows.append({
            "watch": watch.name, "enabled": watch.enabled, "cadence": watch.cadence.describe(),
            "platforms": list(watch.platforms), "tags": list(watch.tags),
            "timeout": format_duration(watch.timeout),
            "next_run": nxt.isoformat().replace("+00:00", "Z") if nxt and watch.enabled else None,
        })
    if args.json:
        print(json.dumps({"config": str(config.path), "watches": rows}, ensure_ascii=False,
                         indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"watches in {config.path}", title_justify="left")
    for column in ("watch", "cadence", "platforms", "tags", "timeout", "next run"):
        table.add_column(column, overflow="fold")
    for row in rows:
        when = row["next_run"] or ("disabled" if not row["enabled"] else
                                   "when `tagarchive schedule run` starts")
        table.add_row(row["watch"], row["cadence"], ", ".join(row["platforms"]),
                      ", ".join(row["tags"]), row["timeout"], when)
    Console().print(table)
    return EXIT_OK


def cmd_schedule_run_now(args: argparse.Namespace) -> int:
    from crawler.services.alerts.service import after_fire
    from crawler.services.fires import RUN_NOW
    from crawler.services.runner import CrawlRunner
    from crawler.services.servicelog import setup_logging

    config = _config(args)
    try:
        config.watch(args.watch)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    handler = setup_logging(args.log_format, getattr(logging, args.log_level))
    runner = CrawlRunner(config)

    def interrupted(*_: Any) -> None:  # end the crawl cleanly rather than orphan it
        threading.Thread(target=runner.end_all, args=("stopping",), daemon=True).start()

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = runner.fire(args.watch, RUN_NOW)
        after_fire(config, result)  # [[alert]]s, as after a scheduled fire (docs/alerts.md)
    finally:
        for signum, previous_handler in previous.items():
            signal.signal(signum, previous_handler)
        logging.getLogger().removeHandler(handler)
    if result.verdict == "interrupted":
        return EXIT_INTERRUPTED
    if result.recorded_by == "crawl" and result.exit_code is not None and result.exit_code >= 0:
        return result.exit_code
    if config.distributed is not None and result.verdict == "ok":  # jobs queued for workers
        print(f"run {result.run_id}: {result.reason}")
        return EXIT_OK
    print(f"tagarchive: run {result.run_id}: {result.verdict}: {result.reason}", file=sys.stderr)
    if result.exit_code in (EXIT_USAGE, EXIT_ENVIRONMENT):  # the crawl's own one-line error
        return result.exit_code
    return EXIT_TAG_FAILED


def cmd_schedule_resume(args: argparse.Namespace) -> int:
    """End a platform's pause after a lost login (crawler/services/pauses.py) by hand."""
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.services.pauses import active, lift

    config = _config(args, need_watches=False)
    try:
        platform = platform_class(args.platform).name
    except UnknownPlatformError as exc:
        raise UsageError(str(exc)) from None
    pause = active(config).get(platform)
    if pause is None or not lift(config, platform, "tagarchive schedule resume"):
        print(f"{platform}: not paused")
        return EXIT_OK
    print(f"{platform}: resumed (paused since {pause.since}); its watches crawl it from their "
          "next fire")
    return EXIT_OK


def cmd_crontab(args: argparse.Namespace) -> int:
    from crawler.services.crontab import crontab_lines

    lines, warnings = crontab_lines(_config(args))
    print("\n".join(lines))
    for warning in warnings:
        print(f"tagarchive: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from crawler.services.status import (
        as_json,
        collect,
        collect_queue,
        queue_json,
        render,
        render_queue,
    )

    # with --redis and no config, only the workers and the queue are shown
    config = None if (args.redis and not args.config and not _has_config()) else _config(args)
    redis_url = args.redis or (config.distributed.redis if config and config.distributed else None)
    prefix = args.queue or (config.distributed.queue if config and config.distributed
                            else "tagarchive")
    status = collect(config) if config is not None else None
    queue = None
    if redis_url:
        from crawler.spiders.jobqueue import RedisLost

        try:
            queue = collect_queue(redis_url, prefix)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except RedisLost as exc:
            raise EnvironmentProblem(str(exc)) from None
    if args.json:
        view = as_json(status) if status is not None else {}
        if queue is not None:
            view["distributed"] = queue_json(queue)
        print(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        from rich.console import Console

        console = Console()
        if status is not None:
            render(status, console)
        if queue is not None:
            render_queue(queue, console)
    if (args.check and status is not None
            and not all(w.fresh and w.healthy for w in status.watches if w.enabled)):
        return EXIT_UNHEALTHY
    return EXIT_OK


def _has_config() -> bool:
    try:
        find_config(None)
    except ConfigError:
        return False
    return True


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args, need_watches=False)
    pairs = sum(len(w.platforms) * len(w.tag_keys) for w in config.watches.values())
    print(f"{config.path}: ok: {len(config.watches)} watch(es) "
          f"({', '.join(config.watches)}), {pairs} (platform, tag) pair(s); "
          f"out {config.out}; state {config.state_dir}")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `schedule`, `crontab`, `status` and `config` to the `tagarchive` command line."""
    schedule = sub.add_parser("schedule", help="run watches on their cadence (APScheduler)")
    actions = schedule.add_subparsers(dest="schedule_command", required=True)
    run = actions.add_parser("run", help="the foreground service: fire each watch's crawl")
    _add_config(run)
    _add_logging(run)
    run.set_defaults(func=cmd_schedule_run)
    listing = actions.add_parser("list", help="watches, cadence and next run")
    _add_config(listing)
    listing.add_argument("--json", action="store_true", help="JSON for scripts")
    listing.set_defaults(func=cmd_schedule_list)
    now = actions.add_parser("run-now", help="crawl one watch now, in the foreground")
    now.add_argument("watch", help="the watch's name in the config")
    _add_config(now)
    _add_logging(now)
    now.set_defaults(func=cmd_schedule_run_now)
    resume = actions.add_parser("resume", help="crawl a platform paused after a lost login "
                                               "again, from each watch's next fire")
    resume.add_argument("platform", help="the paused platform, as `status` names it")
    _add_config(resume)
    resume.set_defaults(func=cmd_schedule_resume)

    crontab = sub.add_parser("crontab", help="print crontab lines equivalent to the watches")
    _add_config(crontab)
    crontab.set_defaults(func=cmd_crontab)

    status = sub.add_parser("status", help="last run, verdict and freshness of every watch")
    _add_config(status)
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.add_argument("--redis", metavar="URL",
                        help="also the workers and queue depth in this Redis (default: the "
                             "config's [distributed] redis)")
    status.add_argument("--queue", metavar="PREFIX",
                        help="prefix of the Redis keys (default: [distributed] queue, "
                             "else tagarchive)")
    status.add_argument("--check", action="store_true",
                        help="exit 4 unless every enabled watch is fresh and healthy")
    status.set_defaults(func=cmd_status)

    config = sub.add_parser("config", help="check the TOML config")
    checks = config.add_subparsers(dest="config_command", required=True)
    check = checks.add_parser("check", help="load and validate the config, nothing else")
    _add_config(check)
    check.set_defaults(func=cmd_config_check)
