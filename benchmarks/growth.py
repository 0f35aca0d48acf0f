"""Cost growth: CPU seconds per 1,000 tags of an HTTP crawl of 1,000 tags and of 20,000.

Two `tagarchive crawl tiktok` runs over server-rendered (`ssr`) replica tag pages, 1,000 and
20,000 tags (quick: 1,000 and 5,000), at concurrency 16, no delay. The figure is the CPU time
of the crawl process over its crawl phase (spider_opened -> spider_closed, the final Parquet
write and run record included), per 1,000 tags, and the ratio large / small: anything in the
crawler that grows faster than the number of tags (a scan per item, a list searched per tag)
shows up as a ratio above 1. CPU time rather than wall time because the machine is shared:
a crawl's own CPU barely moves with other load, its wall time does. The whole process's CPU
(start-up and imports included) is given in the note.
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

PLATFORM = "tiktok"
SIZES = (1_000, 20_000)
QUICK_SIZES = (1_000, 5_000)
CONCURRENCY = 16
TOLERANCE = 0.2
TIMEOUT_S = 3600.0


def run(quick: bool = False, reps: int = 1, log: Any = print,
        sizes: tuple[int, int] | None = None) -> dict[str, Any]:
    """One crawl of each size (small first); return the figures."""
    small, large = sizes or (QUICK_SIZES if quick else SIZES)
    runs: dict[int, ChildRun] = {}
    with running_replica() as server:
        for n in (small, large):
            names = bench_tags("benchgrow", n, 5)
            for name in names:
                server.world.set_variant(PLATFORM, name, "ssr")  # keep the HTTP path pure

            def pure(r: ChildRun, n: int = n) -> str | None:
                if r.extra["snapshots"] != n or r.extra["rendered_requests"]:
                    return (f"{r.extra['snapshots']} snapshots for {n} tags, "
                            f"{r.extra['rendered_requests']} rendered")
                return None

            runs[n] = run_tagarchive(PLATFORM, names, server.url, CONCURRENCY,
                                     "bench-growth-out-", pure, timeout=TIMEOUT_S)
            log(f"  growth {n:,} tags {describe(runs[n])}")
    return {"figures": figures(small, large, runs),
            "runs": {str(n): [vars(r)] for n, r in runs.items()},
            "params": {"sizes": [small, large], "concurrency": CONCURRENCY}}


def figures(small: int, large: int, runs: dict[int, ChildRun]) -> list[Figure]:
    """CPU-s per 1,000 tags at each size, and their ratio."""
    def per_k(n: int) -> float:
        return runs[n].probe["crawl_cpu_s"] / (n / 1000)

    def whole_per_k(n: int) -> float:
        return runs[n].cpu_s / (n / 1000)

    ratio = per_k(large) / per_k(small)
    return [
        Figure(f"growth: CPU-s per 1,000 tags at {large:,} tags", per_k(large), "CPU-s",
               ratio=ratio, ratio_of=f"{large:,} tags / {small:,} tags",
               target=f"within +-{TOLERANCE:.0%} (ratio {1 - TOLERANCE:.1f}-{1 + TOLERANCE:.1f})",
               meets_target=abs(ratio - 1) <= TOLERANCE,
               note=f"TikTok ssr pages, concurrency {CONCURRENCY}; CPU of the crawl process over "
                    f"its crawl phase; the whole process (start-up included): "
                    f"{whole_per_k(small):.2f} CPU-s per 1,000 tags at {small:,}, "
                    f"{whole_per_k(large):.2f} at {large:,}; crawl phase "
                    f"{runs[small].crawl_s:.0f} s and {runs[large].crawl_s:.0f} s wall"),
        Figure(f"growth: CPU-s per 1,000 tags at {small:,} tags", per_k(small), "CPU-s",
               ratio=1.0, ratio_of="reference"),
    ]


def main() -> None:
    """Standalone: python -m benchmarks.growth [--quick] [--sizes 1000,20000]."""
    from benchmarks.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.growth")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", help="two tag counts, e.g. 1000,20000")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(REPLICA_NOTE)
    print_table(run(args.quick, sizes=sizes)["figures"])  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
