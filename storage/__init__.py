"""Storage for tagarchive: Arrow schemas, the partitioned Parquet writer, and readers."""

from __future__ import annotations

from typing import Any

from storage.errors import OutputNotWritableError, SchemaError, StorageError, UnsafePathError
from storage.paths import (
    check_partition_value,
    ensure_inside_root,
    new_run_id,
    partition_path,
    safe_partition_value,
    utc_day,
)
from storage.schemas import DATASETS, SCHEMA_VERSION, DatasetSpec, get_spec, table_from_rows
from storage.writer import DatasetWriter, WrittenFile

# Readers pull in DuckDB (and the analysis API pandas); a crawl process only writes, so these
# load on first use instead of costing every crawl ~0.8 s and ~100 MiB at start.
_LAZY = {
    "Archive": "storage.analysis",
    "ArchiveNotFoundError": "storage.analysis",
    "UnsupportedRootError": "storage.analysis",
    "fold_tag": "storage.analysis",
    "open_archive": "storage.analysis",
    "resolve_root": "storage.analysis",
    "dataset_schema": "storage.reading",
    "duckdb_connect": "storage.reading",
    "open_dataset": "storage.reading",
    "partition_schema": "storage.reading",
    "CompactionError": "storage.compact",
    # not compact() itself: `storage.compact` is the module's name once anything imports it
    "CompactionReport": "storage.compact",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DATASETS",
    "SCHEMA_VERSION",
    "Archive",
    "ArchiveNotFoundError",
    "CompactionError",
    "CompactionReport",
    "DatasetSpec",
    "DatasetWriter",
    "OutputNotWritableError",
    "SchemaError",
    "StorageError",
    "UnsafePathError",
    "UnsupportedRootError",
    "WrittenFile",
    "check_partition_value",
    "dataset_schema",
    "duckdb_connect",
    "ensure_inside_root",
    "fold_tag",
    "get_spec",
    "new_run_id",
    "open_archive",
    "open_dataset",
    "partition_path",
    "partition_schema",
    "resolve_root",
    "safe_partition_value",
    "table_from_rows",
    "utc_day",
]
