"""S3 storage against moto's server: writing files, opening the archive, compacting with markers.

Starts moto's S3 server (and the test proxy in front of it, as the tests use it), writes
`runs` crawls' worth of snapshots (one file per day per run) with DatasetWriter, then times:
opening the archive and counting rows; `compact` (commit markers); opening again, before and
after the markers are cached; and a second `compact` with nothing to do. Checks that the row
count is the same throughout. Figures from moto on loopback are an upper bound for the client
side only: a real S3 or MinIO answers differently.

`python -m benchmarks.s3_storage [--days 30] [--runs 4] [--tags 50]`
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta


def _count(url: str) -> tuple[int, float]:
    from storage import duckdb_connect

    started = time.perf_counter()
    con = duckdb_connect(url)
    try:
        rows = con.sql("select count(*) from snapshots").fetchall()[0][0]
    finally:
        con.close()
    return int(rows), time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--tags", type=int, default=50)
    args = parser.parse_args(argv)

    from tests.s3_helpers import MotoServer, S3Bucket

    server = MotoServer.start()
    try:
        bucket = S3Bucket(server, "benchmark-bucket")
        os.environ.update(bucket.env)
        import storage.markers as markers
        from storage import DatasetWriter
        from storage.compact import compact
        from tests.compact_helpers import snapshot

        base = datetime(2026, 1, 1, tzinfo=UTC)
        started = time.perf_counter()
        files = 0
        for run in range(args.runs):
            with DatasetWriter(bucket.url, f"20260101T00000{run % 10}Z-bench{run:03d}",
                               flush_rows=10**7) as writer:
                for day in range(args.days):
                    at = base + timedelta(days=day, hours=run)
                    writer.add_many("snapshots", [snapshot(f"t{i}", at, views=i)
                                                  for i in range(args.tags)])
            files += len(writer.files)
        elapsed = time.perf_counter() - started
        print(f"write: {files} files in {elapsed:.2f} s ({elapsed / files * 1000:.0f} ms per file)")
        rows, seconds = _count(bucket.url)
        print(f"open + count before compaction: {rows} rows in {seconds:.2f} s")
        started = time.perf_counter()
        result = compact(bucket.url, ["snapshots"]).datasets["snapshots"]
        print(f"compact: {result.compacted} partitions, {result.files_before} -> "
              f"{result.files_after} files in {time.perf_counter() - started:.2f} s")
        markers._MARKERS.clear()
        after, seconds = _count(bucket.url)
        print(f"open + count after compaction, markers not yet read: {after} rows in "
              f"{seconds:.2f} s")
        again, seconds = _count(bucket.url)
        print(f"open + count again, markers cached: {again} rows in {seconds:.2f} s")
        assert rows == after == again == args.days * args.runs * args.tags
        started = time.perf_counter()
        compact(bucket.url, ["snapshots"])
        print(f"compact with nothing to do: {time.perf_counter() - started:.2f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
