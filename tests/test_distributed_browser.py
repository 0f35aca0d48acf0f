"""A worker renders the pages that need a browser with its own Chromium."""

from __future__ import annotations

from pathlib import Path

from replica.server import ReplicaServer
from tests.distributed_helpers import (  # noqa: F401 - no_worker_left is a fixture
    QUEUE,
    enqueue,
    no_worker_left,
    runs,
    snapshot_counts,
    start_worker,
)
from tests.redis_helpers import RedisServer


def test_a_worker_renders_with_its_own_browser(
        replica: ReplicaServer, redis_server: RedisServer, tmp_path: Path) -> None:
    # t016: a TikTok tag page the replica renders client-side (a --no-browser crawl fails it)
    assert enqueue(redis_server, "tiktok", ["t016"], "r1").code == 0
    out = tmp_path / "out"
    # rendered (the page's API signed in a live page instead: tests/test_signing_e2e.py)
    worker = start_worker(redis_server, replica, out, "w", idle_exit=2, browser=True,
                          env={"TAGARCHIVE_SIGNING_ENABLED": "0"})
    assert worker.wait(timeout=120) == 0, worker.stderr()[-2000:]
    assert set(snapshot_counts(out)) == {("tiktok", "t016")}
    (record,) = runs(out)
    assert record["rendered_requests"] >= 1
    assert redis_server.client().llen(f"{QUEUE}:inflight:w") == 0
