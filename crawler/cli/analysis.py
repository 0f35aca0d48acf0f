"""`tagarchive query` (SQL over the archive's DuckDB views) and `tagarchive report` (HTML charts).

Exit codes, as for every command: 0 done; 2 usage error (bad SQL, unknown tag or platform, bad
date); 3 environment error (no archive at --root, output not writable, an unreadable file,
matplotlib missing for --png). Errors are one line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import EXIT_OK

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from storage.analysis import Archive

FORMATS = ("table", "csv", "json", "parquet")
# A terminal table is for reading: past this many rows, say so and point at csv/parquet.
TABLE_MAX_ROWS = 1000
_RESULT_VIEW = "tagarchive_query_result"
# What DuckDB says when a Parquet file's bytes are damaged (not a mistake in the SQL).
_DAMAGED_FILE = ("TProtocolException", "deserialize thrift", "magic bytes", "Parquet file")


def _default_root() -> str:
    return os.environ.get("TAGARCHIVE_OUT", "data")


def register(subparsers: Any) -> None:
    """Add `query` and `report` to the `tagarchive` command line."""
    query = subparsers.add_parser(
        "query",
        help="SQL over the archive (views snapshots, posts, activity, rejects, runs)",
        description="Run DuckDB SQL over the archive. Without SQL: read statements from the "
        "terminal (or from standard input), each ended by ';'.",
    )
    query.add_argument("sql", nargs="?", help="the SQL; several statements: the last is shown")
    query.add_argument("--root", default=_default_root(),
                       help="archive root (default: ./data or $TAGARCHIVE_OUT)")
    query.add_argument("--format", choices=FORMATS, default="table",
                       help="output format (default: table)")
    query.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    query.set_defaults(func=cmd_query)

    report = subparsers.add_parser(
        "report",
        help="one self-contained HTML page of charts and tables per tag",
        description="Write a self-contained HTML report (no network needed to open it) of how "
        "the tags grew on each platform. Times are UTC.",
    )
    report.add_argument("tags", nargs="+", help="tag names as crawled (with or without #)")
    report.add_argument("--root", default=_default_root(),
                        help="archive root (default: ./data or $TAGARCHIVE_OUT)")
    report.add_argument("--platforms", help="comma-separated platforms (default: all with data)")
    report.add_argument("--since", help="from this UTC day or time (YYYY-MM-DD[THH:MM])")
    report.add_argument("--until", help="up to this UTC day (inclusive) or time (exclusive)")
    report.add_argument("--out", default="report.html", help="the HTML file (default: report.html)")
    report.add_argument("--png", metavar="DIR", help="also write every chart as PNG into DIR")
    report.set_defaults(func=cmd_report)


# --- shared --------------------------------------------------------------------------------

def open_root(root: str) -> Archive:
    """The archive at ``root``, or a one-line environment error."""
    from storage.analysis import ArchiveNotFoundError, UnsupportedRootError, open_archive
    from storage.errors import StorageError
    from storage.fs import BadRootError

    try:
        return open_archive(root)
    except (UnsupportedRootError, BadRootError) as exc:
        raise UsageError(str(exc)) from None
    except (ArchiveNotFoundError, StorageError, OSError) as exc:
        raise EnvironmentProblem(str(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_moment(text: str | None, *, end: bool = False) -> datetime | None:
    """A --since/--until value as an aware UTC datetime; a bare day as --until covers that day."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"not a date or time: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- query ---------------------------------------------------------------------------------

