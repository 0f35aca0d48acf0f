"""SIGKILL a crawl at random moments, again and again, into one output root.

After every kill: each Parquet file left behind reads in full, each WARC file is whole, no
temp file is visible, every row seen before any earlier kill is still there with the same
values, no row is stored twice, every stored number is the one an uninterrupted run stores,
and every row's archive pointer names a published file. Compaction (`--include-today`) runs
between some kills, and a final re-run plus compaction must leave each row exactly once.

CI variant: TAGARCHIVE_CRASH_KILLS=20 (the default, about a minute here). Full local variant:
`TAGARCHIVE_CRASH_KILLS=200 .venv/bin/pytest -q tests/test_crash_loop.py -s` (docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from replica.server import ReplicaServer
from storage.compact import compact
from tests.crawl_helpers import ROOT
from tests.wait_helpers import reap

KILLS = int(os.environ.get("TAGARCHIVE_CRASH_KILLS", "20"))
SEED = int(os.environ.get("TAGARCHIVE_CRASH_SEED", "8"))
PLATFORMS = ("tiktok", "weibo", "bilibili", "mastodon")  # read over plain HTTP
TAGS = [f"crash{i:02d}" for i in range(10)]
# A row's identity: never twice among the visible rows
KEYS = {"snapshots": ("run_id", "platform", "tag"),
        "posts": ("platform", "tag", "post_id", "date", "run_id"), "runs": ("run_id",)}
# ... and what must survive: compaction keeps one row per post, tag and day (the day's last
# observation, docs/compaction.md), so a post's identity across runs leaves out its run
SURVIVES = {"snapshots": 3, "posts": 4, "runs": 1}
VALUES = {"snapshots": ("views", "posts", "discussions", "participants", "observed_at"),
          "posts": ("likes", "comments", "shares", "plays"), "runs": ("verdict",)}


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def no_crawl_left() -> Iterator[None]:
    """A test that fails while a crawl runs must not leave it running."""
    yield
    while _STARTED:
        reap(_STARTED.pop(), group=True)


def start_crawl(replica: ReplicaServer, out: Path) -> subprocess.Popen[bytes]:
    """The crawl in the background; its stderr is appended to <out>/../crawl.log."""
    args = [sys.executable, "-m", "crawler.cli", "crawl", ",".join(PLATFORMS), *TAGS,
            "--out", str(out), "--replica", replica.url, "--delay", "0",
            "--concurrency", "2", "-s", "TAGARCHIVE_FLUSH_SECONDS=0.3", "--quiet"]
    # its own session, so the kill reaches every process the crawl started
    with open(out.parent / "crawl.log", "ab") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
    _STARTED.append(proc)
    return proc


def visible_rows(out: Path) -> dict[str, dict[tuple, tuple]]:
    """Every visible row per dataset, by key; fails on a duplicate key or an unreadable file."""
    found: dict[str, dict[tuple, tuple]] = {name: {} for name in KEYS}
    for name in KEYS:
        for path in sorted((out / name).rglob("*.parquet")) if (out / name).is_dir() else []:
            assert not path.name.startswith("."), path
            table = pq.read_table(path)  # the whole file, not only its footer
            for row in table.to_pylist():
                key = tuple(row[k] if k in row else _partition(path, k) for k in KEYS[name])
                assert key not in found[name], f"{name} row stored twice: {key}"
                found[name][key] = tuple(row.get(v) for v in VALUES[name])
                if name == "snapshots":
                    assert (out / row["archive_file"]).is_file(), row["archive_file"]
    return found


def parquet_count(out: Path) -> int:
    return sum(1 for _ in out.glob("*/**/*.parquet"))


def _partition(path: Path, key: str) -> Any:
    for part in path.parts:
        if part.startswith(f"{key}="):
            return part.partition("=")[2]
    raise KeyError(key)


def check_files(out: Path) -> int:
    """No temp or stray file is visible; every WARC file reads to its end. Returns file count."""
    count = 0
    for path in out.rglob("*"):
        if not path.is_file() or ".tagarchive" in path.parts:
            continue
        if path.name.startswith("."):  # a writer's temp file: hidden from every reader glob
            assert path.name.endswith(".tmp"), path
            continue
        assert path.name.endswith((".parquet", ".warc.gz")), path
        count += 1
        if path.name.endswith(".warc.gz"):
            with open(path, "rb") as handle:
                for record in ArchiveIterator(handle):
                    record.content_stream().read()
    return count


def surviving(name: str, rows: dict[tuple, tuple]) -> dict[tuple, set[tuple]]:
    out: dict[tuple, set[tuple]] = {}
    for key, values in rows.items():
        out.setdefault(key[: SURVIVES[name]], set()).add(values)
    return out


def assert_kept(before: dict[str, dict], after: dict[str, dict]) -> None:
    """Everything visible before is still visible (by what survives compaction), unchanged."""
    for name in KEYS:
        old, new = surviving(name, before[name]), surviving(name, after[name])
        lost = set(old) - set(new)
        assert not lost, f"{name}: rows flushed before a kill are gone: {sorted(lost)[:3]}"
        if name != "snapshots":  # a post's counts are the same in every run here
            changed = [k for k in old if not old[k] & new[k]]
        else:
            changed = [k for k in old if old[k] != new[k]]
        assert not changed, f"{name}: rows changed: {changed[:3]}"


def assert_same_numbers(reference: dict[tuple, tuple], rows: dict[tuple, tuple]) -> None:
    """The replica's clock stands still: every run must store the reference run's counters
    (which tests/test_crawl_e2e.py and the platform tests compare with the ground truth)."""
    for (_run, platform, tag), values in rows.items():
        assert values[:4] == reference[(platform, tag)], (platform, tag, values)


def test_sigkill_at_random_moments_loses_duplicates_and_corrupts_nothing(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    for tag in TAGS:  # TikTok's server-rendered page: no browser in this test
        replica.world.set_variant("tiktok", tag, "ssr")
    # every answer takes a little while, so a crawl lasts long enough to be killed mid-way
    replica.faults.add("slow", "/", times=0, seconds=0.1)
    rng = random.Random(SEED)
    out = tmp_path / "out"

    started = time.monotonic()
    whole = start_crawl(replica, out)
    assert whole.wait(timeout=120) == 0, (tmp_path / "crawl.log").read_text()[-2000:]
    duration = time.monotonic() - started
    seen = visible_rows(out)
    assert len(seen["snapshots"]) == len(PLATFORMS) * len(TAGS)
    reference = {(p, t): values[:4] for (_r, p, t), values in seen["snapshots"].items()}

    kills = attempts = compactions = files_checked = 0
    loop_started = time.monotonic()
    while kills < KILLS:
        attempts += 1
        assert attempts < KILLS * 3, f"only {kills} kills landed in {attempts} runs"
        files_before = parquet_count(out)
        proc = start_crawl(replica, out)
        if attempts % 3 == 0:  # any moment, start-up included
            time.sleep(rng.uniform(0.2, duration))
        else:  # a moment after this run's first flush, while rows are being written
            deadline = time.monotonic() + 3 * duration  # slow start-ups on a busy machine
            while parquet_count(out) == files_before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)

        files_checked += check_files(out)
        now = visible_rows(out)
        assert_kept(seen, now)
        assert_same_numbers(reference, now["snapshots"])
        seen = now
        if attempts % 5 == 0:  # the daily compaction, between crawls
            report = compact(out, include_today=True)
            assert report.errors == []
            compactions += 1
    loop_seconds = time.monotonic() - loop_started
    # kills that landed mid-crawl, after a timed flush: rows of a run that wrote no run record
    partial_runs = {k[0] for k in seen["snapshots"]} - {k[0] for k in seen["runs"]}
    assert len(partial_runs) >= KILLS // 5, "too few kills landed after a flush"

    final = start_crawl(replica, out)  # the re-run after the last kill
    assert final.wait(timeout=120) == 0, (tmp_path / "crawl.log").read_text()[-2000:]
    report = compact(out, include_today=True)
    assert report.errors == []
    after = visible_rows(out)
    assert_kept(seen, after)
    # after compaction each post is stored once per tag and day
    survivors = [k[:SURVIVES["posts"]] for k in after["posts"]]
    assert len(survivors) == len(set(survivors))
    assert_same_numbers(reference, after["snapshots"])
    files_checked += check_files(out)
    print(f"crash loop: {kills} kills in {attempts} runs ({loop_seconds:.0f} s), "
          f"{len(partial_runs)} killed runs had flushed rows, "
          f"{compactions + 1} compactions, {files_checked} file checks, "
          f"{sum(len(r) for r in after.values())} rows compared, "
          f"uninterrupted crawl {duration:.1f} s")
