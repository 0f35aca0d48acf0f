"""Readers for the Parquet datasets: pyarrow datasets and DuckDB views with explicit types.

Unreadable files are skipped, never fatal: a ``*.parquet`` file that is empty, truncated or not
Parquet at all, or one outside a ``k=v`` partition folder, is left out of every read and named in
a one-line warning (once per process), so one damaged file cannot stop `query`, `report`,
`status` or a crawl's health checks. `tagarchive compact` moves such files to
``<root>/.tagarchive/quarantine/`` (docs/compaction.md).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds

from storage.errors import StorageError, UnsafePathError
from storage.fs import S3Root, as_s3_root, is_remote, s3_error
from storage.markers import listing
from storage.paths import partition_values
from storage.schemas import DATASETS, get_spec

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger(__name__)

_MAGIC = b"PAR1"
_MIN_SIZE = 12  # magic, footer length, magic: the smallest file Parquet readers accept
_RELIST_ATTEMPTS = 3
_CHECK_THREADS = 8


class UnreadableDatasetError(StorageError, OSError):
    """A dataset could not be read even with its unreadable files left out (one line)."""

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


def _read_at(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    return os.read(fd, size)


def parquet_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file at ``path`` cannot be a whole Parquet file, or None when it looks whole.

    Cheap (its size and 12 bytes, no parsing): finds empty, truncated and non-Parquet files. A
    file damaged inside an intact footer passes; compaction, which reads every byte, finds it.
    OSError when the file cannot be opened at all.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size < _MIN_SIZE:
            return f"{size} bytes, too small to be Parquet"
        head, tail = _read_at(fd, 4, 0), _read_at(fd, 8, size - 8)
    finally:
        os.close(fd)
    if head != _MAGIC or tail[4:] != _MAGIC:
        return "not a whole Parquet file (no PAR1 mark at both ends: truncated, or another format)"
    footer = int.from_bytes(tail[:4], "little")
    if footer + _MIN_SIZE > size:
        return f"truncated: its footer claims {footer} bytes of a {size}-byte file"
    return None


def misplaced_reason(name: str) -> str:
    keys = get_spec(name).partition_by
    return "not inside a " + "/".join(f"{key}=..." for key in keys) + " partition folder"


_warned: set[str] = set()


def warn_skipped(skipped: list[tuple[str, str]]) -> None:
    """One warning line per unreadable file (once per process): what is read without it."""
    for path, reason in skipped:
        if path not in _warned:
            _warned.add(path)
            logger.warning("skipping unreadable file %s: %s (`tagarchive compact` moves it to "
                           ".tagarchive/quarantine/)", path, reason)


def parquet_error_text(exc: BaseException) -> str:
    """pyarrow's reason for refusing a file, in one short line (without the path it repeats)."""
    text = " ".join(str(exc).split())
    if text.startswith("Could not open Parquet input source") and "': " in text:
        text = text.split("': ", 1)[1]
    return (text[:197] + "...") if len(text) > 200 else text or type(exc).__name__


def _full_problem(path: str) -> str | None:
    """parquet_problem(), then the footer itself parsed (for the slow path only)."""
    import pyarrow.parquet as pq

    problem = parquet_problem(path)
    if problem is None:
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            return "damaged footer: " + parquet_error_text(exc)
    return problem


