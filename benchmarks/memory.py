"""Memory of a long rendered crawl: crawler + driver + Chromium at page 3,000 against page 500.

One `tagarchive crawl xiaohongshu` of 1,500 tags (two Chromium renders each: 3,000 rendered
pages; quick: 300 tags, 600 pages, measured at 600 against 100). The probe extension inside
the crawl samples the summed RSS and PSS of the crawl process and all its descendants every
10th rendered response over the last 10% of the pages before each mark (pages 2,701-3,000
and 451-500 in full mode), and the figure is the ratio of the medians, PSS (shared pages split
between the processes that map them, so Chromium's shared libraries count once). The ratio of
two points of one crawl needs no baseline crawl: load from elsewhere slows the crawl but does
not add to its memory. What keeps it flat: browser contexts rotate every
TAGARCHIVE_CONTEXT_PAGES (100) pages and are closed when their last page is done, pages are
reused within a context, and the writer flushes rows by count and time.
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
    median,
    mib,
    prime_truth,
    run_tagarchive,
    running_replica,
)
from benchmarks.probe import MEMORY_ENV
from benchmarks.rendered import PLATFORM, RENDERS_PER_TAG

MARKS = (500, 3000)
QUICK_MARKS = (100, 600)
CONCURRENCY = 4
TARGET_RATIO = 1.2
TIMEOUT_S = 3600.0


def run(quick: bool = False, reps: int = 1, log: Any = print,
        marks: tuple[int, int] | None = None) -> dict[str, Any]:
    """One long crawl (reps is ignored: one crawl carries both marks); return the figures."""
    early, late = marks or (QUICK_MARKS if quick else MARKS)
    n = -(-late // RENDERS_PER_TAG)
    names = bench_tags("benchmem", n, 5)
    with running_replica() as server:
        prime_truth(server, PLATFORM, names)

        def enough(r: ChildRun) -> str | None:
            seen = r.probe.get("rendered_seen", 0)
            return None if seen >= late else f"only {seen} rendered pages of {late}"

        run = run_tagarchive(PLATFORM, names, server.url, CONCURRENCY, "bench-memory-out-",
                             enough, timeout=TIMEOUT_S,
                             # rendered pages: signing sessions off
                             env={MEMORY_ENV: f"{early},{late}", "TAGARCHIVE_SIGNING_ENABLED": "0"})
    log(f"  memory {describe(run)}")
    return {"figures": figures(early, late, n, run),
            "runs": {"tagarchive": [vars(run)]},
            "params": {"tags": n, "marks": [early, late], "concurrency": CONCURRENCY}}


def figures(early: int, late: int, n: int, run: ChildRun) -> list[Figure]:
    """PSS at the late mark over PSS at the early mark; RSS beside it in the note."""
    samples = run.probe["memory_at"]

    def at(mark: int, key: str) -> float:
        return median([mib(s[key]) for s in samples[str(mark)]])

    ratio = at(late, "pss") / at(early, "pss")
    rss_ratio = at(late, "rss") / at(early, "rss")
    procs = max(s["procs"] for s in samples[str(late)])
    pages_per_s = run.extra["rendered_requests"] / run.crawl_s if run.crawl_s else float("nan")
    return [
        Figure(f"memory: PSS of crawler + browser at rendered page {late:,}", at(late, "pss"),
               "MiB", ratio=ratio, ratio_of=f"page {late:,} / page {early:,}, same crawl",
               target=f"<= {TARGET_RATIO}x", meets_target=ratio <= TARGET_RATIO,
               samples=[mib(s["pss"]) for s in samples[str(late)]],
               note=f"one crawl of {n:,} Xiaohongshu tags ({run.extra['rendered_requests']:,} "
                    f"rendered pages, {pages_per_s:.1f} pages/s, concurrency {CONCURRENCY}); "
                    f"PSS summed over the crawl process and its descendants ({procs} at the end), "
                    f"median of samples every 10 pages over the 10% before each mark; "
                    f"RSS (shared pages counted per process): {at(early, 'rss'):,.0f} MiB -> "
                    f"{at(late, 'rss'):,.0f} MiB, ratio {rss_ratio:.2f}"),
        Figure(f"memory: PSS of crawler + browser at rendered page {early:,}", at(early, "pss"),
               "MiB", ratio=1.0, ratio_of="reference",
               samples=[mib(s["pss"]) for s in samples[str(early)]]),
    ]


def main() -> None:
    """Standalone: python -m benchmarks.memory [--quick] [--marks 500,3000]."""
    from benchmarks.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--marks", help="two rendered-page counts, e.g. 500,3000")
    args = parser.parse_args()
    marks = tuple(int(m) for m in args.marks.split(",")) if args.marks else None
    print(REPLICA_NOTE)
    result = run(args.quick, marks=marks)  # type: ignore[arg-type]
    print_table(result["figures"])


if __name__ == "__main__":
    main()
