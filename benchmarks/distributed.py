"""Distributed: TikTok tag pages per second with 1, 2 and 3 `tagarchive worker`s on one Redis.

All workers run on this machine against the replica (the HTTP path: server-rendered pages), so
they share its 2 cores with each other and with the replica: the ratio to one worker shows what
a second process buys here, not what a second machine would. Each setting gets a fresh queue
with the same N jobs. Throughput is N over the time from the first job taken to the last one
acknowledged (process start-up excluded; it is reported separately). The Redis overhead per
job is the time the workers spent in Redis calls (taking, acknowledging, heartbeats, reaping)
over the jobs done. The plain `tagarchive crawl` of the same tags, start to exit, is compared
with one worker, start to last acknowledgement.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import PYTHON, Figure, median, running_replica
from crawler.spiders.jobqueue import JobQueue, job_entry

PLATFORM = "tiktok"
TAGS = 300
QUICK_TAGS = 90
REPS = 2
CONCURRENCY = 16  # per worker, as the HTTP benchmark
WORKERS = (1, 2, 3)
BATCH = 50  # the worker's default
_REDIS_LINE = re.compile(r"(\d+) job\(s\) done; (\d+) Redis calls took ([0-9.]+) s")


def _worker(redis_url: str, prefix: str, replica_url: str, out: str, name: str,
            log: Path) -> subprocess.Popen[str]:
    argv = [PYTHON, "-m", "crawler.cli", "worker", "--redis", redis_url, "--queue", prefix,
            "--out", out, "--replica", replica_url, "--no-browser", "--worker-id", name,
            "--idle-exit", "1", "--batch", str(BATCH), "--delay", "0",
            "--concurrency", str(CONCURRENCY)]
    with open(log, "w", encoding="utf-8") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, text=True)


def _round(redis_url: str, replica_url: str, tags: list[str], workers: int,
           prefix: str) -> dict[str, float]:
    queue = JobQueue.from_url(redis_url, prefix)
    client = queue.client
    queue.enqueue([job_entry(PLATFORM, t, prefix) for t in tags])
    n = len(tags)
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        logs = [Path(tmp, f"w{i}.log") for i in range(workers)]
        started = time.perf_counter()
        procs = [_worker(redis_url, prefix, replica_url, str(Path(tmp, "out")), f"w{i}", log)
                 for i, log in enumerate(logs)]
        first = None
        while True:
            depth = client.llen(queue.jobs_key)
            if first is None and depth < n:
                first = time.perf_counter()
            held = sum(client.llen(k) for k in client.scan_iter(match=queue.inflight_key("*")))
            if depth == 0 and held == 0:
                done = time.perf_counter()
                break
            if any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError(f"a worker failed: {logs[0].read_text()[-800:]}")
            time.sleep(0.01)
        for proc in procs:
            proc.wait(timeout=120)
        calls = seconds = jobs = 0.0
        for log in logs:
            match = _REDIS_LINE.search(log.read_text())
            if match is None:
                raise RuntimeError(f"no summary line from a worker: {log.read_text()[-800:]}")
            jobs += int(match[1])
            calls += int(match[2])
            seconds += float(match[3])
    if jobs != n:
        raise RuntimeError(f"{jobs:.0f} jobs done for {n} queued")
    assert first is not None
    return {"pages_per_s": n / (done - first), "startup_s": first - started,
            "wall_s": done - started, "redis_s_per_job": seconds / n,
            "redis_calls_per_job": calls / n}


def _plain_crawl(replica_url: str, tags: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-dist-crawl-") as out:
        started = time.perf_counter()
        subprocess.run([PYTHON, "-m", "crawler.cli", "crawl", PLATFORM, *tags, "--out", out,
                        "--replica", replica_url, "--no-browser", "--delay", "0",
                        "--concurrency", str(CONCURRENCY), "--quiet"],
                       check=True, capture_output=True, timeout=600)
        return time.perf_counter() - started


def run(quick: bool = False, reps: int = REPS, tags: int | None = None,
        log: Any = print) -> dict[str, Any]:
    from tests.redis_helpers import RedisServer

    n = tags or (QUICK_TAGS if quick else TAGS)
    reps = 1 if quick else reps
    names = [f"benchdist{i:04d}" for i in range(n)]
    results: dict[int, list[dict[str, float]]] = {k: [] for k in WORKERS}
    plain: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, \
            running_replica() as server:
        redis = RedisServer(Path(tmp)).start()
        try:
            for name in names:
                server.world.set_variant(PLATFORM, name, "ssr")
            for rep in range(reps):
                for k in WORKERS if rep % 2 == 0 else WORKERS[::-1]:
                    result = _round(redis.url, server.url, names, k, f"bench{k}r{rep}")
                    results[k].append(result)
                    log(f"  distributed rep {rep + 1}/{reps} {k} worker(s): "
                        f"{result['pages_per_s']:.1f} pages/s, start-up "
                        f"{result['startup_s']:.1f} s, Redis {result['redis_s_per_job'] * 1e3:.2f}"
                        " ms/job")
                plain.append(_plain_crawl(server.url, names))
                log(f"  distributed rep {rep + 1}/{reps} plain crawl: {plain[-1]:.1f} s")
        finally:
            redis.stop()
    one = median([r["pages_per_s"] for r in results[1]])
    figures = []
    for k in WORKERS:
        value = median([r["pages_per_s"] for r in results[k]])
        figures.append(Figure(
            name=f"distributed {k} worker(s)", value=value, unit="pages/s",
            ratio=value / one if one else None, ratio_of="1 worker",
            samples=[r["pages_per_s"] for r in results[k]],
            note=(f"{n} TikTok ssr pages, concurrency {CONCURRENCY} per worker, first job taken "
                  "to last acknowledged; all workers and the replica on this machine's cores"
                  if k == 1 else "")))
    per_job = median([r["redis_s_per_job"] for k in WORKERS for r in results[k]])
    figures.append(Figure(
        name="distributed Redis time per job", value=per_job * 1e3, unit="ms",
        samples=[r["redis_s_per_job"] * 1e3 for k in WORKERS for r in results[k]],
        note="time inside Redis calls (take, ack, heartbeat, reap) over jobs, all settings"))
    one_wall = median([r["wall_s"] for r in results[1]])
    plain_wall = median(plain)
    figures.append(Figure(
        name="distributed 1 worker vs plain crawl", value=one_wall, unit="s",
        ratio=one_wall / plain_wall if plain_wall else None, ratio_of="plain crawl",
        samples=[r["wall_s"] for r in results[1]],
        note="process start to last acknowledgement, against `crawl` process start to exit"))
    return {"figures": figures,
            "runs": {str(k): v for k, v in results.items()} | {"plain_crawl_s": plain},
            "params": {"tags": n, "concurrency": CONCURRENCY, "reps": reps}}


def kill_rounds(reps: int, batch: int = 10, log: Any = print) -> list[dict[str, Any]]:
    """Three workers, 150 jobs; one worker SIGKILLed at a random moment; count the jobs lost
    and the snapshots stored twice (docs/distributed.md, "When a worker dies")."""
    import json
    import random
    import signal

    from replica.server import ReplicaServer
    from replica.world import World
    from tests.distributed_helpers import QUEUE, enqueue, snapshot_counts, start_worker
    from tests.redis_helpers import RedisServer

    results = []
    chance = random.Random(7)
    with ReplicaServer(world=World(seed=2025)) as replica:
        for rep in range(reps):
            with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp:
                redis = RedisServer(Path(tmp, "redis")).start()
                try:
                    tags = [f"benchkill{rep}x{i:03d}" for i in range(75)]
                    enqueue(redis, "mastodon,weibo", tags, "r1")
                    out = Path(tmp, "out")
                    workers = [start_worker(redis, replica, out, f"w{i}", "--batch", str(batch),
                                            idle_exit=4) for i in range(3)]
                    client = redis.client()
                    while client.llen(f"{QUEUE}:jobs") > 140:
                        time.sleep(0.01)
                    time.sleep(chance.uniform(0, 1.5))
                    workers[0].proc.send_signal(signal.SIGKILL)
                    workers[0].wait(10)
                    held = client.llen(f"{QUEUE}:inflight:w0")
                    codes = [w.wait(120) for w in workers[1:]]
                    counts = snapshot_counts(out)
                    wanted = {(p, t) for p in ("mastodon", "weibo") for t in tags}
                    result = {"held_at_kill": held, "lost": len(wanted - set(counts)),
                              "stored_twice": sum(n - 1 for n in counts.values()),
                              "exit_codes": codes,
                              "left_in_flight": client.llen(f"{QUEUE}:inflight:w0")}
                finally:
                    redis.stop()
            results.append(result)
            log(json.dumps(result))
    return results


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--kills", type=int, default=0,
                        help="repeat the SIGKILL scenario this many times, not the throughput")
    options = parser.parse_args()
    if options.kills:
        found = kill_rounds(options.kills)
        print(f"{len(found)} kills: {sum(r['held_at_kill'] > 0 for r in found)} holding jobs, "
              f"{sum(r['lost'] for r in found)} jobs lost, "
              f"{sum(r['stored_twice'] > 0 for r in found)} with a batch stored twice")
    else:
        for figure in run()["figures"]:
            print(figure.name, round(figure.value, 2), figure.unit, figure.ratio)
