"""The SQL box: one read-only statement over the archive's views, with a time limit and a row cap.

Read-only twice over. First the statement: DuckDB's own parser splits the text, and anything
but exactly one statement that it parses as a SELECT (SELECT, WITH, FROM-first, VALUES,
DESCRIBE, SHOW, SUMMARIZE) is refused before it runs. Then the engine: every query runs on a
fresh in-memory DuckDB connection whose only tables are the views over the archive, built on
Arrow datasets registered from Python (`storage.open_dataset`, which reads local and S3 roots
alike), so DuckDB itself needs no file access at all. External access is switched off (no file,
no network, no extension, no Python variable scans, no spilling to a temporary directory), its
memory is capped, and the configuration is locked, so even a statement that got past the parser
could neither read nor write a file. DuckDB has no statement timeout: a timer interrupts the
connection after `timeout` seconds.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from storage.parquetfiles import PARTITION_DUCKDB_TYPES, create_view, empty_view_sql
from storage.schemas import DATASETS

if TYPE_CHECKING:
    import duckdb
    import pyarrow.dataset as ds

# What the engine is locked into before the user's statement runs; the order matters only in
# that lock_configuration comes last (after it nothing can be SET, by us or by the statement).
_LOCKDOWN = (
    "SET TimeZone = 'UTC'",
    "SET enable_progress_bar = false",  # it would print on the server's terminal
    "SET temp_directory = ''",  # no spilling to disk: past memory_limit a statement fails
    "SET enable_external_access = false",
    "SET python_enable_replacements = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",
)


DEFAULT_MEMORY = "1GB"


class SqlError(ValueError):
    """A statement that cannot be run here: refused, wrong, or stopped. One line for the page."""


class SqlRefused(SqlError):
    """Not a single read-only statement."""


class SqlTimeout(SqlError):
    """The statement ran past the time limit and was interrupted."""


class SqlBusy(SqlError):
    """Too many statements already running."""


@dataclass(frozen=True)
class SqlResult:
    """The first `limit` rows of a statement, and whether it had more."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    seconds: float


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse (SqlRefused) anything but exactly one statement DuckDB parses as a SELECT."""
    import duckdb

    if not sql.strip():
        raise SqlRefused("empty SQL")
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(first_line(exc)) from None
    if len(statements) != 1:
        raise SqlRefused(f"one statement at a time, got {len(statements)}: the SQL box is "
                         "read-only and runs a single SELECT")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).rsplit(".", 1)[-1]
        raise SqlRefused(f"only a read-only SELECT (or WITH, DESCRIBE, SHOW, SUMMARIZE) is "
                         f"run here, not {name}")


def first_line(exc: BaseException) -> str:
    """An exception as one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def locked_connection(datasets: Mapping[str, ds.Dataset],
                      memory: str = DEFAULT_MEMORY) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection whose only tables are views over `datasets`, with no file,
    network or extension access, at most `memory` (DuckDB's size text, "1GB") of memory, and
    its configuration locked."""
    import duckdb
    import pyarrow.dataset as pads

    con = duckdb.connect(":memory:")
    try:
        for name, spec in DATASETS.items():
            dataset = datasets.get(name)
            if dataset is None or not isinstance(dataset, pads.FileSystemDataset):
                source = empty_view_sql(con, name)  # no files yet: the right columns, no rows
            else:
                registered = f"__tagarchive_{name}"
                con.register(registered, dataset)
                # the views of `query` type partition values as DuckDB does for hive paths
                casts = ", ".join(f'CAST("{key}" AS {PARTITION_DUCKDB_TYPES[key]}) AS "{key}"'
                                  for key in spec.partition_by
                                  if PARTITION_DUCKDB_TYPES[key] != "VARCHAR")
                source = f'SELECT *{f" REPLACE ({casts})" if casts else ""} FROM "{registered}"'
            create_view(con, name, source)
        con.execute("SET memory_limit = ?", [memory])
        for setting in _LOCKDOWN:
            con.execute(setting)
    except BaseException:
        con.close()
        raise
    return con


class SqlBox:
    """Runs statements for the web page: at most `parallel` at once, each on its own locked
    connection with at most `memory`, interrupted after `timeout` seconds, `limit` rows kept."""

    def __init__(self, timeout: float, parallel: int = 2, memory: str = DEFAULT_MEMORY) -> None:
        self.timeout = timeout
        self.memory = memory
        self._slots = threading.BoundedSemaphore(parallel)

    def run(self, datasets: Mapping[str, ds.Dataset], sql: str, limit: int) -> SqlResult:
        """The statement's first `limit` rows; SqlError (one line) when it cannot be run."""
        import duckdb

        if not self._slots.acquire(timeout=self.timeout):
            raise SqlBusy("too many queries running at once: try again in a moment")
        try:
            con = locked_connection(datasets, self.memory)
            try:
                check_statement(con, sql)
                return self._execute(con, sql, limit)
            finally:
                con.close()
        except duckdb.Error as exc:
            raise SqlError(first_line(exc)) from None
        finally:
            self._slots.release()

    def _execute(self, con: duckdb.DuckDBPyConnection, sql: str, limit: int) -> SqlResult:
        import duckdb

        expired = threading.Event()

        def stop() -> None:
            expired.set()
            con.interrupt()

        timer = threading.Timer(self.timeout, stop)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            con.execute(sql)
            description = con.description or []
            rows = con.fetchmany(limit + 1)  # a streamed result: only these rows are computed
        except duckdb.InterruptException:
            raise SqlTimeout(f"stopped after {self.timeout:g} s: the query ran longer than the "
                             "time limit (tagarchive serve --sql-timeout)") from None
        except duckdb.Error as exc:
            if expired.is_set():
                raise SqlTimeout(f"stopped after {self.timeout:g} s: the query ran longer "
                                 "than the time limit (tagarchive serve --sql-timeout)") from None
            raise SqlError(first_line(exc)) from None
        finally:
            timer.cancel()
        return SqlResult(
            columns=[str(d[0]) for d in description],
            types=[str(d[1]) for d in description],
            rows=rows[:limit],
            truncated=len(rows) > limit,
            seconds=time.monotonic() - started,
        )


def cell_text(value: Any) -> str:
    """A value as text for a table cell or a CSV field (NULL is the caller's to show)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A result as CSV with a header; NULL is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else cell_text(v) for v in row])
    return out.getvalue()
