"""`tagarchive worker` processes sharing one Redis queue (docs/distributed.md).

Real redis-server, real worker processes, the replica over HTTP (mastodon, weibo, and TikTok's
server-rendered pages), so each test exercises what a deployment runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from replica.server import ReplicaServer
from storage.reading import duckdb_connect
from tests.crawl_helpers import run_cli
from tests.distributed_helpers import (  # noqa: F401 - no_worker_left is a fixture
    QUEUE,
    enqueue,
    jobs_done,
    no_worker_left,
    runs,
    snapshot_counts,
    start_worker,
)
from tests.redis_helpers import RedisServer
from tests.s3_helpers import S3Bucket
from tests.wait_helpers import wait_until

PLATFORMS = ("mastodon", "weibo", "tiktok")


def _tags(replica: ReplicaServer, prefix: str, n: int) -> list[str]:
    tags = [f"{prefix}{i:03d}" for i in range(n)]
    for tag in tags:  # TikTok's server-rendered page: the HTTP path, no browser
        replica.world.set_variant("tiktok", tag, "ssr")
    return tags


def test_three_workers_store_every_tag_of_a_round_exactly_once_in_s3(
        replica: ReplicaServer, redis_server: RedisServer, s3_server: S3Bucket,
        tmp_path: Path) -> None:
    out = s3_server.url
    tags = _tags(replica, "dist", 100)
    queued = enqueue(redis_server, ",".join(PLATFORMS), tags, "r1")
    assert queued.code == 0, queued.stderr
    assert "queued 300 job(s) of round r1" in queued.stdout
    workers = [start_worker(redis_server, replica, out, f"w{i}", "--batch", "20",
                            "--no-archive", logs=tmp_path, env=s3_server.env) for i in range(3)]
    codes = {w.name: w.wait(timeout=150) for w in workers}
    assert codes == {"w0": 0, "w1": 0, "w2": 0}, [w.stderr()[-2000:] for w in workers]

    counts = snapshot_counts(out)  # read back from S3 through storage.reading
    assert set(counts) == {(p, t) for p in PLATFORMS for t in tags}
    assert set(counts.values()) == {1}  # exactly once for the round
    records = runs(out)
    assert {r["trigger"] for r in records} == {"worker:w0", "worker:w1", "worker:w2"}
    assert all(r["command"] == "worker" and r["verdict"] == "ok" for r in records)
    assert sum(r["snapshots"] for r in records) == 300
    # files from all workers: every snapshot file in the bucket is named after a batch's run
    worker_of = {r["run_id"]: r["trigger"] for r in records}
    files = [k for k in s3_server.objects("snapshots") if k.endswith(".parquet")]
    writers = {worker_of[run_id] for k in files for run_id in worker_of
               if f"part-{run_id}-" in k}
    assert writers == {"worker:w0", "worker:w1", "worker:w2"}

    con = duckdb_connect(out)
    (rows, pairs, run_ids), = con.execute(
        "SELECT count(*), count(DISTINCT (platform, tag)), count(DISTINCT run_id) "
        "FROM snapshots").fetchall()
    assert (rows, pairs) == (300, 300)
    assert run_ids >= 3

    client = redis_server.client()
    assert client.llen(f"{QUEUE}:jobs") == 0
    assert not list(client.scan_iter(match=f"{QUEUE}:inflight:*"))
    status = run_cli("status", "--redis", redis_server.url, "--queue", QUEUE, "--json")
    assert status.code == 0, status.stderr
    view = json.loads(status.stdout)["distributed"]
    assert view["queue_depth"] == 0
    assert {w["worker"]: w["state"] for w in view["workers"]} == {
        "w0": "stopped", "w1": "stopped", "w2": "stopped"}
    assert sum(w["jobs_done"] for w in view["workers"]) == 300


def test_a_worker_killed_mid_round_loses_nothing_and_its_jobs_are_redone(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tags = _tags(replica, "kill", 40)
    assert enqueue(redis_server, "mastodon,weibo", tags, "r1").code == 0
    # the victim is slow, so that it is caught holding jobs after it has finished some
    victim = start_worker(redis_server, replica, out, "victim", "--batch", "10",
                          "--delay", "0.2", "--concurrency", "1", idle_exit=5)
    client = redis_server.client()
    wait_until(lambda: jobs_done(redis_server, "victim") >= 10
               and client.llen(f"{QUEUE}:inflight:victim") > 0, 60, "victim mid-batch")
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    held = [json.loads(e)["tag"] for e in client.lrange(f"{QUEUE}:inflight:victim", 0, -1)]
    assert held
    others = [start_worker(redis_server, replica, out, f"w{i}", "--batch", "10", idle_exit=5)
              for i in range(2)]
    assert [w.wait(timeout=80) for w in others] == [0, 0], [w.stderr()[-2000:] for w in others]

    counts = snapshot_counts(out)
    missing = {(p, t) for p in ("mastodon", "weibo") for t in tags} - set(counts)
    assert missing == set()  # no loss
    duplicates = sum(n - 1 for n in counts.values())
    # only a kill between writing a batch and acknowledging it repeats jobs: at most one batch
    assert duplicates <= 10
    print(f"killed worker: held {len(held)} job(s), {duplicates} duplicate snapshot(s)")
    assert client.llen(f"{QUEUE}:inflight:victim") == 0
    assert client.llen(f"{QUEUE}:jobs") == 0
    redone = {r["trigger"] for r in runs(out) for o in r["outcomes"]
              if o["tag"] in held and o["status"] == "stored"}
    assert redone & {"worker:w0", "worker:w1"}  # the victim's jobs went to the others


def test_a_later_round_of_the_same_tags_is_crawled_again(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tags = _tags(replica, "again", 10)
    worker = start_worker(redis_server, replica, out, "w", idle_exit=6)
    assert enqueue(redis_server, "mastodon,weibo", tags, "r1").code == 0
    wait_until(lambda: jobs_done(redis_server, "w") == 20, 60, "round 1")
    # the same worker process (its dedupe state, the same job entries but for the round)
    assert enqueue(redis_server, "mastodon,weibo", tags, "r2").code == 0
    assert worker.wait(timeout=60) == 0, worker.stderr()[-2000:]
    counts = snapshot_counts(out)
    assert len(counts) == 20
    assert set(counts.values()) == {2}
    assert len({r["run_id"] for r in runs(out)}) >= 2


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stop_signal_finishes_or_hands_back_the_batch(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path, signum: int,
        code: int) -> None:
    out = tmp_path / "out"
    # more jobs than Scrapy's downloader holds at once (CONCURRENT_REQUESTS 16): a graceful
    # stop finishes the requests in the downloader and drops the rest, which go back
    tags = _tags(replica, "term", 40)
    assert enqueue(redis_server, "weibo", tags, "r1").code == 0
    worker = start_worker(redis_server, replica, out, "w", "--batch", "40", "--delay", "0.2",
                          "--concurrency", "1", idle_exit=30)
    client = redis_server.client()
    wait_until(lambda: client.llen(f"{QUEUE}:inflight:w") == 40, 30, "a batch under way")
    time.sleep(1)
    worker.proc.send_signal(signum)
    assert worker.wait(timeout=30) == code, worker.stderr()[-2000:]
    assert client.llen(f"{QUEUE}:inflight:w") == 0
    stored = set(snapshot_counts(out))
    back = {json.loads(e)["tag"] for e in client.lrange(f"{QUEUE}:jobs", 0, -1)}
    assert back, "nothing was handed back: the batch ended before the signal"
    assert {t for _p, t in stored} | back == set(tags)
    assert not {t for _p, t in stored} & back
    (record,) = runs(out)
    assert record["verdict"] == "interrupted"
    assert {o["tag"] for o in record["outcomes"]} == {t for _p, t in stored}


def test_redis_unreachable_at_start_is_one_line_and_exit_3(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    url = redis_server.url
    redis_server.stop()
    result = run_cli("worker", "--redis", url, "--out", str(tmp_path), "--no-browser",
                     "--replica", replica.url, timeout=60)
    assert result.code == 3
    assert result.stderr.strip().splitlines() == [
        f"tagarchive: error: Redis at {url} is unreachable: "
        + result.stderr.split("unreachable: ", 1)[1].strip()]
    bad = run_cli("enqueue", "weibo", "a", "--redis", "http://x", timeout=60)
    assert bad.code == 2
    assert "not a Redis URL" in bad.stderr
    env = {k: v for k, v in os.environ.items() if k != "TAGARCHIVE_REDIS"}
    missing = run_cli("enqueue", "weibo", "a", env=env, timeout=60)
    assert missing.code == 2
    assert "--redis" in missing.stderr


def test_redis_lost_mid_batch_keeps_the_rows_and_the_unacknowledged_jobs(
        replica: ReplicaServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        out = tmp_path / "out"
        tags = _tags(replica, "lost", 5)
        assert enqueue(server, "weibo", tags, "r1").code == 0
        worker = start_worker(server, replica, out, "w", "--batch", "5", "--delay", "0.4",
                              "--concurrency", "1", "--reconnect", "0.2,0.2", idle_exit=30)
        client = server.client()
        wait_until(lambda: client.llen(f"{QUEUE}:inflight:w") == 5, 30, "the batch taken")
        server.stop()
        assert worker.wait(timeout=60) == 3
        last = worker.stderr().strip().splitlines()[-1]
        assert last.startswith(f"tagarchive: error: Redis at {server.url} lost during "), last
        # the rows were written before the acknowledgement was tried
        assert set(snapshot_counts(out)) == {("weibo", t) for t in tags}
        server.start()  # persisted: the jobs are still in the worker's in-flight list
        held = {json.loads(e)["tag"] for e in server.client().lrange(f"{QUEUE}:inflight:w", 0, -1)}
        assert held == set(tags)
    finally:
        server.stop()


def test_a_worker_rides_out_a_short_redis_restart(
        replica: ReplicaServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        out = tmp_path / "out"
        tags = _tags(replica, "ride", 5)
        assert enqueue(server, "weibo", tags, "r1").code == 0
        worker = start_worker(server, replica, out, "w", "--batch", "5", "--delay", "0.4",
                              "--concurrency", "1", "--reconnect", "1,1,2,4", idle_exit=3)
        client = server.client()
        wait_until(lambda: client.llen(f"{QUEUE}:inflight:w") == 5, 30, "the batch taken")
        server.stop()
        server.start()
        assert worker.wait(timeout=60) == 0, worker.stderr()[-2000:]
        assert set(snapshot_counts(out).values()) == {1}
        assert len(snapshot_counts(out)) == 5
        assert server.client().llen(f"{QUEUE}:inflight:w") == 0
    finally:
        server.stop()