def run_sql(archive: Archive, sql: str) -> pa.Table | None:
    """Every statement of ``sql``, in order; the last one's rows (None when it has none)."""
    import duckdb

    try:
        relation = archive.con.sql(sql)
        if relation is None:
            return None
        table: pa.Table = relation.to_arrow_table()  # duckdb types it Any
        return table
    except duckdb.IOException as exc:
        # reading a file failed (permissions, a corrupt file): the machine's problem, not the SQL
        raise EnvironmentProblem(_first_line(exc)) from None
    except duckdb.Error as exc:
        if any(mark in str(exc) for mark in _DAMAGED_FILE):
            # bytes inside a file whose footer looked whole (docs/compaction.md)
            raise EnvironmentProblem(f"{_first_line(exc)} (a damaged file: `tagarchive compact` "
                                     "moves it to .tagarchive/quarantine/)") from None
        raise UsageError(_first_line(exc)) from None


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def write_table(table: pa.Table, stream: IO[str], *, color: bool) -> None:
    """A result as a readable table (numbers with thousands separators, NULL shown)."""
    from rich.console import Console
    from rich.table import Table

    shown = table.slice(0, TABLE_MAX_ROWS)
    view = Table(show_edge=True, header_style="bold", row_styles=None)
    for field in table.schema:
        numeric = field.type.id in {t.id for t in _numeric_types()}
        view.add_column(field.name, justify="right" if numeric else "left", overflow="fold")
    for row in shown.to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    # Piped output is not wrapped at 80 columns: the width is whatever the table needs.
    width = None if color else 100_000
    console = Console(file=stream, width=width, no_color=not color, force_terminal=color,
                      highlight=False, soft_wrap=not color)
    console.print(view)
    rows = table.num_rows
    more = f", {rows - TABLE_MAX_ROWS:,} not shown: use --format csv or parquet" \
        if rows > TABLE_MAX_ROWS else ""
    console.print(f"{rows:,} row{'s' if rows != 1 else ''}{more}", style="dim" if color else None)


def _numeric_types() -> list[pa.DataType]:
    import pyarrow as pa

    return [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
            pa.uint64(), pa.float32(), pa.float64()]


def _copy_options(fmt: str) -> str:
    return {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json, ARRAY true",
            "parquet": "FORMAT parquet"}[fmt]


def export(con: duckdb.DuckDBPyConnection, table: pa.Table, fmt: str, path: Path) -> None:
    """Write a result as csv, json (an array of objects) or parquet with DuckDB's own writers."""
    con.register(_RESULT_VIEW, table)
    try:
        target = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"COPY {_RESULT_VIEW} TO {target} ({_copy_options(fmt)})")
    finally:
        con.unregister(_RESULT_VIEW)


def emit(archive: Archive, table: pa.Table, fmt: str, output: str | None) -> None:
    """Send one result where the user asked, in the format asked."""
    if output is not None:
        _emit_to_file(archive, table, fmt, Path(output))
        return
    if fmt == "table":
        write_table(table, sys.stdout, color=sys.stdout.isatty())
        return
    if fmt == "parquet" and sys.stdout.isatty():
        raise UsageError("parquet is binary: give --output FILE or redirect stdout")
    with tempfile.TemporaryDirectory(prefix="tagarchive-query-") as scratch:
        path = Path(scratch, f"result.{fmt}")
        export(archive.con, table, fmt, path)
        sys.stdout.flush()
        with path.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _emit_to_file(archive: Archive, table: pa.Table, fmt: str, path: Path) -> None:
    import duckdb

    # Written next to the target and renamed into place: a reader never sees half a file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "table":
            with temp.open("w", encoding="utf-8") as stream:
                write_table(table, stream, color=False)
        else:
            export(archive.con, table, fmt, temp)
        os.replace(temp, path)
    except (OSError, duckdb.IOException) as exc:
        temp.unlink(missing_ok=True)
        raise EnvironmentProblem(f"cannot write {path}: {_first_line(exc)}") from None


def cmd_query(args: argparse.Namespace) -> int:
    archive = open_root(args.root)
    try:
        if args.sql is not None:
            if not args.sql.strip():
                raise UsageError("empty SQL")
            table = run_sql(archive, args.sql)
            if table is not None:
                emit(archive, table, args.format, args.output)
            return EXIT_OK
        if args.output is not None:
            raise UsageError("--output needs the SQL on the command line")
        interactive = sys.stdin.isatty()
        lines = iter(sys.stdin)
        read_line = _read_terminal if interactive else (lambda _prompt: next(lines, None))
        return repl(archive, read_line, lambda table: emit(archive, table, args.format, None),
                    interactive=interactive)
    finally:
        archive.close()


