"""Which files a dataset reads: its layout and schemas, and the damaged or misplaced files left out.

Shared by every back-end's readers (storage/backends/) and by compaction, which moves the files
left out to the quarantine. Warnings keep the ``storage.reading`` logger: they are the readers'.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from storage.errors import StorageError, UnsafePathError
from storage.paths import partition_values
from storage.schemas import get_spec, legacy_fields, upgrade_sql

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger("storage.reading")

_MAGIC = b"PAR1"
MIN_SIZE = 12  # magic, footer length, magic: the smallest file Parquet readers accept
_RELIST_ATTEMPTS = 3


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
    """A dataset's file schema plus its partition columns, as open_dataset() returns it.

    The columns of older schema versions (schemas.LEGACY) come last but one, so files of every
    version read through one dataset; `upgrade_table` folds them into the current columns.
    """
    spec = get_spec(name)
    schema = spec.schema
    for field in [*legacy_fields(name), *partition_schema(name)]:
        schema = schema.append(field)
    return schema


def parquet_files(directory: Path) -> Iterator[str]:
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
        if size < MIN_SIZE:
            return f"{size} bytes, too small to be Parquet"
        head, tail = _read_at(fd, 4, 0), _read_at(fd, 8, size - 8)
    finally:
        os.close(fd)
    if head != _MAGIC or tail[4:] != _MAGIC:
        return "not a whole Parquet file (no PAR1 mark at both ends: truncated, or another format)"
    footer = int.from_bytes(tail[:4], "little")
    if footer + MIN_SIZE > size:
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

def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def glob_escape(path: str) -> str:
    # DuckDB globs treat these as wildcards; a one-character class matches the literal.
    return re.sub(r"([\[\]*?{}])", r"[\1]", path)


def glob_root(root: str | Path) -> str:
    absolute = Path(os.path.abspath(root))
    text = absolute.as_posix()  # DuckDB wants '/' on Windows too
    if os.sep == "/" and "\\" in text:
        # Checked with DuckDB 2.0: a backslash in a glob never matches, escaped or not.
        raise UnsafePathError(f"DuckDB cannot glob a path containing a backslash: {absolute}")
    return glob_escape(text)


def empty_view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    spec = get_spec(name)
    fields = list(spec.schema) + legacy_fields(name) + [
        pa.field(key, _PARTITION_DUCKDB_AS_ARROW[key]) for key in spec.partition_by
    ]
    empty = pa.schema(fields).empty_table()
    types = con.from_arrow(empty).types
    columns = ", ".join(
        f"CAST(NULL AS {sql_type}) AS " + '"' + field.name.replace('"', '""') + '"'
        for field, sql_type in zip(fields, types, strict=True)
    )
    return f"SELECT {columns} WHERE false"




def create_view(con: duckdb.DuckDBPyConnection, name: str, source: str) -> None:
    """(Re)create a dataset's view over `source`, a select that has every column of every schema
    version (empty_view_sql brings those the files lack): older columns are folded into the
    current ones, so the view shows the current schema whatever version each file is."""
    con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT {upgrade_sql(name)} FROM ({source})')
