"""`tagarchive enqueue` input checks, and a worker meeting a queue entry that is no job."""

from __future__ import annotations

import json
from pathlib import Path

from replica.server import ReplicaServer
from tests.crawl_helpers import run_cli
from tests.distributed_helpers import (  # noqa: F401 - no_worker_left is a fixture
    QUEUE,
    no_worker_left,
    runs,
    snapshot_counts,
    start_worker,
)
from tests.redis_helpers import RedisServer


def test_enqueue_takes_tags_from_a_file_and_refuses_bad_input(
        redis_server: RedisServer, tmp_path: Path) -> None:
    tags = tmp_path / "tags.txt"
    tags.write_text("alpha\n\n#Beta\nid:12345\nalpha\n", encoding="utf-8")
    queued = run_cli("enqueue", "weibo,mastodon", "gamma", "--from-file", str(tags),
                     "--redis", redis_server.url, "--queue", QUEUE, "--round", "r7")
    assert queued.code == 0, queued.stderr
    assert queued.stdout.strip() == (f"queued 8 job(s) of round r7 on {redis_server.url} "
                                     f"(queue {QUEUE}:jobs: 8 waiting)")
    entries = [json.loads(e) for e in redis_server.client().lrange(f"{QUEUE}:jobs", 0, -1)]
    assert [(e["platform"], e["tag"]) for e in entries[:4]] == [
        ("weibo", "gamma"), ("weibo", "alpha"), ("weibo", "#Beta"), ("weibo", "id:12345")]
    assert {e["round"] for e in entries} == {"r7"}

    for argv, message in (
            (["nosuchplatform", "a"], "nosuchplatform"),
            (["weibo"], "no tags"),
            (["weibo", "--from-file", str(tmp_path / "missing.txt")], "missing.txt"),
            (["weibo", "id:"], "id"),
    ):
        bad = run_cli("enqueue", *argv, "--redis", redis_server.url, "--queue", QUEUE)
        assert bad.code == 2, (argv, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert message in bad.stderr, bad.stderr
    assert redis_server.client().llen(f"{QUEUE}:jobs") == 8  # nothing more was queued


def test_a_worker_sets_aside_an_entry_that_is_no_job_and_goes_on(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis_server.client()
    client.rpush(f"{QUEUE}:jobs", "just a string",
                 json.dumps({"platform": "nosuchplatform", "tag": "a"}),
                 json.dumps({"platform": "weibo", "tag": "fine", "round": "r1"}))
    out = tmp_path / "out"
    worker = start_worker(redis_server, replica, out, "w", idle_exit=1)
    assert worker.wait(timeout=60) == 0, worker.stderr()[-2000:]
    assert set(snapshot_counts(out)) == {("weibo", "fine")}
    dead = [json.loads(e) for e in client.lrange(f"{QUEUE}:dead", 0, -1)]
    assert [d["entry"] for d in dead] == ["just a string",
                                          json.dumps({"platform": "nosuchplatform", "tag": "a"})]
    assert all(d["why"] and d["worker"] == "w" for d in dead)
    assert client.llen(f"{QUEUE}:inflight:w") == 0
    (record,) = runs(out)
    assert [(o["platform"], o["tag"], o["status"]) for o in record["outcomes"]] == [
        ("weibo", "fine", "stored")]
    assert "not a job" in worker.stderr()


def test_a_redis_password_never_reaches_output_logs_or_runs(
        replica: ReplicaServer, tmp_path: Path) -> None:
    secret = "s3cret-redis-pw"
    server = RedisServer(tmp_path / "redis", password=secret).start()
    try:
        queued = run_cli("enqueue", "weibo", "pw1", "--redis", server.url, "--queue", QUEUE)
        assert queued.code == 0, queued.stderr
        out = tmp_path / "out"
        worker = start_worker(server, replica, out, "w", "--log-level", "DEBUG", idle_exit=1)
        assert worker.wait(timeout=60) == 0, worker.stderr()[-2000:]
        status = run_cli("status", "--redis", server.url, "--queue", QUEUE)
        wrong = run_cli("enqueue", "weibo", "a", "--redis", server.url.replace(secret, "bad"))
        (record,) = runs(out)
        assert any("redis://127.0.0.1:" in a for a in record["argv"])
        for text in (queued.stdout + queued.stderr, worker.stderr(), status.stdout,
                     wrong.stderr, json.dumps(record, default=str)):
            assert secret not in text
        assert wrong.code == 3
        assert "bad" not in wrong.stderr
    finally:
        server.stop()
