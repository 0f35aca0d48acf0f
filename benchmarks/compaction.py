"""Compaction: a typical DuckDB analysis on an hourly-crawled archive, before and after compacting.

The archive is generated as hourly crawls leave it: 100 tags x 2 platforms x 90 days, one
observation per tag per hour, one file per (platform, day, hour) run (~430k rows in ~4,300
files, in the writer's layout, schema and zstd compression; written without the writer's fsync
to save time). A hard-linked copy is compacted; then the same query, hourly views of every tag
over the whole period through `storage.duckdb_connect()` on a fresh connection (as a notebook
or `tagarchive query` opens it), runs on both archives in interleaved repetitions (ABBA), and
the figure is the median of the paired before/after ratios. The two results are checked equal.

Call `run(quick=..., reps=..., log=...)`; `python -m benchmarks.compaction [--quick]` alone.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import Figure, median, paired_ratio
from storage import duckdb_connect, get_spec
from storage.compact import compact

TAGS, PLATFORMS, DAYS = 100, ("tiktok", "xiaohongshu"), 90
QUICK_TAGS, QUICK_DAYS = 40, 20
REPS = 5
TARGET_RATIO = 5.0
START = datetime(2025, 1, 1, tzinfo=UTC)
QUERY = """
SELECT platform, tag, date_trunc('hour', observed_at) AS hour, max(views) AS views
FROM snapshots
WHERE observed_at >= $start AND observed_at < $end
GROUP BY ALL
ORDER BY ALL
"""


def _tag_names(n: int) -> list[str]:
    return [f"tag{i:03d}" for i in range(n)]


def generate(root: Path, tags: int = TAGS, days: int = DAYS, seed: int = 2025) -> int:
    """Write the archive hourly crawls would leave; returns the number of files."""
    spec = get_spec("snapshots")
    rng = random.Random(seed)
    names = _tag_names(tags)
    base = {name: rng.randrange(10**5, 10**9) for name in names}
    growth = {name: rng.uniform(0.001, 0.02) for name in names}
    files = 0
    for platform in PLATFORMS:
        for day in range(days):
            directory = root / "snapshots" / f"platform={platform}" / (
                f"date={(START + timedelta(days=day)).date()}")
            directory.mkdir(parents=True)
            for hour in range(24):
                moment = START + timedelta(days=day, hours=hour)
                run_id = f"{moment:%Y%m%dT%H%M%SZ}-{rng.getrandbits(32):08x}"
                step = day * 24 + hour
                observed = [moment + timedelta(seconds=3 + i) for i in range(tags)]
                views = [int(base[n] * (1 + growth[n]) ** (step / 24)) for n in names]
                columns: dict[str, Any] = {
                    "tag": names,
                    "tag_display": [n.upper() for n in names],
                    "tag_id": [str(7_000_000 + i) for i in range(tags)],
                    "url": [f"https://www.{platform}.com/tag/{n}" for n in names],
                    "observed_at": observed,
                    "views": views,
                    "posts": [v // 1000 for v in views],
                    "views_approx": [platform == "xiaohongshu"] * tags,
                    "source": ["embedded_json" if platform == "tiktok" else "captured_xhr"] * tags,
                    "run_id": [run_id] * tags,
                    "schema_version": [1] * tags,
                }
                arrays = [
                    pa.array(columns[f.name], f.type) if f.name in columns
                    else pa.nulls(tags, f.type)
                    for f in spec.schema
                ]
                table = pa.Table.from_arrays(arrays, schema=spec.schema)
                table = table.replace_schema_metadata({
                    **(spec.schema.metadata or {}),
                    b"tagarchive.partition": f"platform={platform}/{directory.name}".encode(),
                    b"tagarchive.run_id": run_id.encode(),
                })
                pq.write_table(table, directory / f"part-{run_id}-0001.parquet",
                               compression="zstd")
                files += 1
    return files


def _query(root: Path, days: int) -> tuple[float, pa.Table]:
    started = time.perf_counter()
    con = duckdb_connect(root)  # a fresh connection: nothing cached from the last repetition
    try:
        params = {"start": START, "end": START + timedelta(days=days)}
        result = con.sql(QUERY, params=params).to_arrow_table()
    finally:
        con.close()
    return time.perf_counter() - started, result


def _files(root: Path) -> tuple[int, int]:
    count = size = 0
    for current, _, names in os.walk(root / "snapshots"):
        for name in names:
            if name.endswith(".parquet") and not name.startswith("."):
                count += 1
                size += os.path.getsize(os.path.join(current, name))
    return count, size


def run(quick: bool = False, reps: int = REPS, log: Callable[[str], None] = print,
        tags: int | None = None, days: int | None = None) -> dict[str, Any]:
    """Generate, compact a copy, time the query on both interleaved; return figures and samples."""
    n_tags = tags or (QUICK_TAGS if quick else TAGS)
    n_days = days or (QUICK_DAYS if quick else DAYS)
    with tempfile.TemporaryDirectory(prefix="tagarchive-compaction-") as temp:
        hourly, compacted = Path(temp, "hourly"), Path(temp, "compacted")
        started = time.perf_counter()
        generate(hourly, n_tags, n_days)
        generate_s = time.perf_counter() - started
        shutil.copytree(hourly, compacted, copy_function=os.link)
        files_before, bytes_before = _files(hourly)
        log(f"  generated {files_before:,} files, {n_tags * len(PLATFORMS) * n_days * 24:,} "
            f"rows in {generate_s:.1f} s")
        started = time.perf_counter()
        # `now` after the archive's last day: every partition is in the past.
        report = compact(compacted, ["snapshots"], now=START + timedelta(days=n_days + 1))
        compact_s = time.perf_counter() - started
        result = report.datasets["snapshots"]
        if report.errors or result.rows_dropped or result.compacted != len(PLATFORMS) * n_days:
            raise RuntimeError(f"unexpected compaction result: {result}")
        files_after, bytes_after = _files(compacted)
        log(f"  compacted to {files_after:,} files in {compact_s:.1f} s")

        before: list[float] = []
        after: list[float] = []
        for rep in range(reps):
            order = ((hourly, before), (compacted, after))
            results = []
            # ABBA: which archive goes first swaps every repetition, so drift cancels
            for root, samples in order if rep % 2 == 0 else order[::-1]:
                seconds, table = _query(root, n_days)
                samples.append(seconds)
                results.append(table)
            if not results[0].equals(results[1]):
                raise RuntimeError("the query answered differently after compaction")
            log(f"  rep {rep + 1}/{reps}: before {before[-1]:.3f} s, after {after[-1]:.3f} s")

    ratio = paired_ratio(before, after)
    where = (f"{n_tags} tags x {len(PLATFORMS)} platforms x {n_days} days hourly = "
             f"{n_tags * len(PLATFORMS) * n_days * 24:,} rows; {reps} interleaved reps, "
             "fresh DuckDB connection each")
    figures = [
        Figure("compaction: hourly-views query, after compaction", median(after), "s",
               ratio=ratio, ratio_of="before / after: times faster (median of paired reps)",
               target=f">= {TARGET_RATIO:g}x faster", meets_target=ratio >= TARGET_RATIO,
               samples=after,
               note=f"{where}; {files_before:,} files ({bytes_before / 1e6:.1f} MB) before, "
                    f"{files_after:,} ({bytes_after / 1e6:.1f} MB) after"),
        Figure("compaction: hourly-views query, before compaction", median(before), "s",
               ratio=1.0, ratio_of="reference", samples=before, note=where),
        Figure("compaction: compact run", compact_s, "s",
               note=f"{result.compacted} partitions, {files_before / compact_s:,.0f} files/s "
                    "read, rewritten and swapped, with fsync"),
    ]
    return {
        "figures": figures,
        "params": {"tags": n_tags, "platforms": list(PLATFORMS), "days": n_days, "reps": reps,
                   "start": date.isoformat(START.date())},
        "runs": {"before_s": before, "after_s": after, "compact_s": compact_s,
                 "generate_s": generate_s, "files_before": files_before,
                 "files_after": files_after, "bytes_before": bytes_before,
                 "bytes_after": bytes_after},
    }


def main() -> None:
    """Run alone and print the ratio."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compaction", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TAGS} tags x {QUICK_DAYS} days instead of {TAGS} x {DAYS}")
    parser.add_argument("--reps", type=int, default=REPS)
    args = parser.parse_args()
    result = run(quick=args.quick, reps=args.reps)
    for figure in result["figures"]:
        ratio = f"  (ratio {figure.ratio:.1f}: {figure.ratio_of})" if figure.ratio else ""
        print(f"{figure.name}: {figure.value:.3f} {figure.unit}{ratio}")


if __name__ == "__main__":
    main()
