"""The Redis side of distributed crawling, against a real redis-server
(crawler/spiders/jobqueue.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.logredact import display_url
from crawler.spiders.jobqueue import (
    BadJob,
    JobQueue,
    RedisLost,
    check_redis_url,
    connect,
    job_entry,
    parse_entry,
)
from tests.redis_helpers import RedisServer
from tests.wait_helpers import wait_until


def _queue(server: RedisServer, **kwargs: object) -> JobQueue:
    return JobQueue.from_url(server.url, "t", **kwargs)  # type: ignore[arg-type]


def test_taking_moves_each_job_into_the_worker_list_and_ack_removes_it(
        redis_server: RedisServer) -> None:
    queue = _queue(redis_server)
    queue.enqueue([job_entry("weibo", f"tag{i}", "r1") for i in range(5)])
    taken = queue.take("w1", 3)
    assert [parse_entry(e)["tag"] for e in taken] == ["tag0", "tag1", "tag2"]
    client = redis_server.client()
    assert client.llen("t:jobs") == 2
    assert client.lrange("t:inflight:w1", 0, -1) == taken
    queue.ack("w1", taken[:2])
    assert client.lrange("t:inflight:w1", 0, -1) == taken[2:]
    assert queue.jobs_done == 2
    queue.hand_back("w1", taken[2:])
    assert client.llen("t:inflight:w1") == 0
    assert client.lindex("t:jobs", 0) == taken[2]  # back at the head
    assert len(queue.take("w1", 10)) == 3  # fewer than asked: what there is


def test_the_reaper_requeues_jobs_of_a_worker_whose_heartbeat_expired(
        redis_server: RedisServer) -> None:
    queue = _queue(redis_server)
    client = redis_server.client()
    queue.enqueue([job_entry("weibo", f"tag{i}", "r1") for i in range(4)])
    assert queue.beat("dead", {"host": "h", "pid": 1}, 100) is False  # first beat: new key
    assert queue.beat("alive", {"host": "h", "pid": 2}, 100) is False
    queue.take("dead", 2)
    queue.take("alive", 1)
    assert queue.reap() == 0  # both heartbeats are fresh
    assert queue.beat("dead", {"host": "h", "pid": 1}, 0.1) is True  # its last: 3 beats of 0.1 s
    wait_until(lambda: not client.exists("t:worker:dead"), 30, "the dead worker's key to expire")
    assert queue.reap() == 2
    assert client.llen("t:jobs") == 3
    assert client.llen("t:inflight:dead") == 0
    assert client.llen("t:inflight:alive") == 1
    status = queue.status()
    assert status.depth == 3
    states = {w.worker: (w.state, w.in_flight, w.alive) for w in status.workers}
    assert states == {"alive": ("running", 1, True), "dead": ("gone", 0, False)}


def test_a_worker_whose_heartbeat_expired_learns_it(redis_server: RedisServer) -> None:
    queue = _queue(redis_server)
    queue.beat("w", {}, 100)
    assert queue.beat("w", {}, 0.05) is True  # in time; and the next is late
    wait_until(lambda: not redis_server.client().exists("t:worker:w"), 30,
               "the heartbeat to expire")
    assert queue.beat("w", {}, 0.05) is False


def test_an_entry_that_is_no_job_is_set_aside_with_its_reason(redis_server: RedisServer) -> None:
    queue = _queue(redis_server)
    queue.enqueue(["not json"])
    (entry,) = queue.take("w", 1)
    with pytest.raises(BadJob):
        parse_entry(entry)
    with pytest.raises(BadJob):
        parse_entry(json.dumps({"platform": "weibo"}))
    queue.bury("w", entry, "not JSON")
    client = redis_server.client()
    assert client.llen("t:inflight:w") == 0
    assert json.loads(client.lindex("t:dead", 0))["entry"] == "not json"
    assert queue.status().dead == 1


def test_redis_lost_is_named_after_bounded_retries(redis_server: RedisServer) -> None:
    slept: list[float] = []
    queue = _queue(redis_server, retry_delays=(0.01, 0.02), sleep=slept.append)
    redis_server.stop()
    with pytest.raises(RedisLost, match=r"lost during taking jobs: .*gave up after 3 attempt"):
        queue.take("w", 1)
    assert slept == [0.01, 0.02]
    with pytest.raises(RedisLost, match="unreachable"):
        connect(redis_server.url, timeout=1)


def test_a_retry_reaches_redis_again_after_a_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True).start()
    queue = JobQueue.from_url(server.url, "t", sleep=lambda _s: (server.stop(), server.start()))
    try:
        queue.enqueue([job_entry("weibo", "kept", "r1")])
        server.stop()  # the AOF keeps the queue; the first retry restarts the server
        (entry,) = queue.take("w", 1)
        assert parse_entry(entry)["tag"] == "kept"
    finally:
        queue.client.close()  # its sockets, or a later test's garbage collection warns of them
        server.stop()


def test_the_password_never_shows() -> None:
    assert display_url("redis://:s3cret@host:6380/2") == "redis://host:6380/2"
    with pytest.raises(ValueError, match="not a Redis URL") as caught:
        check_redis_url("http://:s3cret@host:6380/2")
    assert "s3cret" not in str(caught.value)


def test_status_forgets_a_worker_a_day_after_its_last_beat(redis_server: RedisServer) -> None:
    queue = _queue(redis_server)
    client = redis_server.client()
    old = {"host": "h", "pid": 1, "last_beat": "2020-01-01T00:00:00+00:00", "jobs_done": 3}
    client.hset("t:workers", "old", json.dumps(old))
    client.hset("t:workers", "recent", json.dumps({**old, "last_beat": time_now()}))
    client.hset("t:workers", "holding", json.dumps(old))
    client.rpush("t:inflight:holding", job_entry("weibo", "x", "r1"))
    workers = {w.worker: w for w in queue.status().workers}
    assert set(workers) == {"recent", "holding"}  # one still holds a job: kept until reaped
    assert workers["holding"].in_flight == 1
    assert workers["recent"].state == "gone"
    assert client.hexists("t:workers", "old") == 0


def time_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