HELP = """\
Statements end with ';' and may span lines. The views: snapshots, posts, activity, rejects, runs.
  .tables      list the views and their row counts
  .schema V    the columns of view V
  .quit        leave (or Ctrl-D)"""


def _read_terminal(prompt: str) -> str | None:
    # line editing and history for input(); not on every platform, and input() works without
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401
    try:
        return input(prompt) + "\n"
    except EOFError:
        print()
        return None


def repl(archive: Archive, read_line: Callable[[str], str | None],
         show: Callable[[pa.Table], None], *, interactive: bool) -> int:
    """Run statements as ';' completes them. In a terminal an error is shown and the session
    goes on; from a pipe the first error stops it, with its exit code."""
    if interactive:
        print(f"tagarchive query on {archive.root} (.help for help)")
    pending: list[str] = []
    while True:
        try:
            line = read_line("       ...> " if pending else "tagarchive> ")
        except KeyboardInterrupt:  # Ctrl-C drops the statement being typed, as psql does
            if not interactive:
                raise
            print()
            pending.clear()
            continue
        if line is None:
            break
        stripped = line.strip()
        if not pending and stripped.startswith("."):
            if _dot_command(archive, stripped, show) == "quit":
                return EXIT_OK
            continue
        pending.append(line)
        if stripped.endswith(";"):
            sql, pending = "".join(pending), []
            _run_in_session(archive, sql, show, interactive)
    rest = "".join(pending).strip()
    if rest:
        _run_in_session(archive, rest, show, interactive)
    return EXIT_OK


def _run_in_session(archive: Archive, sql: str, show: Callable[[pa.Table], None],
                    interactive: bool) -> None:
    try:
        table = run_sql(archive, sql)
    except UsageError as exc:
        if not interactive:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return
    if table is not None:
        show(table)


def _dot_command(archive: Archive, command: str, show: Callable[[pa.Table], None]) -> str | None:
    from storage.schemas import DATASETS

    name, _, arg = command.partition(" ")
    if name in (".quit", ".exit", ".q"):
        return "quit"
    sql = None
    if name == ".help":
        print(HELP)
    elif name == ".tables":
        sql = " union all ".join(
            f"select '{view}' as view, count(*) as rows from {view}" for view in DATASETS)
    elif name == ".schema" and arg.strip() in DATASETS:
        sql = f"describe {arg.strip()}"
    else:
        print(f"unknown command {command!r}; .help lists them", file=sys.stderr)
    table = run_sql(archive, sql) if sql is not None else None
    if table is not None:  # always, for a select and a describe
        show(table)
    return None


# --- report --------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from crawler.report import (
        MissingPlotting,
        NothingToReport,
        ReportRequest,
        ReportWriteError,
        build_report,
        write_pngs,
        write_report,
    )
    from crawler.text.tags import InvalidTagError, normalize_tag

    try:
        tags = list(dict.fromkeys(normalize_tag(t) for t in args.tags))
    except InvalidTagError as exc:
        raise UsageError(str(exc)) from None
    platforms = None
    if args.platforms:
        platforms = [p.strip().lower() for p in args.platforms.split(",") if p.strip()]
        if not platforms:
            raise UsageError("--platforms is empty")
    since = parse_moment(args.since)
    until = parse_moment(args.until, end=True)
    if since and until and since >= until:
        raise UsageError("--since must come before --until")
    archive = open_root(args.root)
    import duckdb

    try:
        request = ReportRequest(tags=tags, platforms=platforms, since=since, until=until)
        report = build_report(archive, request)
    except NothingToReport as exc:
        raise UsageError(str(exc)) from None
    except duckdb.Error as exc:  # our own SQL: a file that could not be read (a damaged page)
        raise EnvironmentProblem(f"cannot read the archive: {_first_line(exc)}") from None
    finally:
        archive.close()
    try:
        write_report(report, Path(args.out))
        written = write_pngs(report, Path(args.png)) if args.png else []
    except (ReportWriteError, MissingPlotting) as exc:
        raise EnvironmentProblem(str(exc)) from None
    print(f"report written to {args.out}"
          + (f"; {len(written)} PNG charts in {args.png}" if args.png else ""))
    return EXIT_OK
