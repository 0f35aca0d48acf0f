"""Shared test fixtures: one replica server per session, and crawls run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from replica.server import ReplicaServer
from replica.world import World

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def replica_server() -> Iterator[ReplicaServer]:
    with ReplicaServer(world=World(seed=2025)) as server:
        yield server


@pytest.fixture
def replica(replica_server: ReplicaServer) -> Iterator[ReplicaServer]:
    """The session replica with no variants left over from another test."""
    replica_server.world.clear_variants()
    replica_server.faults.clear()
    yield replica_server
    replica_server.world.clear_variants()
    replica_server.faults.clear()


@dataclass
class CrawlResult:
    """A finished `tagarchive` process."""

    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> CrawlResult:
    """Run the CLI in its own process, as users and the scheduler do (no reactor restart)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "crawler.cli", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=str(ROOT))
    return CrawlResult(proc.returncode, proc.stdout, proc.stderr)


def crawl(replica: ReplicaServer, out: Path, platforms: str, *tags: str,
          extra: tuple[str, ...] = ()) -> CrawlResult:
    """A fast crawl against the replica (no politeness delay on loopback)."""
    return run_cli("crawl", platforms, *tags, "--out", str(out), "--replica", replica.url,
                   "--delay", "0", "--concurrency", "4", *extra)


from tests.redis_helpers import redis_server  # noqa: E402, F401 - the fixture, for every test
from tests.s3_helpers import s3_moto, s3_server  # noqa: E402, F401 - S3 (moto) fixtures
