"""Backfill: timeline pages per second, `tagarchive backfill` vs a bare Scrapy walker.

Both walk the same Mastodon tag timeline on the replica, from --until back to --since by the
Link header's max_id, one page at a time (a walk is sequential by nature), in separate
processes, interleaved. tagarchive also archives every page as WARC, writes posts and activity
Parquet, and fsyncs its resumable state after each page; the bare walker fetches and decodes the
same JSON and stores nothing. The figure is pages per second over the crawl phase
(spider_opened -> spider_closed, the probe of benchmarks/probe.py) and the ratio tagarchive /
bare; also pages per CPU-second.

Run standalone with `python -m benchmarks.backfill [--quick]`; `run()` is the entry point for
`python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    PYTHON,
    REPLICA_NOTE,
    ChildRun,
    Figure,
    check,
    interleave,
    median,
    paired_ratio,
    replica_load,
    run_child,
    running_replica,
)
from benchmarks.probe import EXTENSIONS_SETTING

PLATFORM = "mastodon"
TAG = "python"  # about 640 posts a day on the replica: 16 pages of 40 per day
UNTIL = date(2025, 1, 12)  # the day before the replica's default clock
DAYS, QUICK_DAYS = 21, 5
REPS = 3


def _tagarchive(url: str, since: date) -> ChildRun:
    out = tempfile.mkdtemp(prefix="bench-backfill-out-")
    try:
        run = run_child("tagarchive", [
            PYTHON, "-m", "crawler.cli", "backfill", PLATFORM, TAG, "--since", since.isoformat(),
            "--until", UNTIL.isoformat(), "--out", out, "--replica", url, "--delay", "0",
            "--quiet", "-s", f"EXTENSIONS={EXTENSIONS_SETTING}"])
        check(run)
        [state] = Path(out).glob(".tagarchive/backfill/*/*/*/state.json")
        data = json.loads(state.read_text(encoding="utf-8"))
        run.extra.update({"pages": data["pages"], "posts": data["posts"], "done": data["done"]})
    finally:
        shutil.rmtree(out, ignore_errors=True)
    check(run, lambda r: None if r.extra["done"] else "the walk did not finish")
    return run


def _bare(url: str, since: date) -> ChildRun:
    run = run_child("bare", [PYTHON, "-m", "benchmarks.backfill", "--bare",
                             f"{url}/{PLATFORM}", since.isoformat()])

    def summary(r: ChildRun) -> str | None:
        lines = r.extra["stdout_tail"].strip().splitlines()
        r.extra.update(json.loads(lines[-1]) if lines else {})
        return None if r.extra.get("pages") else "the bare walker fetched no page"

    check(run, summary)
    return run


def run(quick: bool = False, reps: int = REPS, log: Any = print) -> dict[str, Any]:
    """Run the interleaved repetitions; return figures and raw runs."""
    days = QUICK_DAYS if quick else DAYS
    since = UNTIL - timedelta(days=days - 1)
    with running_replica() as server:
        ours, bare = interleave("backfill", reps, lambda: _tagarchive(server.url, since),
                                lambda: _bare(server.url, since), log)
    return {"figures": figures(days, ours, bare),
            "runs": {"tagarchive": [vars(r) for r in ours], "bare": [vars(r) for r in bare]},
            "params": {"platform": PLATFORM, "tag": TAG, "days": days, "reps": reps}}


def figures(days: int, ours: list[ChildRun], bare: list[ChildRun]) -> list[Figure]:
    """Pages/s and pages per CPU-second, each with its ratio to the bare walker."""
    ours_pps = [r.extra["pages"] / r.crawl_s for r in ours if r.crawl_s]
    bare_pps = [r.extra["pages"] / r.crawl_s for r in bare if r.crawl_s]
    ours_cpu = [r.extra["pages"] / r.probe["crawl_cpu_s"] for r in ours
                if r.probe.get("crawl_cpu_s")]
    bare_cpu = [r.extra["pages"] / r.probe["crawl_cpu_s"] for r in bare
                if r.probe.get("crawl_cpu_s")]
    pages = median([r.extra["pages"] for r in ours])
    where = (f"{PLATFORM} #{TAG}, {days} days to {UNTIL} ({pages:.0f} pages of 40 statuses), "
             f"one page at a time, {len(ours)} interleaved reps")
    return [
        Figure("backfill: timeline pages/s, tagarchive backfill", median(ours_pps), "pages/s",
               ratio=paired_ratio(ours_pps, bare_pps),
               ratio_of="tagarchive / bare Scrapy walker (median of paired reps)",
               samples=ours_pps,
               note=f"{where}; includes the WARC archive, the posts and activity Parquet and "
                    "the walk state committed at each writer flush, not the activity rewrite "
                    "(it runs after the crawl phase)"),
        Figure("backfill: timeline pages/s, bare Scrapy walker", median(bare_pps), "pages/s",
               ratio=1.0, ratio_of="reference", samples=bare_pps,
               note=f"{where}; the replica used {replica_load(bare):.0%} of a core during these "
                    f"crawl phases ({replica_load(ours):.0%} during tagarchive's)"),
        Figure("backfill: timeline pages per CPU-second, tagarchive", median(ours_cpu),
               "pages/CPU-s", ratio=paired_ratio(ours_cpu, bare_cpu),
               ratio_of="tagarchive / bare Scrapy walker", samples=ours_cpu,
               note=f"CPU of the crawl process over the crawl phase; bare walker: "
                    f"{median(bare_cpu):.0f} pages/CPU-s"),
    ]


# --- the baseline: a bare walker --------------------------------------------------------------


def bare_walk(base_url: str, since: date) -> dict[str, int]:
    """Walk the timeline like tagarchive (max_id from --until, then Link), store nothing."""
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.http import Response

    from benchmarks.bare_http import settings
    from crawler.platforms.mastodon import next_max_id, snowflake_before

    start = datetime.combine(since, datetime.min.time(), UTC).timestamp()
    end = datetime.combine(UNTIL + timedelta(days=1), datetime.min.time(), UTC)

    class BareTimelineSpider(scrapy.Spider):
        """Fetches timeline pages and decodes them; keeps only counts."""

        name = "bare_backfill"
        pages = 0
        posts = 0

        def page_url(self, max_id: str) -> str:
            return f"{base_url}/api/v1/timelines/tag/{TAG}?limit=40&max_id={max_id}"

        async def start(self) -> AsyncIterator[scrapy.Request]:
            yield scrapy.Request(self.page_url(snowflake_before(end)),
                                 callback=self.parse, dont_filter=True)

        def parse(self, response: Response) -> Any:
            statuses = json.loads(response.text)
            self.pages += 1
            self.posts += len(statuses)
            oldest = min((datetime.fromisoformat(s["created_at"]).timestamp()
                          for s in statuses), default=None)
            link = response.headers.get("Link", b"").decode("latin-1")
            max_id = next_max_id(link)
            if statuses and max_id and oldest is not None and oldest >= start:
                yield scrapy.Request(self.page_url(max_id), callback=self.parse,
                                     dont_filter=True)

    process = CrawlerProcess(settings(1))
    crawler = process.create_crawler(BareTimelineSpider)
    process.crawl(crawler)
    process.start()
    return {"pages": crawler.spider.pages, "posts": crawler.spider.posts}


def main(argv: list[str] | None = None) -> int:
    """Standalone: python -m benchmarks.backfill [--quick] [--reps N]."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backfill")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--bare", nargs=2, metavar=("BASE_URL", "SINCE"),
                        help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps(bare_walk(args.bare[0], date.fromisoformat(args.bare[1]))))
        return 0
    from benchmarks.__main__ import print_table

    print(REPLICA_NOTE)
    result = run(args.quick, args.reps)
    print_table(result["figures"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
