"""Storage for tagarchive: Arrow schemas, the partitioned Parquet writer, and readers."""

from __future__ import annotations

from storage.analysis import (
    Archive,
    ArchiveNotFoundError,
    UnsupportedRootError,
    fold_tag,
    open_archive,
    resolve_root,
)
from storage.errors import OutputNotWritableError, SchemaError, StorageError, UnsafePathError
from storage.paths import (
    check_partition_value,
    ensure_inside_root,
    new_run_id,
    partition_path,
    safe_partition_value,
    utc_day,
)
from storage.reading import dataset_schema, duckdb_connect, open_dataset, partition_schema
from storage.schemas import DATASETS, SCHEMA_VERSION, DatasetSpec, get_spec, table_from_rows
from storage.writer import DatasetWriter, WrittenFile

__all__ = [
    "DATASETS",
    "SCHEMA_VERSION",
    "Archive",
    "ArchiveNotFoundError",
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
