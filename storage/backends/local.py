"""The local back-end: an archive root that is a directory (a plain path, or ``file://``).

Files are written to a hidden temp name, fsynced and renamed into place under the archive lock
(storage/writer.py, storage/locks.py); compaction swaps whole partition directories
(storage/compact/local.py). Reading lists the dataset's folders itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from storage.backends.base import Backend, Compression, Publisher, Shipper
from storage.errors import ArchiveNotFoundError, StorageError, wrap_os_error
from storage.locks import publishing
from storage.parquetfiles import (
    PARTITION_DUCKDB_TYPES,
    UnreadableDatasetError,
    create_view,
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
from storage.paths import ensure_inside_root, partition_path, partition_values
from storage.schemas import DATASETS, DatasetSpec, get_spec

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as ds

_FILE_SCHEME = "file://"
# The publishers' warnings keep the writer's logger: they are about its files.
writer_log = logging.getLogger("storage.writer")


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
        text = os.fspath(root)
        return str(self.location(text)) if text[:len(_FILE_SCHEME)].lower() == _FILE_SCHEME \
            else text  # a plain path is shown as it was given

    def is_dir(self, root: Any, *parts: str) -> bool:
        return self.location(root).joinpath(*parts).is_dir()

    def resolve(self, root: Any) -> str:
        text = self.url(root)
        path = self.location(root).expanduser()
        if not path.is_dir():
            raise ArchiveNotFoundError(f"no archive at {text}: not a directory")
        if not any((path / name).is_dir() for name in DATASETS):
            raise ArchiveNotFoundError(
                f"no archive at {text}: none of {', '.join(d + '/' for d in DATASETS)} is there"
            )
        return str(path)

    def prepare(self, root: Any) -> str:
        text = self.url(root)
        path = self.location(root)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create output root {text}: {exc.strerror}") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise StorageError(f"output root {text} is not writable")
        return str(path)

    def state_root(self, root: Any) -> str:
        return self.url(root)

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

    def open_input(self, root: Any, path: str) -> BinaryIO:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it

    def absolute(self, root: Any, base: Path) -> Path:
        return (base / self.location(root).expanduser()).resolve()

    def publisher(self, root: Any) -> LocalPublisher:
        return LocalPublisher(root)

    def shipper(self, root: Any) -> LocalShipper:
        return LocalShipper(root)

    def open_dataset(self, root: Any, name: str) -> ds.Dataset:
        import pyarrow.dataset as ds  # here: a crawl only writes, and this costs it ~0.2 s

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
        create_view(con, name, empty_view_sql(con, name))
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
            create_view(con, name,
                        f"SELECT * FROM read_parquet({glob}, {options}) {every_column}")
            return
        except duckdb.Error:
            pass
    # Some file is misplaced or unreadable: the view names the readable files one by one.
    good, skipped = dataset_files(root, name, thorough=True)
    warn_skipped(skipped)
    if not good:
        create_view(con, name, empty_view_sql(con, name))
        return
    listed = ", ".join(sql_string(glob_escape(Path(f).absolute().as_posix())) for f in good)
    try:
        create_view(con, name,
                    f"SELECT * FROM read_parquet([{listed}], {options}) {every_column}")
    except duckdb.Error as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableDatasetError(f"cannot read {name} under {shown}: {text}") from None


class LocalPublisher(Publisher):
    """Temp file, fsync, rename into place under the archive lock (shared with other writers)."""

    def __init__(self, root: Any) -> None:
        self.root = Path(os.path.abspath(LocalBackend().location(root)))

    def partition_dir(self, dataset: str, partitions: dict[str, str]) -> PurePath:
        return partition_path(self.root, dataset, partitions)

    def publish(self, table: pa.Table, final: Any, compression: Compression) -> int:
        """Write to a hidden temp sibling, fsync, rename into place; returns the file size."""
        temp = final.with_name(f".{final.name}.tmp")
        started = False  # before the write there is no temp file to clean up
        try:
            _make_dirs(final.parent)
            ensure_inside_root(self.root, final.parent)
            # Shared with other writers; compaction takes it exclusively to swap a partition's
            # directory, so the temp file and its rename land in the same directory.
            with publishing(self.root):
                if os.path.lexists(final):  # names are unique per run; a clash: reused run id
                    raise StorageError(f"refusing to overwrite existing file {final}")
                started = True
                pq.write_table(table, temp, compression=compression)
                _fsync_path(temp)
                size = os.stat(temp).st_size
                os.replace(temp, final)
        except BaseException as exc:
            if started:
                _remove_quietly(temp)
            if isinstance(exc, StorageError) or not isinstance(exc, Exception):
                raise
            if isinstance(exc, OSError):
                raise wrap_os_error(exc, final) from exc
            raise StorageError(f"could not write {final}: {type(exc).__name__}: {exc}") from exc
        try:
            _fsync_path(final.parent, directory=True)  # make the rename itself durable
        except OSError as exc:
            # The file is already in place: reporting failure would make the caller write the
            # rows a second time.
            writer_log.warning("could not fsync directory %s: %s", final.parent, exc)
        return size


def _make_dirs(directory: Path) -> None:
    if directory.is_dir():
        return
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it first
            path.mkdir()
        _fsync_path(path.parent, directory=True)


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY if directory else os.O_RDWR
    if directory:
        if os.name == "nt":  # directories cannot be opened for fsync on Windows
            return
        flags |= getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # the original error matters more than a leftover hidden temp file
        writer_log.warning("could not remove temporary file %s: %s", path, exc)


class LocalShipper(Shipper):
    """Files grow in place under a hidden name and are renamed to their final one."""

    def __init__(self, root: Any) -> None:
        self.scratch = Path(os.path.abspath(LocalBackend().location(root)))

    def seal(self, tmp: Path, final: Path) -> None:
        os.replace(tmp, final)  # while still open, so its lock never lapses under the temp name

    def ship(self, closed: list[tuple[Path, Path]], published: list[PurePath]) -> list[PurePath]:
        return [final for _tmp, final in closed]
