"""Shared by the backfill tests: run `tagarchive backfill`, read what it stored, and the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from replica.server import ReplicaServer
from replica.world import LIST_CAP
from storage import open_dataset
from tests.crawl_helpers import ROOT, CrawlResult, run_cli

# three weeks ending the day before the replica's default clock (2025-01-13 00:00 UTC)
SINCE, UNTIL = date(2024, 12, 23), date(2025, 1, 12)


def backfill(replica: ReplicaServer, out: Path, platform: str, tag: str, *extra: str,
             since: date = SINCE, until: date = UNTIL,
             env: dict[str, str] | None = None) -> CrawlResult:
    """A backfill against the replica, without politeness delays on loopback."""
    return run_cli("backfill", platform, tag, "--since", since.isoformat(), "--until",
                   until.isoformat(), "--out", str(out), "--replica", replica.url,
                   "--delay", "0", *extra, env=env)


def activity(out: Path) -> list[dict[str, Any]]:
    """Every stored activity row, as dicts, ordered by (platform, tag, day)."""
    rows = open_dataset(out, "activity").to_table().to_pylist()
    return sorted(rows, key=lambda r: (r["platform"], r["tag"], r["day"]))


def posts(out: Path) -> list[dict[str, Any]]:
    return open_dataset(out, "posts").to_table().to_pylist()


def stored_days(out: Path) -> dict[date, tuple[int, int, str]]:
    """(posts, participants, coverage) per day, asserting one row per (platform, tag, day)."""
    rows = activity(out)
    keys = [(r["platform"], r["tag"], r["day"]) for r in rows]
    assert len(keys) == len(set(keys)), "an activity day is stored twice"
    return {r["day"]: (r["posts"], r["participants"], r["coverage"]) for r in rows}


def truth(replica: ReplicaServer, platform: str, tag: str, since: date = SINCE,
          until: date = UNTIL) -> dict[date, tuple[int, int]]:
    """(posts, distinct authors) per day over every post the tag has (complete listings)."""
    counts = replica.world.day_counts(platform, tag, since, until)
    return {d: (c.posts, c.participants) for d, c in counts.items()}


def ranked_truth(replica: ReplicaServer, platform: str, tag: str, since: date = SINCE,
                 until: date = UNTIL) -> dict[date, tuple[int, int]]:
    """The same over what a capped, popularity-ranked feed shows (LIST_CAP posts at most)."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    shown = replica.world.posts_for(platform, tag, limit=LIST_CAP, order="mixed")
    ids: dict[date, set[str]] = defaultdict(set)
    authors: dict[date, set[str]] = defaultdict(set)
    for post in shown:
        if start <= post.created_at < end:
            ids[post.created_at.date()].add(post.id)
            authors[post.created_at.date()].add(post.author_id)
    day, out = since, {}
    while day <= until:
        out[day] = (len(ids[day]), len(authors[day]))
        day += timedelta(days=1)
    return out


def walk_dir(out: Path, platform: str, tag: str, since: date = SINCE,
             until: date = UNTIL) -> Path:
    """Where a walk keeps its state.json and journal.jsonl."""
    return out / ".tagarchive" / "backfill" / platform / tag / f"{since}_{until}"


def journal_pages(directory: Path) -> int:
    """The highest page number the walk's journal holds (0 for none), partial lines ignored."""
    try:
        text = (directory / "journal.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    pages = [0]
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            page = json.loads(line).get("page")
            pages.append(page if isinstance(page, int) else 0)
    return max(pages)


def start_backfill(replica: ReplicaServer, out: Path, platform: str, tag: str,
                   *extra: str) -> subprocess.Popen[str]:
    """`tagarchive backfill` (SINCE..UNTIL) as a child process, to be signalled mid-walk."""
    args = ["backfill", platform, tag, "--since", SINCE.isoformat(), "--until",
            UNTIL.isoformat(), "--out", str(out), "--replica", replica.url, *extra]
    return subprocess.Popen([sys.executable, "-m", "crawler.cli", *args], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))


def wait_for_page(proc: subprocess.Popen[str], directory: Path, page: int,
                  timeout: float = 60) -> None:
    """Wait until the walk's journal holds `page` (not a sleep of a guessed length)."""
    wait_until(proc, lambda: journal_pages(directory) >= page, f"page {page}", timeout)


def wait_until(proc: subprocess.Popen[str], done: Callable[[], bool], what: str,
               timeout: float = 60) -> None:
    """Poll every few milliseconds until `done()`, failing if the process ends first."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            raise AssertionError(f"the walk ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the walk never reached {what}")
        time.sleep(0.002)
