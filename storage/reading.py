"""Readers for the Parquet datasets: pyarrow datasets and DuckDB views with explicit types.

Unreadable files are skipped, never fatal: a ``*.parquet`` file that is empty, truncated or not
Parquet at all, or one outside a ``k=v`` partition folder, is left out of every read and named in
a one-line warning (once per process), so one damaged file cannot stop `query`, `report`,
`status` or a crawl's health checks. `tagarchive compact` moves such files to
``<root>/.tagarchive/quarantine/`` (docs/compaction.md).

Each root's back-end (storage/backends/: local.py, s3.py) does the reading; which files a
dataset reads and which it leaves out is storage/parquetfiles.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.backends import backend_for
from storage.parquetfiles import (
    PARTITION_ARROW_TYPES,
    PARTITION_DUCKDB_TYPES,
    UnreadableDatasetError,
    dataset_files,
    dataset_schema,
    misplaced_reason,
    parquet_error_text,
    parquet_problem,
    partition_schema,
    warn_skipped,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as ds


def open_dataset(root: str | Path | Any, name: str) -> ds.Dataset:
    """Open one dataset under ``root`` with its explicit schema; an absent dataset reads empty.

    ``root`` may be ``s3://bucket/prefix``: the files are listed through pyarrow's S3
    filesystem and S3 compaction's commit markers are honoured (storage/markers.py); the
    back-end is the root's scheme's (storage/backends/). Unreadable files are left out and
    named in a warning (see the module docstring).
    """
    return backend_for(root).open_dataset(root, name)


def duckdb_connect(
    root: str | Path | Any, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """Create (or refresh) one view per dataset over ``root``; returns the connection.

    A dataset without files gets an empty view with the right columns, because read_parquet()
    fails on a glob that matches nothing; call again once files exist to switch to the glob.
    """
    if con is None:
        import duckdb  # here, not at the top: a crawl reads datasets (health checks), not SQL

        con = duckdb.connect()
        # Show TIMESTAMPTZ values in UTC, as they are stored, whatever the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
    return backend_for(root).duckdb_views(root, con)


__all__ = [
    "PARTITION_ARROW_TYPES",
    "PARTITION_DUCKDB_TYPES",
    "UnreadableDatasetError",
    "dataset_files",
    "dataset_schema",
    "duckdb_connect",
    "misplaced_reason",
    "open_dataset",
    "parquet_error_text",
    "parquet_problem",
    "partition_schema",
    "warn_skipped",
]
