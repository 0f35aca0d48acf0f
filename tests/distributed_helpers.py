"""Worker processes for the distributed tests: real `tagarchive worker`s against real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replica.server import ReplicaServer
from storage.reading import open_dataset
from tests.crawl_helpers import ROOT, CrawlResult, run_cli
from tests.redis_helpers import RedisServer

QUEUE = "tq"


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[str]
    log: Path

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_worker(redis: RedisServer, replica: ReplicaServer, out: Path | str, name: str,
                 *extra: str, idle_exit: float = 3.0, logs: Path | None = None,
                 env: dict[str, str] | None = None, browser: bool = False) -> Worker:
    """A worker process; `out` may be an s3:// root (then pass `logs` and the bucket's env)."""
    log = (logs or Path(out).parent) / f"worker-{name}-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "crawler.cli", "worker", "--redis", redis.url, "--queue", QUEUE,
            "--out", str(out), "--replica", replica.url, "--worker-id", name,
            *(() if browser else ("--no-browser",)),
            "--idle-exit", str(idle_exit), "--heartbeat", "2", "--delay", "0",
            "--concurrency", "4", *extra]
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                cwd=str(ROOT), env={**os.environ, **(env or {})})
    worker = Worker(name, proc, log)
    _STARTED.append(worker)
    return worker


_STARTED: list[Worker] = []


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    """A test that fails while its workers run must not leave them running."""
    yield
    while _STARTED:
        worker = _STARTED.pop()
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()


def enqueue(redis: RedisServer, platforms: str, tags: list[str], round_id: str) -> CrawlResult:
    return run_cli("enqueue", platforms, *tags, "--redis", redis.url, "--queue", QUEUE,
                   "--round", round_id)



def jobs_done(redis: RedisServer, name: str) -> int:
    raw = redis.client().hget(f"{QUEUE}:workers", name)
    return int(json.loads(raw)["jobs_done"]) if raw else 0


def snapshot_counts(out: Path | str) -> Counter[tuple[str, str]]:
    rows = open_dataset(out, "snapshots").to_table(columns=["platform", "tag"]).to_pylist()
    return Counter((r["platform"], r["tag"]) for r in rows)


def runs(out: Path | str) -> list[dict[str, Any]]:
    return open_dataset(out, "runs").to_table().to_pylist()
