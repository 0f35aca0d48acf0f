"""Tag jobs in Redis for `tagarchive worker`, `enqueue`, the scheduler and `status`.

No Scrapy here: the worker spider (crawler/spiders/worker.py) takes its jobs from it, and the
producers and readers above it (`enqueue`, the scheduler, `status`) share it; it sits beside the
spider so both may import it.

Keys, under a prefix (default "tagarchive"):

- ``<prefix>:jobs``: a list of JSON job entries ``{"platform", "tag", "round", "enqueued_at"}``
  (plus "watch" and "trigger" from the scheduler). Producers RPUSH, workers take from the left.
- ``<prefix>:inflight:<worker>``: jobs a worker has taken. A job moves there atomically (LMOVE)
  and is removed (LREM) only after its rows are written, so a worker that dies loses nothing.
- ``<prefix>:worker:<worker>``: the heartbeat, a key with a time to live. When it has expired,
  any worker or producer (the reaper) moves that worker's in-flight jobs back onto the queue.
- ``<prefix>:workers``: a hash worker -> JSON (host, pid, started, last beat, jobs done), for
  `status`; ``<prefix>:dead``: entries that are not valid jobs, kept for a person to read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from crawler.logredact import display_url

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "tagarchive"
HEARTBEAT_SECONDS = 5.0
# a worker is presumed dead when its heartbeat key is this many beats old
HEARTBEAT_TTL_BEATS = 3
# how long a worker keeps retrying a lost Redis before it gives up (exit 3)
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
# a worker's entry in <prefix>:workers is dropped this long after its last beat
FORGET_AFTER_SECONDS = 86_400.0

T = TypeVar("T")


class RedisLost(Exception):
    """Redis cannot be reached (at start, or for longer than the reconnect attempts)."""


class BadJob(ValueError):
    """A queue entry that is not a valid job."""


def check_redis_url(url: str) -> str:
    """ValueError unless `url` is a redis:// , rediss:// or unix:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or (
            parts.scheme != "unix" and not parts.hostname):
        raise ValueError(f"not a Redis URL (redis://host:6379/0): {display_url(url)!r}")
    return url


def connect(url: str, timeout: float = 5.0) -> Any:
    """A client for `url`, checked with PING; RedisLost (one line) if it cannot be reached."""
    import redis

    check_redis_url(url)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                  health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisLost(f"Redis at {display_url(url)} is unreachable: {_reason(exc)}") from None
    return client


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def new_round_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


