"""`tagarchive compact`: merge each partition's small files into one sorted, deduplicated file.

Exit codes: 0 done (also when nothing needed compacting, and when unreadable files were moved to
the quarantine); 2 usage error (bad date, unknown dataset); 3 environment error (no archive at
--root, another compaction running, `.tagarchive` or a dataset folder that is a symbolic link
leading elsewhere, a partition that could not be compacted: each named on its own line, and left
exactly as it was).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.cli.main import parse_day
from crawler.extensions.runrecord import EXIT_ENVIRONMENT, EXIT_OK

if TYPE_CHECKING:
    from storage.compact import CompactionReport

_COLUMNS = (
    ("dataset", "dataset"),
    ("partitions", "partitions"),
    ("compacted", "compacted"),
    ("files before", "files_before"),
    ("files after", "files_after"),
    ("bytes before", "bytes_before"),
    ("bytes after", "bytes_after"),
    ("rows kept", "rows_kept"),
    ("rows dropped", "rows_dropped"),
)


def register(subparsers: Any) -> None:
    """Add `compact` to the `tagarchive` command line."""
    p = subparsers.add_parser(
        "compact",
        help="merge each partition's small files into one (run daily)",
        description="Rewrite each partition's files as one file sorted by tag and time, without "
        "duplicates, swapped in atomically while crawls keep writing. Partitions dated today "
        "(UTC) are left for tomorrow unless --include-today. See docs/compaction.md.",
    )
    p.add_argument("--root", "--out", default=os.environ.get("TAGARCHIVE_OUT", "data"),
                   help="archive root, a directory or s3://bucket/prefix "
                        "(default: ./data or $TAGARCHIVE_OUT)")
    p.add_argument("--dataset", action="append", default=[], metavar="NAME",
                   help="only this dataset (repeatable or comma-separated; default: all)")
    p.add_argument("--before", type=parse_day, metavar="DATE",
                   help="only partitions dated before this UTC day (YYYY-MM-DD)")
    p.add_argument("--include-today", action="store_true",
                   help="also today's partitions (crawls still add files to them)")
    p.set_defaults(func=cmd_compact)


def cmd_compact(args: argparse.Namespace) -> int:
    from storage.compact import ArchiveMissingError, compact
    from storage.errors import SchemaError, StorageError, UnsafePathError
    from storage.fs import BadRootError
    from storage.locks import LockBusyError

    datasets = [name for entry in args.dataset for name in entry.split(",") if name] or None
    try:
        report = compact(args.root, datasets, before=args.before,
                         include_today=args.include_today)
    except (SchemaError, BadRootError) as exc:
        raise UsageError(str(exc)) from None
    except (ArchiveMissingError, LockBusyError, UnsafePathError) as exc:
        raise EnvironmentProblem(str(exc)) from None
    except (StorageError, OSError) as exc:
        raise EnvironmentProblem(f"compaction failed: {exc}") from None
    print_report(report, args.root)
    for moved in report.quarantined:
        print(f"tagarchive: warning: moved unreadable {moved.source} to {moved.target}: "
              f"{moved.reason}", file=sys.stderr)
    for line in report.errors:
        print(f"tagarchive: error: {line}", file=sys.stderr)
    return EXIT_ENVIRONMENT if report.errors else EXIT_OK


def print_report(report: CompactionReport, root: str, out: IO[str] | None = None) -> None:
    """One line per dataset: partitions, files, bytes and rows before and after."""
    out = out or sys.stdout
    lines = [[title for title, _ in _COLUMNS]]
    for result in report.datasets.values():
        values = [getattr(result, attribute) for _, attribute in _COLUMNS]
        lines.append([v if isinstance(v, str) else f"{v:,}" for v in values])
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
    for line in lines:
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells), file=out)
    notes = []
    later = sum(r.out_of_range for r in report.datasets.values())
    if later:
        notes.append(f"{later} partition(s) left for later (today's, or not before --before)")
    carried = sum(r.carried_over for r in report.datasets.values())
    if carried:
        notes.append(f"{carried} file(s) published during compaction kept as they are")
    if report.recovered_jobs:
        notes.append(f"cleaned up {report.recovered_jobs} leftover(s) of an interrupted compaction")
    if report.quarantined:
        notes.append(f"moved {len(report.quarantined)} unreadable file(s) out of every read, to "
                     ".tagarchive/quarantine/ (each named on stderr; docs/compaction.md)")
    if report.stale_temps:
        notes.append(f"removed {len(report.stale_temps)} unfinished .warc.gz.tmp file(s) of "
                     "killed crawls")
    if not report.exchange:
        notes.append("this filesystem cannot exchange directories atomically: each swap was two "
                     "renames, with a moment where readers saw no files for the partition")
    for note in notes:
        print(note, file=out)
    print(f"archive: {root}", file=out)
