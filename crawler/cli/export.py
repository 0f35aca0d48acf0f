"""`tagarchive export`: a Frictionless Data Package (Parquet, CSV, README, CITATION.cff) of chosen
tags, platforms and days, optionally dehydrated (ids and counters) or with the raw records as a
WACZ. Exit codes: 0 written; 1 no row matched; 2 usage error (a bad date, platform, format or
identity file; an encrypted archive without --identity; --out not empty); 3 environment error
(no archive at --root, storage failed, an --identity that does not open the archive, a symbolic
link in --out leading out of it). docs/export.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="a citable Data Package of chosen tags, platforms, days")
    p.add_argument("--root", default="data", help="output root of the crawls (default ./data)")
    p.add_argument("--out", required=True, type=Path, help="the export folder (new or empty)")
    p.add_argument("--tag", action="append", default=[], help="only this tag (repeatable; "
                                                               "id:<id> for a tag id)")
    p.add_argument("--platform", action="append", default=[], help="only this platform "
                                                                    "(repeatable)")
    p.add_argument("--since", type=_day, help="first day (UTC), YYYY-MM-DD")
    p.add_argument("--until", type=_day, help="last day (UTC), YYYY-MM-DD")
    p.add_argument("--dehydrate", action="store_true",
                   help="post ids and counters only: no text, no authors, no URLs")
    p.add_argument("--wacz", action="store_true",
                   help="add the raw records behind the rows as archive/records.wacz")
    p.add_argument("--format", default="parquet,csv",
                   help="data formats, comma-separated: parquet, csv (default both)")
    p.add_argument("--identity", metavar="FILE", help="age identity file, to read encrypted "
                                                      "WARC files for --wacz")
    p.add_argument("--created", type=_moment,
                   help="the package's creation time (default: the latest run in the data)")
    p.add_argument("--title", help="the dataset's title")
    p.add_argument("--author", action="append", default=[],
                   help="an author, 'Family, Given' or an organisation (repeatable)")
    p.set_defaults(func=cmd_export)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (YYYY-MM-DD)") from None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _request(args: argparse.Namespace, root: str) -> Any:
    from crawler.cli.errors import UsageError
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.services.export import FORMATS, ExportRequest

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UsageError(f"--format: {', '.join(unknown) or 'nothing'}: give parquet, csv "
                         "or both")
    if args.dehydrate and args.wacz:
        raise UsageError("--dehydrate and --wacz contradict each other: the raw records hold "
                         "the text and authors a dehydrated export leaves out")
    try:
        platforms = tuple(sorted({platform_class(p).name for p in args.platform}))
    except UnknownPlatformError as exc:
        raise UsageError(str(exc)) from None
    return ExportRequest(root=root, out=args.out, tags=tuple(args.tag), platforms=platforms,
                         since=args.since, until=args.until, dehydrate=args.dehydrate,
                         wacz=args.wacz, formats=formats, created=args.created,
                         title=args.title, authors=tuple(args.author))


def cmd_export(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from crawler.cli.archive import identities_for
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from crawler.services.export import ExportRefused, export
    from storage.analysis import resolve_root
    from storage.errors import ArchiveNotFoundError, StorageError, UnsafePathError
    from storage.fs import BadRootError

    try:
        root = resolve_root(args.root)
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except ArchiveNotFoundError as exc:
        raise EnvironmentProblem(str(exc)) from None
    request = _request(args, root)
    if args.wacz:
        from storage.archive import published_files

        paths = [str(p) for _d, p, _s in published_files(root)]
        request = replace(request, identities=identities_for(root, paths, args.identity))
    try:
        report = export(request)
    except ExportRefused as exc:
        if str(exc).startswith("no rows"):
            print(f"tagarchive: {exc}", file=sys.stderr)
            return 1
        raise UsageError(str(exc)) from None
    except UnsafePathError as exc:
        raise EnvironmentProblem(f"refused: {exc}") from None
    except (StorageError, OSError) as exc:
        raise EnvironmentProblem(f"export failed: {exc}") from None
    rows = ", ".join(f"{n} {name}" for name, n in report.rows.items())
    print(f"exported {rows} to {report.out} ({len(report.resources) + 1} files"
          + (f", {report.wacz_records} raw records in the WACZ" if args.wacz else "") + ")")
    for rel in report.missing_archive_files:
        print(f"tagarchive: not in the WACZ: {rel} is no longer in the archive (pruned)",
              file=sys.stderr)
    return 0
