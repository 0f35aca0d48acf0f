"""Readers for the Parquet datasets: pyarrow datasets and DuckDB views with explicit types."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds

from storage.errors import UnsafePathError
from storage.fs import S3Root, as_s3_root, is_remote
from storage.schemas import DATASETS, get_spec

if TYPE_CHECKING:
    import duckdb

# Partition values are typed explicitly: left to inference, pyarrow reads date=2024 as int32 and
# polars reads 007 as 7 (ENGINEERING-NOTES 8.2).
PARTITION_ARROW_TYPES = {"platform": pa.string(), "date": pa.string()}
PARTITION_DUCKDB_TYPES = {"platform": "VARCHAR", "date": "DATE"}
# Arrow twins of the DuckDB types, used to type the empty view of a dataset without files.
_PARTITION_DUCKDB_AS_ARROW = {"platform": pa.string(), "date": pa.date32()}


def partition_schema(name: str) -> pa.Schema:
    """The hive partition schema of a dataset (string-typed keys)."""
    return pa.schema([(key, PARTITION_ARROW_TYPES[key]) for key in get_spec(name).partition_by])


def dataset_schema(name: str) -> pa.Schema:
    """A dataset's file schema plus its partition columns, as open_dataset() returns it."""
    spec = get_spec(name)
    schema = spec.schema
    for field in partition_schema(name):
        schema = schema.append(field)
    return schema


def _parquet_files(directory: Path) -> Iterator[str]:
    """Published files only: no hidden or underscore names (temp files, _SUCCESS), only .parquet."""
    for current, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for filename in sorted(filenames):
            if filename.endswith(".parquet") and not filename.startswith((".", "_")):
                yield os.path.join(current, filename)


def open_dataset(root: str | Path, name: str) -> ds.Dataset:
    """Open one dataset under ``root`` with its explicit schema; an absent dataset reads empty.

    ``root`` may be ``s3://bucket/prefix``: the files are listed through pyarrow's S3
    filesystem and S3 compaction's commit markers are honoured (storage/s3compact.py).
    """
    schema = dataset_schema(name)
    if is_remote(root):
        return _open_s3_dataset(as_s3_root(root), name, schema)
    directory = Path(root, get_spec(name).name)
    files = list(_parquet_files(directory)) if directory.is_dir() else []
    if not files:
        return ds.dataset(schema.empty_table())
    return ds.dataset(
        files,
        schema=schema,
        format="parquet",
        partitioning=ds.partitioning(partition_schema(name), flavor="hive"),
        partition_base_dir=str(directory),
    )


def _open_s3_dataset(root: S3Root, name: str, schema: pa.Schema) -> ds.Dataset:
    from storage.s3compact import visible_sized

    files = visible_sized(root, name)
    if not files:
        return ds.dataset(schema.empty_table())
    # Fragments made from the listing, sizes included: reading a file then costs its GETs only,
    # not a HEAD first. Partition values come from the key, typed by the explicit schema.
    parquet = ds.ParquetFileFormat()
    partitioning = ds.partitioning(partition_schema(name), flavor="hive")
    base = root.path(get_spec(name).name) + "/"
    fragments = [
        parquet.make_fragment(
            path,
            filesystem=root.fs,
            # the trailing '/' makes the last k=v a directory (parse drops a file name)
            partition_expression=partitioning.parse(path[len(base):].rsplit("/", 1)[0] + "/"),
            file_size=size,
        )
        for path, size in files
    ]
    return ds.FileSystemDataset(fragments, schema=schema, format=parquet, filesystem=root.fs)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _glob_escape(path: str) -> str:
    # DuckDB globs treat these as wildcards; a one-character class matches the literal.
    return re.sub(r"([\[\]*?{}])", r"[\1]", path)


def _glob_root(root: str | Path) -> str:
    absolute = Path(os.path.abspath(root))
    text = absolute.as_posix()  # DuckDB wants '/' on Windows too
    if os.sep == "/" and "\\" in text:
        # Checked with DuckDB 2.0: a backslash in a glob never matches, escaped or not.
        raise UnsafePathError(f"DuckDB cannot glob a path containing a backslash: {absolute}")
    return _glob_escape(text)


def _empty_view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    spec = get_spec(name)
    fields = list(spec.schema) + [
        pa.field(key, _PARTITION_DUCKDB_AS_ARROW[key]) for key in spec.partition_by
    ]
    empty = pa.schema(fields).empty_table()
    types = con.from_arrow(empty).types
    columns = ", ".join(
        f"CAST(NULL AS {sql_type}) AS " + '"' + field.name.replace('"', '""') + '"'
        for field, sql_type in zip(fields, types, strict=True)
    )
    return f"SELECT {columns} WHERE false"


def duckdb_connect(
    root: str | Path, con: duckdb.DuckDBPyConnection | None = None
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
    if is_remote(root):
        return _duckdb_s3_views(as_s3_root(root), con)
    glob_root = _glob_root(root)
    for name, spec in DATASETS.items():
        directory = Path(root, name)
        has_files = directory.is_dir() and next(_parquet_files(directory), None) is not None
        if has_files:
            hive_types = ", ".join(
                f"{_sql_string(key)}: {_sql_string(PARTITION_DUCKDB_TYPES[key])}"
                for key in spec.partition_by
            )
            source = (
                f"SELECT * FROM read_parquet({_sql_string(f'{glob_root}/{name}/**/*.parquet')}, "
                f"hive_partitioning = true, union_by_name = true, hive_types = {{{hive_types}}})"
            )
        else:
            source = _empty_view_sql(con, name)
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {source}')
    return con


def _duckdb_s3_views(root: S3Root, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Views over registered pyarrow datasets: DuckDB's own S3 reader (httpfs) is an extension
    downloaded at run time, which fails offline, and it would not honour commit markers."""
    for name, spec in DATASETS.items():
        dataset = open_dataset(root, name)
        if not isinstance(dataset, ds.FileSystemDataset):  # no files yet
            source = _empty_view_sql(con, name)
        else:
            registered = f"__tagarchive_{name}"
            con.register(registered, dataset)
            # open_dataset keeps partition values as text; the local views type them as DuckDB
            # does for hive paths (date -> DATE), so queries behave the same on both roots.
            casts = ", ".join(
                f'CAST("{key}" AS {PARTITION_DUCKDB_TYPES[key]}) AS "{key}"'
                for key in spec.partition_by
                if PARTITION_DUCKDB_TYPES[key] != "VARCHAR"
            )
            replace = f" REPLACE ({casts})" if casts else ""
            source = f'SELECT *{replace} FROM "{registered}"'
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {source}')
    return con
