"""Parquet writer: tagarchive's DatasetWriter against `pyarrow.dataset.write_dataset`, same rows.

Input, the same for both: one Python list of N snapshot row dicts (1,000,000; quick 200,000),
as the store pipeline hands them to the writer (every column of the schema, plus the `platform`
and `date` partition keys), over 2 platforms x 5 days = 10 partitions. Conversion from dicts to
Arrow is included on both sides:

- tagarchive: `DatasetWriter.add_many("snapshots", rows)` then `close()` (flush limits set above
  N, so each partition is written once): strict per-column type checks, the closed vocabularies,
  the partition-day check, the sort by (tag, observed_at), zstd, fsync and atomic rename;
- baseline: `pa.Table.from_pylist(rows, schema)` then `pyarrow.dataset.write_dataset(...)` with
  hive partitioning on (platform, date), zstd, and nothing else.

Both run in this process, interleaved (the order swaps every repetition), and the figure is
rows per second with the median of the paired ratios. Wall time is reported because
write_dataset uses several threads by design; CPU seconds (all threads) are given beside it.
The first repetition also checks that both outputs read back as the same rows, and that the
writer left exactly one file per partition.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from benchmarks.harness import Figure, median, paired_ratio
from storage import SCHEMA_VERSION, DatasetWriter, get_spec

ROWS = 1_000_000
QUICK_ROWS = 200_000
REPS = 3
PLATFORMS = ("tiktok", "xiaohongshu")
DAYS = 5
START = datetime(2025, 3, 1, tzinfo=UTC)
TARGET_RATIO = 0.8
RUN_ID = "20250301T000000Z-bench0001"
# seconds write_pyarrow spent in from_pylist, per call (the rest is write_dataset itself)
CONVERSION_S: list[float] = []


def make_rows(n: int) -> list[dict[str, Any]]:
    """N snapshot rows as the store pipeline builds them, spread over 10 partitions."""
    names = get_spec("snapshots").schema.names
    partitions = [(p, d) for p in PLATFORMS for d in range(DAYS)]
    per = -(-n // len(partitions))
    rows: list[dict[str, Any]] = []
    for platform, day in partitions:
        base = START + timedelta(days=day)
        count = min(per, n - len(rows))
        approx = platform == "xiaohongshu"
        index = range(count)
        tags = [f"tag{i % 20_000:05d}" for i in index]
        views = [1_000_000 + i * 7919 for i in index]
        columns: dict[str, Any] = {
            "tag": tags,
            "tag_display": [t.capitalize() for t in tags],
            "tag_id": [str(7_000_000 + i % 20_000) for i in index],
            "url": [f"https://www.{platform}.com/tag/{t}" for t in tags],
            "observed_at": [base + timedelta(seconds=i % 86_400, microseconds=i) for i in index],
            "views": views,
            "posts": [v // 1000 for v in views],
            "views_text": [f"{v / 1e4:.1f}万" for v in views] if approx else None,
            "views_approx": approx,
            "posts_approx": False,
            "source": "captured_xhr" if approx else "embedded_json",
            "archive_file": f"archive/{platform}/{base:%Y-%m-%d}/a.warc.gz",
            "archive_record": [f"<urn:uuid:{i:032x}>" for i in index],
            "run_id": RUN_ID,
            "schema_version": SCHEMA_VERSION,
            "platform": platform,
            "date": f"{base:%Y-%m-%d}",
        }
        keys = [*names, "platform", "date"]
        series = [columns[k] if isinstance(columns.get(k), list) else [columns.get(k)] * count
                  for k in keys]
        rows.extend(dict(zip(keys, values, strict=True)) for values in zip(*series, strict=True))
    return rows


def _files(root: Path) -> dict[str, int]:
    """Parquet files per partition directory (relative path -> count)."""
    counts: dict[str, int] = {}
    for current, _, names in os.walk(root):
        found = [n for n in names if n.endswith(".parquet") and not n.startswith(".")]
        if found:
            counts[Path(current).relative_to(root).as_posix()] = len(found)
    return counts


def write_tagarchive(rows: list[dict[str, Any]], root: Path) -> None:
    """The subject: the project's writer, one flush at close."""
    writer = DatasetWriter(root, RUN_ID, flush_rows=len(rows) + 1, flush_seconds=10**9)
    writer.add_many("snapshots", rows)
    writer.close()


def write_pyarrow(rows: list[dict[str, Any]], root: Path) -> None:
    """The baseline: from_pylist and write_dataset with the same partitioning and codec."""
    spec = get_spec("snapshots")
    schema = spec.schema.append(pa.field("platform", pa.string())).append(
        pa.field("date", pa.string()))
    started = time.perf_counter()
    table = pa.Table.from_pylist(rows, schema=schema)
    CONVERSION_S.append(time.perf_counter() - started)
    ds.write_dataset(
        table, root, format="parquet",
        partitioning=ds.partitioning(pa.schema([("platform", pa.string()),
                                                ("date", pa.string())]), flavor="hive"),
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        existing_data_behavior="overwrite_or_ignore")


def _timed(write: Callable[[list[dict[str, Any]], Path], None], rows: list[dict[str, Any]],
           root: Path) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    write(rows, root)
    return time.perf_counter() - wall, time.process_time() - cpu


