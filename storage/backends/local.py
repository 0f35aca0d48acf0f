"""The local back-end: an archive root that is a directory (a plain path, or ``file://``).

Files are written to a hidden temp name, fsynced and renamed into place under the archive lock
(storage/writer.py, storage/locks.py); compaction swaps whole partition directories
(storage/compact/local.py). Reading lists the dataset's folders itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.dataset as ds

from storage.backends.base import Backend
from storage.parquetfiles import (
    PARTITION_DUCKDB_TYPES,
    UnreadableDatasetError,
    dataset_files,
    dataset_schema,
    empty_view_sql,
    glob_escape,
    glob_root,
    parquet_files,
    partition_schema,
    sql_string,
    warn_skipped,
)
from storage.paths import partition_values
from storage.schemas import DATASETS, DatasetSpec, get_spec

if TYPE_CHECKING:
    import duckdb

_FILE_SCHEME = "file://"


class LocalBackend(Backend):
    """An archive root in a local directory."""

    name = "local"
    remote = False

    def location(self, root: Any) -> Path:
        text = os.fspath(root)
        if text[:len(_FILE_SCHEME)].lower() == _FILE_SCHEME:
            text = text[len(_FILE_SCHEME):]
        return Path(text)

    def url(self, root: Any) -> str:
        return str(self.location(root))

    def exists(self, root: Any, *parts: str) -> bool:
        return self.location(root).joinpath(*parts).exists()

    def list_files(self, root: Any, *parts: str) -> list[tuple[str, int]]:
        base = self.location(root).joinpath(*parts)
        found = []
        for current, _dirs, names in os.walk(base):
            for name in names:
                path = os.path.join(current, name)
                found.append((path, os.lstat(path).st_size))
        return sorted(found)

    def open_dataset(self, root: Any, name: str) -> ds.Dataset:
        root = self.location(root)
        schema = dataset_schema(name)
        files, skipped = dataset_files(root, name)
        warn_skipped(skipped)
        if not files:
            return ds.dataset(schema.empty_table())
        return ds.dataset(
            files,
            schema=schema,
            format="parquet",
            partitioning=ds.partitioning(partition_schema(name), flavor="hive"),
            partition_base_dir=str(Path(root, get_spec(name).name)),
        )

    def duckdb_views(self, root: Any, con: duckdb.DuckDBPyConnection
                     ) -> duckdb.DuckDBPyConnection:
        path = self.location(root)
        pattern = glob_root(path)
        for spec in DATASETS.values():
            _view(con, path, spec, pattern, shown=root)
        return con


def _view(con: duckdb.DuckDBPyConnection, root: Path, spec: DatasetSpec, pattern: str, *,
          shown: Any) -> None:
    """Create (or replace) the view of one dataset: one glob, else its readable files listed."""
    import duckdb

    name = spec.name
    directory = Path(root, name)
    files = list(parquet_files(directory)) if directory.is_dir() else []
    hive_types = ", ".join(
        f"{sql_string(key)}: {sql_string(PARTITION_DUCKDB_TYPES[key])}"
        for key in spec.partition_by
    )
    options = f"hive_partitioning = true, union_by_name = true, hive_types = {{{hive_types}}}"
    if not files:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {empty_view_sql(con, name)}')
        return
    # files written before a column was added lack it: the empty view brings every column
    every_column = f"UNION ALL BY NAME {empty_view_sql(con, name)}"
    folders = {os.path.relpath(os.path.dirname(f), directory) for f in files}
    placed = all(partition_values(name, folder.split(os.sep)) is not None for folder in folders)
    if placed:
        # The common case: one glob, so DuckDB lists the files itself. It reads every
        # file's footer here (union_by_name), so a damaged file fails this statement.
        glob = sql_string(f"{pattern}/{name}/**/*.parquet")
        try:
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS '
                        f"SELECT * FROM read_parquet({glob}, {options}) {every_column}")
            return
        except duckdb.Error:
            pass
    # Some file is misplaced or unreadable: the view names the readable files one by one.
    good, skipped = dataset_files(root, name, thorough=True)
    warn_skipped(skipped)
    if not good:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {empty_view_sql(con, name)}')
        return
    listed = ", ".join(sql_string(glob_escape(Path(f).absolute().as_posix())) for f in good)
    try:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS '
                    f"SELECT * FROM read_parquet([{listed}], {options}) {every_column}")
    except duckdb.Error as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableDatasetError(f"cannot read {name} under {shown}: {text}") from None
