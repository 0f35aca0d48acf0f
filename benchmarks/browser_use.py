"""Browser use: a normal crawl of the HTTP-path platforms renders nothing and starts no browser.

One `tagarchive crawl bilibili,weibo,mastodon,youtube` of N tags each (25; quick 10) against
the replica with its default variants, the browser enabled as in any crawl. Counted from the
run record (`rendered_requests`) and the crawl's stats (`tagarchive/browser_started`: the
Playwright driver and Chromium are started on the first request that renders, and never
otherwise). Bluesky and Instagram are HTTP-path platforms too, but answer the replica's login
wall without a session, so they are left out. TikTok renders only the tags it serves without
their data in the HTML (the `fallback` platforms); the HTTP benchmark crawls TikTok tags served
with it and checks that none rendered.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.harness import (
    REPLICA_NOTE,
    ChildRun,
    Figure,
    bench_tags,
    describe,
    run_tagarchive,
    running_replica,
)

PLATFORMS = ("bilibili", "weibo", "mastodon", "youtube")
TAGS = 25
QUICK_TAGS = 10
CONCURRENCY = 8


def run(quick: bool = False, reps: int = 1, log: Any = print) -> dict[str, Any]:
    """One crawl; return the figures."""
    n = QUICK_TAGS if quick else TAGS
    names = bench_tags("benchuse", n, 3)

    def stored_all(r: ChildRun) -> str | None:
        want = n * len(PLATFORMS)
        return None if r.extra["snapshots"] == want else (
            f"{r.extra['snapshots']} snapshots for {want} tags")

    with running_replica() as server:
        run = run_tagarchive(",".join(PLATFORMS), names, server.url, CONCURRENCY,
                             "bench-browser-use-", stored_all)
    log(f"  browser use {describe(run)}")
    rendered = run.extra["rendered_requests"]
    started = run.probe.get("browser_started", 0)
    return {
        "figures": [Figure(
            "browser use: rendered requests, HTTP-path platforms", float(rendered), "requests",
            target="0, browser never started",
            meets_target=rendered == 0 and started == 0,
            note=f"a normal crawl of {n} tags on each of {', '.join(PLATFORMS)} "
                 f"({run.extra['requests']} requests, {run.extra['snapshots']} snapshots); "
                 f"browser started {started} times; peak process tree {run.peak_processes} "
                 "process(es)")],
        "runs": {"tagarchive": [vars(run)]},
        "params": {"platforms": list(PLATFORMS), "tags": n},
    }


def main() -> None:
    """Standalone: python -m benchmarks.browser_use [--quick]."""
    from benchmarks.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser_use")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(REPLICA_NOTE)
    print_table(run(args.quick)["figures"])


if __name__ == "__main__":
    main()
