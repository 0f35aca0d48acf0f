"""`tagarchive worker` and `tagarchive enqueue`: crawl tag jobs from Redis on many machines.

Exit codes: `worker` 0 when it stopped by itself (--idle-exit) or on SIGTERM after handing
back what it had not finished, 130 on SIGINT, 2 usage, 3 Redis unreachable at start, lost for
longer than the reconnect attempts, or storage failed (everything stored so far stays stored,
unacknowledged jobs stay in Redis); `enqueue` 0, 2 usage, 3 Redis unreachable.
See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.cli.main import (
    _add_crawl_options,
    _load_sessions,
    build_settings,
    crawler_process,
    load_config_sources,
    prepare_out,
    project_settings,
    resolve_base_urls,
    start_process,
)
from crawler.extensions.runrecord import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    recorded_settings,
)

REDIS_ENV = "TAGARCHIVE_REDIS"


def _queue(args: argparse.Namespace) -> Any:
    from crawler.spiders.jobqueue import JobQueue, RedisLost, check_redis_url

    if not args.redis:
        raise UsageError(f"give --redis redis://host:6379/0 (or set ${REDIS_ENV})")
    try:
        check_redis_url(args.redis)
        return JobQueue.from_url(args.redis, args.queue)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except RedisLost as exc:
        raise EnvironmentProblem(str(exc)) from None


def _add_redis(p: argparse.ArgumentParser) -> None:
    from crawler.spiders.jobqueue import DEFAULT_PREFIX

    p.add_argument("--redis", default=os.environ.get(REDIS_ENV), metavar="URL",
                   help=f"redis://[:password@]host:6379/0 (default: ${REDIS_ENV})")
    p.add_argument("--queue", default=DEFAULT_PREFIX, metavar="PREFIX",
                   help=f"prefix of the Redis keys (default: {DEFAULT_PREFIX})")


def cmd_enqueue(args: argparse.Namespace) -> int:
    from crawler.platforms import UnknownPlatformError, parse_platforms
    from crawler.spiders.jobqueue import RedisLost, enqueue_tags, new_round_id
    from crawler.text.tags import InvalidTagError, parse_tag_arg

    load_config_sources(args.config)
    tags = list(args.tags)
    if args.from_file:
        try:
            text = Path(args.from_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--from-file {args.from_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--from-file {args.from_file}: not UTF-8 text") from None
        tags += [line.strip() for line in text.splitlines() if line.strip()]
    if not tags:
        raise UsageError("no tags: name them, or give --from-file FILE")
    try:
        platforms = parse_platforms(args.platforms)
        keys = []
        for tag in tags:  # validated here, so a worker never meets a bad tag from us
            ref = parse_tag_arg(tag)
            keys.append(f"id:{ref.id}" if ref.id is not None else tag)
    except (UnknownPlatformError, InvalidTagError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    queue = _queue(args)
    round_id = args.round or new_round_id()
    try:
        count = enqueue_tags(queue, platforms, list(dict.fromkeys(keys)), round_id)
        depth = queue.depth()
    except RedisLost as exc:
        raise EnvironmentProblem(str(exc)) from None
    print(f"queued {count} job(s) of round {round_id} on {queue.url} "
          f"(queue {queue.jobs_key}: {depth} waiting)")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from crawler.platforms import REGISTRY
    from crawler.spiders.jobqueue import new_worker_id
    from crawler.spiders.worker import BatchRunState, WorkerSpider

    load_config_sources(args.config)
    if args.batch < 1 or args.heartbeat <= 0 or args.idle_exit < 0:
        raise UsageError("--batch must be at least 1, --heartbeat above 0, --idle-exit >= 0")
    platforms = sorted(REGISTRY)  # a worker takes whatever jobs come
    base_urls = resolve_base_urls(platforms, args.base_url, args.replica, dict(os.environ))
    sessions = _load_sessions(platforms, args.session)
    out = prepare_out(args.out)
    try:
        delays = tuple(float(d) for d in args.reconnect.split(",") if d.strip())
    except ValueError:
        raise UsageError(f"--reconnect expects seconds like 0.5,1,2: {args.reconnect!r}") from None
    queue = _queue(args)
    queue.retry_delays = delays
    overrides = build_settings(args, base_urls, platforms)
    # health checks read the stored history; once per batch that is most of a worker's work
    # on a large or remote root. `-s TAGARCHIVE_HEALTH_ENABLED=true` turns them on.
    overrides.setdefault("TAGARCHIVE_HEALTH_ENABLED", "false")
    settings = project_settings(overrides)
    worker_id = args.worker_id or new_worker_id()
    summary = recorded_settings(settings)

    def new_run(jobs: list[Any]) -> BatchRunState:
        return BatchRunState(
            out=out, jobs=jobs, command="worker", argv=args.argv, settings_json=summary,
            sessions=sessions, trigger=f"worker:{worker_id}")

    process = crawler_process(settings, args.log_format)
    crawler = process.create_crawler(WorkerSpider)
    process.crawl(crawler, run=new_run([]), queue=queue, worker_id=worker_id,
                  batch_size=args.batch, idle_exit=args.idle_exit, heartbeat=args.heartbeat,
                  poll=min(1.0, args.heartbeat), new_run=new_run)
    start_process(process)
    spider = crawler.spider
    if spider is None:  # the spider never opened (its own error is in the log above)
        raise EnvironmentProblem("the worker could not start")
    if spider.fatal:
        print(f"tagarchive: error: {spider.fatal}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if not args.quiet:
        print(f"worker {worker_id}: {spider.batches} batch(es), {queue.jobs_done} job(s) done; "
              f"{queue.redis_calls} Redis calls took {queue.redis_seconds:.3f} s")
    if spider.stopping_signal == signal.SIGINT:
        return EXIT_INTERRUPTED
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `worker` and `enqueue` to the `tagarchive` command line."""
    worker = sub.add_parser("worker", help="crawl tag jobs taken from Redis, until stopped")
    _add_redis(worker)
    worker.add_argument("--idle-exit", type=float, default=0.0, metavar="SECONDS",
                        help="stop after this long with no job (default: never)")
    worker.add_argument("--batch", type=int, default=50, metavar="N",
                        help="jobs taken at once; their rows are written and the jobs "
                             "acknowledged when all N are done (default 50)")
    worker.add_argument("--worker-id", metavar="ID",
                        help="name in Redis and in `status` (default: host-pid-random)")
    worker.add_argument("--heartbeat", type=float, default=5.0, metavar="SECONDS",
                        help="heartbeat interval; a worker silent for 3 beats is presumed "
                             "dead and its jobs are requeued (default 5)")
    worker.add_argument("--reconnect", default="0.5,1,2,4,8", metavar="S,S,...",
                        help="when Redis is lost, wait this long before each new attempt; "
                             "then exit 3 (default 0.5,1,2,4,8)")
    _add_crawl_options(worker)
    worker.set_defaults(func=cmd_worker)

    enqueue = sub.add_parser("enqueue", help="queue tag jobs in Redis for the workers")
    enqueue.add_argument("platforms", help="comma-separated, e.g. tiktok,weibo")
    enqueue.add_argument("tags", nargs="*", help="tag names (with or without #), or id:<id>")
    enqueue.add_argument("--from-file", metavar="FILE", help="also these tags, one a line")
    enqueue.add_argument("--round", metavar="ID", help="round id (default: the UTC time)")
    enqueue.add_argument("--config", metavar="FILE",
                         help="TOML config whose [[source]] tables add platforms")
    _add_redis(enqueue)
    enqueue.set_defaults(func=cmd_enqueue)