def _same_rows(ours: Path, theirs: Path) -> None:
    """Both outputs hold the same rows (read in one order; partition keys from the paths)."""
    names = [*get_spec("snapshots").schema.names, "platform", "date"]
    keys = [(c, "ascending") for c in ("platform", "tag", "observed_at")]
    tables = []
    for root in (ours, theirs):
        table = ds.dataset(root / "snapshots" if root == ours else root, format="parquet",
                           partitioning="hive").to_table()
        table = table.select(names).cast(table.select(names).schema)
        tables.append(table.sort_by(keys).replace_schema_metadata(None))
    a, b = tables
    b = b.cast(a.schema)
    if not a.equals(b):
        raise RuntimeError("the writer and write_dataset stored different rows")


def run(quick: bool = False, reps: int = REPS, log: Callable[[str], Any] = print,
        rows: int | None = None) -> dict[str, Any]:
    """Generate the rows once, write them with both, interleaved; return figures and samples."""
    n = rows or (QUICK_ROWS if quick else ROWS)
    started = time.perf_counter()
    gc.disable()
    try:
        data = make_rows(n)
    finally:
        gc.enable()
    # 1M dicts would otherwise be traversed by every full collection, in whichever side ran it
    gc.freeze()
    log(f"  generated {n:,} row dicts in {time.perf_counter() - started:.1f} s")
    ours_wall: list[float] = []
    ours_cpu: list[float] = []
    base_wall: list[float] = []
    base_cpu: list[float] = []
    files: dict[str, int] = {}
    base_files: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as temp:
        for rep in range(reps):
            ours_root, base_root = Path(temp, f"ours{rep}"), Path(temp, f"base{rep}")
            order = ((write_tagarchive, ours_root, ours_wall, ours_cpu),
                     (write_pyarrow, base_root, base_wall, base_cpu))
            for write, root, walls, cpus in order if rep % 2 == 0 else order[::-1]:
                wall, cpu = _timed(write, data, root)
                walls.append(wall)
                cpus.append(cpu)
            if rep == 0:
                files, base_files = _files(ours_root), _files(base_root)
                _same_rows(ours_root, base_root)
            log(f"  parquet rep {rep + 1}/{reps}: tagarchive {ours_wall[-1]:.2f} s "
                f"({ours_cpu[-1]:.2f} CPU-s), write_dataset {base_wall[-1]:.2f} s "
                f"({base_cpu[-1]:.2f} CPU-s)")
            shutil.rmtree(ours_root)
            shutil.rmtree(base_root)
    del data
    gc.unfreeze()
    conversion = median(CONVERSION_S[-reps:])
    return {"figures": figures(n, ours_wall, ours_cpu, base_wall, base_cpu, files, base_files,
                               conversion),
            "params": {"rows": n, "partitions": len(PLATFORMS) * DAYS, "reps": reps},
            "runs": {"tagarchive_s": ours_wall, "tagarchive_cpu_s": ours_cpu,
                     "write_dataset_s": base_wall, "write_dataset_cpu_s": base_cpu,
                     "files": files, "write_dataset_files": base_files}}


def figures(n: int, ours_wall: list[float], ours_cpu: list[float], base_wall: list[float],
            base_cpu: list[float], files: dict[str, int],
            base_files: dict[str, int], conversion: float) -> list[Figure]:
    """Rows/s with the paired ratio, and the files-per-partition check."""
    ours = [n / s for s in ours_wall]
    base = [n / s for s in base_wall]
    ratio = paired_ratio(ours, base)
    cpu_ratio = paired_ratio([n / s for s in ours_cpu], [n / s for s in base_cpu])
    partitions = len(PLATFORMS) * DAYS
    most = max(files.values(), default=0)
    where = (f"{n:,} snapshot row dicts, {partitions} partitions, conversion included on both "
             f"sides, {len(ours_wall)} interleaved reps")
    return [
        Figure("parquet: rows/s, tagarchive DatasetWriter", median(ours), "rows/s", ratio=ratio,
               ratio_of="tagarchive / pyarrow write_dataset, wall (median of paired reps)",
               target=f">= {TARGET_RATIO}x write_dataset", meets_target=ratio >= TARGET_RATIO,
               samples=ours,
               note=f"{where}; per CPU-second (all threads) the ratio is {cpu_ratio:.2f} "
                    f"(write_dataset {median([n / s for s in base_cpu]):,.0f} rows/CPU-s, "
                    f"tagarchive {median([n / s for s in ours_cpu]):,.0f})"),
        Figure("parquet: rows/s, pyarrow write_dataset", median(base), "rows/s", ratio=1.0,
               ratio_of="reference", samples=base,
               note=f"{where}; of its {median(base_wall):.2f} s, from_pylist took "
                    f"{conversion:.2f} s and write_dataset itself the rest "
                    f"({n / max(median(base_wall) - conversion, 1e-9):,.0f} rows/s from a "
                    "ready Arrow table)"),
        Figure("parquet: files per partition, tagarchive", float(most), "files",
               target="1 per partition per run",
               meets_target=len(files) == partitions and most == 1,
               note=f"{len(files)} partition directories written; write_dataset wrote "
                    f"{max(base_files.values(), default=0)} per partition"),
    ]


def main() -> None:
    """Standalone: python -m benchmarks.parquet_writer [--quick] [--rows N]."""
    from benchmarks.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.parquet_writer")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    result = run(args.quick, args.reps, rows=args.rows)
    print_table(result["figures"])


if __name__ == "__main__":
    main()
