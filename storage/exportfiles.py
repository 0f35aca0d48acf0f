"""The files of an export, written so that the same rows give the same bytes.

Rows are sorted on every scalar column (a total order whatever the order the archive's files
were listed in); Parquet is written with fixed options (codec, row-group size, format version,
no page index), CSV by the standard library with one fixed rendering per type. Every file is
written under a hidden temp name in its final folder and renamed into place, and each path is
checked to lie inside the export folder first (a planted symbolic link is refused).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.paths import ensure_inside_root

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd", "compression_level": 9, "use_dictionary": True,
    "write_statistics": True, "version": "2.6", "data_page_version": "1.0",
    "row_group_size": 100_000, "write_page_index": False, "store_schema": True,
}


def sort_rows(table: pa.Table, first: Sequence[str]) -> pa.Table:
    """`table` sorted by `first`, then by every other scalar column in schema order."""
    scalar = [f.name for f in table.schema
              if not (pa.types.is_list(f.type) or pa.types.is_struct(f.type))]
    keys = [c for c in first if c in scalar] + [c for c in scalar if c not in first]
    if not keys or table.num_rows < 2:
        return table
    if int(pa.__version__.split(".")[0]) >= 25:  # null placement per key (the old way warns)
        keyed: Any = [(k, "ascending", "at_start") for k in keys]
        order = pc.sort_indices(table, sort_keys=keyed)
    else:
        order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys],
                                null_placement="at_start")
    return table.take(order)


def safe_target(out: Path, relative: str) -> Path:
    """`out/relative`, its folders created, checked to lie inside `out` (UnsafePathError)."""
    target = Path(out, relative)
    ensure_inside_root(out, target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    ensure_inside_root(out, target.parent)  # a folder swapped for a link meanwhile
    if target.is_symlink():
        ensure_inside_root(out, target)
    return target


def write_bytes(out: Path, relative: str, data: bytes) -> Path:
    """Write a file of the export atomically (hidden temp, fsync, rename)."""
    target = safe_target(out, relative)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return target


def write_parquet(out: Path, relative: str, table: pa.Table) -> Path:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **PARQUET_OPTIONS)
    return write_bytes(out, relative, buffer.getvalue().to_pybytes())


def csv_cell(value: Any) -> str:
    """One value as the CSV files render it: ISO 8601 UTC times with `Z`, JSON for lists and
    structs, an empty cell for null (the Table Schemas' missingValues)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=csv_cell)
    return str(value)


def write_csv(out: Path, relative: str, table: pa.Table) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table.column_names)
    for batch in table.to_batches(max_chunksize=10_000):
        columns = [column.to_pylist() for column in batch.columns]
        writer.writerows([csv_cell(v) for v in row] for row in zip(*columns, strict=True))
    return write_bytes(out, relative, text.getvalue().encode("utf-8"))


def file_digest(path: Path) -> tuple[str, int]:
    """(`sha256:<hex>`, size in bytes) of a file, as Data Package resources state them."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return f"sha256:{digest.hexdigest()}", size
