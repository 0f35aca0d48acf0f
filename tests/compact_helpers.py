"""Helpers shared by the compaction tests: archives written by real runs, trees, row checksums."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from storage import DatasetWriter, open_dataset, utc_day

DAY = datetime(2026, 1, 10, tzinfo=UTC)
NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)  # every partition above is in the past
DATASET_DIRS = ("snapshots", "posts", "activity", "rejects", "runs")


def run_id(n: int) -> str:
    """A valid, ordered run id for the n-th simulated run."""
    return f"20260110T{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}Z-{n:08x}"


def publish(root: Path, run: int, dataset: str, rows: Iterable[Mapping[str, Any]]) -> list[Path]:
    """Write rows as one crawl run does: one file per partition, published atomically."""
    with DatasetWriter(root, run_id(run)) as writer:
        writer.add_many(dataset, list(rows))
    return [f.path for f in writer.files]


def snapshot(tag: str, at: datetime, platform: str = "tiktok", **fields: Any) -> dict[str, Any]:
    """A snapshots row with the keys the writer needs."""
    return {"platform": platform, "date": utc_day(at), "tag": tag, "observed_at": at,
            "source": "api", **fields}


def tree(root: Path) -> set[str]:
    """Every file under root, hidden ones included, relative and in posix form."""
    return {
        Path(current, name).relative_to(root).as_posix()
        for current, _, names in os.walk(root)
        for name in names
    }


def data_files(root: Path) -> set[str]:
    """The files a reader's `<dataset>/**/*.parquet` glob matches."""
    return {
        path for path in tree(root)
        if path.split("/")[0] in DATASET_DIRS and path.endswith(".parquet")
    }


def rows(root: Path, dataset: str) -> list[dict[str, Any]]:
    """Every visible row of a dataset, partition columns included."""
    return open_dataset(root, dataset).to_table().to_pylist()


def checksum(records: Iterable[Mapping[str, Any]]) -> str:
    """An order-independent digest of whole rows (a multiset: duplicates count)."""
    lines = sorted(repr(sorted(r.items())) for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def per_partition(records: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """Row counts per (platform, date)."""
    return Counter((r.get("platform", ""), str(r["date"])) for r in records)


def all_readable(root: Path) -> int:
    """Open the footer of every data file (raises on a partial one); returns how many."""
    files = data_files(root)
    for path in files:
        pq.read_metadata(root / path)
    return len(files)


def hours(n: int, start: datetime = DAY) -> list[datetime]:
    """n hourly moments from start."""
    return [start + timedelta(hours=h) for h in range(n)]
