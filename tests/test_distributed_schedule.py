"""The scheduler's distributed mode (`[distributed] redis`) and `status` with workers."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.services.watchconfig import load_config
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


def _config(tmp_path: Path, replica: ReplicaServer, redis: str) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
replica = "{replica.url}"
[distributed]
redis = "{redis}"
queue = "{QUEUE}"
[watches.live]
platforms = ["weibo", "mastodon"]
tags = ["#SchedOne", "schedtwo"]
every = "1h"
''', encoding="utf-8")
    return path


def test_a_fire_in_distributed_mode_queues_jobs_that_a_worker_crawls(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    path = _config(tmp_path, replica, redis_server.url)
    fired = run_cli("schedule", "run-now", "live", "--config", str(path))
    assert fired.code == 0, fired.stderr
    assert "queued 4 job(s) on" in fired.stdout
    client = redis_server.client()
    entries = [json.loads(e) for e in client.lrange(f"{QUEUE}:jobs", 0, -1)]
    assert sorted((e["platform"], e["tag"]) for e in entries) == [
        ("mastodon", "schedone"), ("mastodon", "schedtwo"),
        ("weibo", "schedone"), ("weibo", "schedtwo")]
    assert {e["watch"] for e in entries} == {"live"}
    out = tmp_path / "data"
    (fire,) = runs(out)  # no crawl ran here: the scheduler's own row says what it queued
    assert (fire["command"], fire["verdict"], fire["watch"]) == ("schedule", "ok", "live")
    assert {e["round"] for e in entries} == {fire["run_id"]}

    worker = start_worker(redis_server, replica, out, "w1", idle_exit=2)
    assert worker.wait(timeout=60) == 0, worker.stderr()[-2000:]
    assert set(snapshot_counts(out).values()) == {1}
    assert len(snapshot_counts(out)) == 4
    status = run_cli("status", "--config", str(path), "--json")
    assert status.code == 0, status.stderr
    view = json.loads(status.stdout)
    (watch,) = view["watches"]
    assert watch["last_run"]["trigger"] == "worker:w1"  # the worker's batch row, of this watch
    assert all(t["state"] == "fresh" for t in watch["tags"])
    assert view["distributed"]["queue_depth"] == 0
    assert [w["worker"] for w in view["distributed"]["workers"]] == ["w1"]

    text = run_cli("status", "--redis", redis_server.url, "--queue", QUEUE)
    assert text.code == 0, text.stderr
    assert f"queue {QUEUE}:jobs on {redis_server.url}: 0 waiting" in text.stdout
    assert "w1" in text.stdout
    assert "stopped" in text.stdout


def test_a_fire_with_redis_down_is_recorded_as_an_error(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    path = _config(tmp_path, replica, redis_server.url)
    redis_server.stop()
    fired = run_cli("schedule", "run-now", "live", "--config", str(path))
    assert fired.code == 3
    assert "unreachable" in fired.stderr
    (fire,) = runs(tmp_path / "data")
    assert fire["verdict"] == "error"
    assert "unreachable" in fire["reason"]
    status = run_cli("status", "--config", str(path))
    assert status.code == 3
    assert "unreachable" in status.stderr


def test_the_distributed_table_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[distributed]\nredis = "http://host"\n', encoding="utf-8")
    checked = run_cli("config", "check", "--config", str(path))
    assert checked.code == 2
    assert "distributed.redis" in checked.stderr
    path.write_text('[distributed]\nqueue = "q"\n', encoding="utf-8")
    checked = run_cli("config", "check", "--config", str(path))
    assert checked.code == 2
    assert "distributed.redis: missing" in checked.stderr
    path.write_text('[distributed]\nredis = "redis://:pw@h:6379/1"\n', encoding="utf-8")
    config = load_config(path)
    assert config.distributed is not None
    assert config.distributed.queue == "tagarchive"