def job_entry(platform: str, tag: str, round_id: str, **extra: str | None) -> str:
    """One queue entry, as JSON (keys sorted so equal jobs are equal strings)."""
    entry: dict[str, Any] = {"platform": platform, "tag": tag, "round": round_id,
                             "enqueued_at": datetime.now(UTC).isoformat()}
    entry.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def parse_entry(raw: bytes | str) -> dict[str, Any]:
    """The job in a queue entry; BadJob if it is not one."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        entry = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise BadJob(f"not JSON: {raw[:80]!r}") from None
    if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry.get(k) for k in ("platform", "tag")):
        raise BadJob(f"a job needs string 'platform' and 'tag': {str(entry)[:80]}")
    return entry


def enqueue_tags(queue: JobQueue, platforms: Sequence[str], tags: Sequence[str], round_id: str,
                 **extra: str | None) -> int:
    """Queue one job per (platform, tag), then requeue the jobs of dead workers; returns how
    many were queued (`enqueue`, and the scheduler's distributed mode)."""
    entries = [job_entry(p, t, round_id, **extra) for p in platforms for t in tags]
    count = queue.enqueue(entries)
    queue.reap()
    return count


@dataclass
class WorkerInfo:
    """One worker as `status` shows it."""

    worker: str
    host: str | None
    pid: int | None
    started_at: str | None
    last_beat: str | None
    jobs_done: int
    in_flight: int
    alive: bool
    state: str | None


@dataclass
class QueueStatus:
    url: str
    prefix: str
    depth: int
    dead: int
    workers: list[WorkerInfo]


class JobQueue:
    """The Redis side of distributed crawling (see the module docstring for the keys)."""

    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX, url: str = "",
                 retry_delays: Sequence[float] = RECONNECT_DELAYS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.prefix = prefix
        self.url = display_url(url) if url else "redis"
        self.retry_delays = tuple(retry_delays)
        self.sleep = sleep
        self.redis_seconds = 0.0  # time spent waiting for Redis (the overhead per job)
        self.redis_calls = 0
        self.jobs_done = 0  # acknowledged by this process (shown by `status`)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> JobQueue:
        return cls(connect(url), prefix, url, **kwargs)

    # --- keys ---

    @property
    def jobs_key(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def dead_key(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def workers_key(self) -> str:
        return f"{self.prefix}:workers"

    def inflight_key(self, worker: str) -> str:
        return f"{self.prefix}:inflight:{worker}"

    def beat_key(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    # --- calling Redis ---

    def call(self, what: str, fn: Callable[[], T], retry: bool = True) -> T:
        """Run one Redis operation; on a lost connection retry with backoff, then RedisLost.

        Every operation here is safe to repeat: LMOVE of an entry already moved finds nothing,
        LREM of an entry already removed removes nothing.
        """
        import redis

        delays = self.retry_delays if retry else ()
        attempt = 0
        while True:
            begun = time.perf_counter()
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt >= len(delays):
                    raise RedisLost(f"Redis at {self.url} lost during {what}: {_reason(exc)} "
                                    f"(gave up after {attempt + 1} attempt(s))") from None
                logger.warning("Redis at %s unreachable during %s (%s); retrying in %gs",
                               self.url, what, _reason(exc), delays[attempt])
                self.sleep(delays[attempt])
                attempt += 1
            finally:
                self.redis_seconds += time.perf_counter() - begun
                self.redis_calls += 1

    # --- producers ---

    def enqueue(self, entries: Iterable[str]) -> int:
        """Append job entries to the queue; returns how many were added."""
        entries = list(entries)
        if not entries:
            return 0

        def push() -> int:
            with self.client.pipeline(transaction=True) as pipe:
                for start in range(0, len(entries), 1000):
                    pipe.rpush(self.jobs_key, *entries[start:start + 1000])
                pipe.execute()
            return len(entries)

        return self.call("enqueue", push, retry=False)

    def depth(self) -> int:
        return int(self.call("queue depth", lambda: self.client.llen(self.jobs_key)))

    # --- workers ---

    def take(self, worker: str, count: int) -> list[bytes]:
        """Move up to `count` jobs from the queue to this worker's in-flight list, atomically
        per job (LMOVE): a job is always in exactly one of the two lists."""
        def move() -> list[bytes]:
            with self.client.pipeline(transaction=True) as pipe:
                for _ in range(count):
                    pipe.lmove(self.jobs_key, self.inflight_key(worker), "LEFT", "RIGHT")
                return [e for e in pipe.execute() if e is not None]

        return self.call("taking jobs", move)

    def ack(self, worker: str, entries: Sequence[bytes], done: int | None = None) -> None:
        """Drop finished jobs from the in-flight list (their rows are written by now)."""
        if not entries:
            return

        def remove() -> None:
            with self.client.pipeline(transaction=True) as pipe:
                for entry in entries:
                    pipe.lrem(self.inflight_key(worker), 1, entry)
                pipe.execute()

        self.call("acknowledging jobs", remove)
        self.jobs_done += len(entries) if done is None else done

    def hand_back(self, worker: str, entries: Sequence[bytes]) -> None:
        """Put unfinished jobs back at the head of the queue (a stopping worker)."""
        if not entries:
            return

        def give() -> None:
            with self.client.pipeline(transaction=True) as pipe:
                for entry in reversed(entries):
                    pipe.lrem(self.inflight_key(worker), 1, entry)
                    pipe.lpush(self.jobs_key, entry)
                pipe.execute()

        self.call("handing jobs back", give)

    def bury(self, worker: str, entry: bytes, why: str) -> None:
        """Move an entry that is not a valid job to <prefix>:dead, with the reason."""
        record = json.dumps({"entry": entry.decode("utf-8", errors="replace"), "why": why,
                             "worker": worker, "at": datetime.now(UTC).isoformat()})

        def move() -> None:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.lrem(self.inflight_key(worker), 1, entry)
                pipe.rpush(self.dead_key, record)
                pipe.execute()

        self.call("setting a bad job aside", move)

    def beat(self, worker: str, info: dict[str, Any], interval: float,
             retry: bool = False) -> bool:
        """Refresh the heartbeat; False if it had expired (others may have requeued our jobs)."""
        info = {**info, "last_beat": datetime.now(UTC).isoformat(), "jobs_done": self.jobs_done}
        text = json.dumps(info, sort_keys=True)
        ttl_ms = int(interval * HEARTBEAT_TTL_BEATS * 1000)

        def refresh() -> Any:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self.beat_key(worker), text, px=ttl_ms, get=True)
                pipe.hset(self.workers_key, worker, text)
                return pipe.execute()[0]

        return self.call("heartbeat", refresh, retry=retry) is not None

    def leave(self, worker: str, info: dict[str, Any]) -> None:
        """A worker that stops cleanly: no heartbeat left, its entry says stopped."""
        info = {**info, "last_beat": datetime.now(UTC).isoformat(), "jobs_done": self.jobs_done,
                "state": "stopped"}

        def go() -> None:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.beat_key(worker))
                pipe.hset(self.workers_key, worker, json.dumps(info, sort_keys=True))
                pipe.execute()

        self.call("leaving", go, retry=False)

    def reap(self) -> int:
        """Requeue the in-flight jobs of every worker whose heartbeat has expired; returns how
        many jobs went back. Safe to run from many processes at once: each LMOVE is atomic."""
        def sweep() -> int:
            moved = 0
            pattern = self.inflight_key("*")
            for key in self.client.scan_iter(match=pattern, count=500):
                worker = key.decode("utf-8", errors="replace")[len(self.inflight_key("")):]
                if self.client.exists(self.beat_key(worker)):
                    continue
                # to the head: these jobs have waited longest
                while self.client.lmove(key, self.jobs_key, "RIGHT", "LEFT") is not None:
                    moved += 1
            return moved

        moved = self.call("reaping", sweep, retry=False)
        if moved:
            logger.warning("requeued %d job(s) of worker(s) whose heartbeat expired", moved)
        return moved

    def status(self) -> QueueStatus:
        """Queue depth and every known worker, for `tagarchive status`."""
        def read() -> QueueStatus:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.llen(self.jobs_key)
                pipe.llen(self.dead_key)
                pipe.hgetall(self.workers_key)
                depth, dead, raw = pipe.execute()
            workers = []
            now = time.time()
            for name, value in sorted(raw.items()):
                worker = name.decode("utf-8", errors="replace")
                try:
                    info = json.loads(value)
                except ValueError:
                    info = {}
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.exists(self.beat_key(worker))
                    pipe.llen(self.inflight_key(worker))
                    alive, in_flight = pipe.execute()
                last = info.get("last_beat")
                if (not alive and not in_flight and last
                        and now - datetime.fromisoformat(last).timestamp() > FORGET_AFTER_SECONDS):
                    self.client.hdel(self.workers_key, name)
                    continue
                state = info.get("state") if not alive else "running"
                if not alive and state != "stopped":
                    state = "gone"
                workers.append(WorkerInfo(
                    worker=worker, host=info.get("host"), pid=info.get("pid"),
                    started_at=info.get("started_at"), last_beat=last,
                    jobs_done=int(info.get("jobs_done") or 0), in_flight=int(in_flight),
                    alive=bool(alive), state=state))
            return QueueStatus(self.url, self.prefix, int(depth), int(dead), workers)

        return self.call("reading status", read, retry=False)
