"""Crawls run as real `tagarchive` subprocesses against the replica, and what they stored."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from replica.server import ReplicaServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


def snapshots(out: Path) -> list[dict]:
    rel = duckdb.sql(f"select * from read_parquet('{out}/snapshots/**/*.parquet', "
                     "hive_partitioning=true) order by platform, tag")
    cols = rel.columns
    return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]


def run_record(out: Path) -> dict:
    rel = duckdb.sql(f"select * from read_parquet('{out}/runs/**/*.parquet', "
                     "hive_partitioning=true)")
    rows = rel.fetchall()
    assert len(rows) == 1
    return dict(zip(rel.columns, rows[0], strict=True))


def outcomes(out: Path) -> dict[tuple[str, str], str]:
    return {(o["platform"], o["tag"]): o["status"] for o in run_record(out)["outcomes"]}


def assert_whole_files(out: Path) -> None:
    """Only published files: every Parquet footer reads, no temp file is left behind."""
    files = [p for p in out.rglob("*") if p.is_file() and ".tagarchive" not in p.parts]
    for path in files:
        assert path.name.endswith((".parquet", ".warc.gz")), path
        if path.suffix == ".parquet":
            pq.read_metadata(path)