def dataset_files(root: str | Path, name: str,
                  thorough: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """A local dataset's readable files, and the skipped ones with the reason for each.

    A file is skipped when it is not in a partition folder of the dataset's layout, or
    parquet_problem() (``thorough``: also its parsed footer) finds it damaged, or it cannot be
    opened (permissions). A file that disappears while being checked means compaction swapped
    its partition meanwhile: the listing is taken again.
    """
    directory = str(Path(root, get_spec(name).name))
    check = _full_problem if thorough else parquet_problem
    for attempt in range(_RELIST_ATTEMPTS):
        try:
            return _check_files(directory, name, check)
        except FileNotFoundError:
            if attempt + 1 == _RELIST_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _check_files(directory: str, name: str, check: Callable[[str], str | None],
                 ) -> tuple[list[str], list[tuple[str, str]]]:
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    if not os.path.isdir(directory):
        return files, skipped
    for current, dirnames, filenames in os.walk(directory):
        # the same walk as _parquet_files(), with the layout checked once per folder
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        relative = os.path.relpath(current, directory)
        placed = partition_values(name, [] if relative == "." else relative.split(os.sep))
        for filename in sorted(filenames):
            if not filename.endswith(".parquet") or filename.startswith((".", "_")):
                continue
            path = os.path.join(current, filename)
            try:
                problem = misplaced_reason(name) if placed is None else check(path)
            except FileNotFoundError:
                raise
            except OSError as exc:
                problem = "cannot open it: " + (os.strerror(exc.errno) if exc.errno
                                                else str(exc))
            if problem is None:
                files.append(path)
            else:
                skipped.append((path, problem))
    return files, skipped


def open_dataset(root: str | Path, name: str) -> ds.Dataset:
    """Open one dataset under ``root`` with its explicit schema; an absent dataset reads empty.

    ``root`` may be ``s3://bucket/prefix``: the files are listed through pyarrow's S3
    filesystem and S3 compaction's commit markers are honoured (storage/markers.py).
    Unreadable files are left out and named in a warning (see the module docstring).
    """
    schema = dataset_schema(name)
    if is_remote(root):
        return _open_s3_dataset(as_s3_root(root), name, schema)
    directory = Path(root, get_spec(name).name)
    files, skipped = dataset_files(root, name)
    warn_skipped(skipped)
    if not files:
        return ds.dataset(schema.empty_table())
    return ds.dataset(
        files,
        schema=schema,
        format="parquet",
        partitioning=ds.partitioning(partition_schema(name), flavor="hive"),
        partition_base_dir=str(directory),
    )


# S3 objects are written once and never changed: a fragment checked once (its footer read and
# kept, so a scan does not fetch it again) is good for the whole process. Value: the fragment,
# or why the object is unreadable.
_S3_FRAGMENTS: dict[tuple[int, str, int], ds.Fragment | str] = {}


def s3_footer_problem(exc: BaseException, path: str) -> str:
    """Why a Parquet object's footer could not be read, if the bytes are to blame; otherwise
    (the network, permissions) the S3Error to raise."""
    if isinstance(exc, pa.ArrowInvalid) or "deserialize thrift" in str(exc):
        return "not a whole Parquet file: " + parquet_error_text(exc)
    raise s3_error(exc, "download", path) from None


def _open_s3_dataset(root: S3Root, name: str, schema: pa.Schema) -> ds.Dataset:
    parts, misplaced = listing(root, name)
    skipped = [(f"s3://{path}", misplaced_reason(name)) for path, _size in misplaced]
    # Fragments made from the listing, sizes included: reading a file then costs its GETs only,
    # not a HEAD first. Partition values come from the key, typed by the explicit schema.
    parquet = ds.ParquetFileFormat()
    partitioning = ds.partitioning(partition_schema(name), flavor="hive")
    base = root.path(get_spec(name).name) + "/"
    fragments: list[ds.Fragment] = []
    unchecked: list[tuple[tuple[int, str, int], ds.Fragment]] = []
    for part in parts:
        # Outputs of a committed compaction were written by a compaction that read every input:
        # only the other files (a day or two of crawl files, usually) have their footer checked.
        committed = {marker.output for marker in part.honoured}
        for file in part.visible:
            path, size = part.path(file), part.files[file]
            key = (id(root.fs), path, size)
            known = _S3_FRAGMENTS.get(key)
            if isinstance(known, str):
                skipped.append((f"s3://{path}", known))
                continue
            if known is not None:
                fragments.append(known)
                continue
            if size < _MIN_SIZE:
                skipped.append((f"s3://{path}", f"{size} bytes, too small to be Parquet"))
                continue
            fragment = parquet.make_fragment(
                path,
                filesystem=root.fs,
                # the trailing '/' makes the last k=v a directory (parse drops a file name)
                partition_expression=partitioning.parse(path[len(base):].rsplit("/", 1)[0] + "/"),
                file_size=size,
            )
            fragments.append(fragment)
            if file not in committed:
                unchecked.append((key, fragment))
    if unchecked:
        def check(item: tuple[tuple[int, str, int], ds.Fragment]) -> str | None:
            try:
                item[1].ensure_complete_metadata()  # kept in the fragment for the scan
            except (OSError, pa.ArrowException) as exc:
                return s3_footer_problem(exc, item[0][1])
            return None

        with ThreadPoolExecutor(min(_CHECK_THREADS, len(unchecked))) as pool:
            problems = list(pool.map(check, unchecked))
        bad = set()
        for (key, fragment), problem in zip(unchecked, problems, strict=True):
            _S3_FRAGMENTS[key] = fragment if problem is None else problem
            if problem is not None:
                bad.add(id(fragment))
                skipped.append((f"s3://{key[1]}", problem))
        fragments = [f for f in fragments if id(f) not in bad]
    warn_skipped(skipped)
    if not fragments:
        return ds.dataset(schema.empty_table())
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
    import duckdb

    glob_root = _glob_root(root)
    for name, spec in DATASETS.items():
        directory = Path(root, name)
        files = list(_parquet_files(directory)) if directory.is_dir() else []
        hive_types = ", ".join(
            f"{_sql_string(key)}: {_sql_string(PARTITION_DUCKDB_TYPES[key])}"
            for key in spec.partition_by
        )
        options = f"hive_partitioning = true, union_by_name = true, hive_types = {{{hive_types}}}"
        if not files:
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {_empty_view_sql(con, name)}')
            continue
        # files written before a column was added lack it: the empty view brings every column
        every_column = f"UNION ALL BY NAME {_empty_view_sql(con, name)}"
        folders = {os.path.relpath(os.path.dirname(f), directory) for f in files}
        placed = all(partition_values(name, folder.split(os.sep)) is not None
                     for folder in folders)
        if placed:
            # The common case: one glob, so DuckDB lists the files itself. It reads every
            # file's footer here (union_by_name), so a damaged file fails this statement.
            glob = _sql_string(f"{glob_root}/{name}/**/*.parquet")
            try:
                con.execute(f'CREATE OR REPLACE VIEW "{name}" AS '
                            f"SELECT * FROM read_parquet({glob}, {options}) {every_column}")
                continue
            except duckdb.Error:
                pass
        # Some file is misplaced or unreadable: the view names the readable files one by one.
        good, skipped = dataset_files(root, name, thorough=True)
        warn_skipped(skipped)
        if not good:
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {_empty_view_sql(con, name)}')
            continue
        listed = ", ".join(_sql_string(_glob_escape(Path(f).absolute().as_posix())) for f in good)
        try:
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS '
                        f"SELECT * FROM read_parquet([{listed}], {options}) {every_column}")
        except duckdb.Error as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnreadableDatasetError(f"cannot read {name} under {root}: {text}") from None
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
