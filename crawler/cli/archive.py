"""`tagarchive archive prune`: retention for the raw WARC archive, applied only when asked."""

from __future__ import annotations

import argparse
import re
from typing import Any

from crawler.extensions.runrecord import EXIT_OK

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.I)
_AGE = re.compile(r"^\s*(\d+)\s*d?\s*$", re.I)


def parse_size(text: str) -> int:
    """'500M', '10G', '1.5T', '2048' (bytes) -> bytes (binary units)."""
    from crawler.cli.errors import UsageError

    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"--max-size: not a size: {text!r} (e.g. 500M, 10G)")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def parse_age(text: str) -> int:
    from crawler.cli.errors import UsageError

    match = _AGE.match(text)
    if match is None:
        raise UsageError(f"--max-age: not a number of days: {text!r} (e.g. 90d)")
    return int(match.group(1))


def register(sub: Any) -> None:
    archive = sub.add_parser("archive", help="the raw WARC archive")
    actions = archive.add_subparsers(dest="archive_command", required=True)
    prune = actions.add_parser("prune", help="delete the oldest WARC files beyond an age/size")
    prune.add_argument("--root", "--out", default="data",
                       help="output root, a directory or s3://bucket/prefix (default ./data)")
    prune.add_argument("--max-age", help="keep this many days, e.g. 90d")
    prune.add_argument("--max-size", help="keep at most this much, e.g. 20G")
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    prune.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.archive import prune
    from storage.backends import backend_for
    from storage.errors import StorageError
    from storage.fs import BadRootError, S3Error

    if args.max_age is None and args.max_size is None:
        raise UsageError("archive prune needs --max-age, --max-size or both")
    try:
        backend_for(args.root).check(args.root)  # S3: the bucket answers; local: nothing
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except S3Error as exc:
        raise EnvironmentProblem(str(exc)) from None
    try:
        report = prune(args.root, max_age_days=parse_age(args.max_age) if args.max_age else None,
                       max_bytes=parse_size(args.max_size) if args.max_size else None,
                       dry_run=args.dry_run)
    except (StorageError, OSError) as exc:
        # S3: files deleted before it stay deleted; a re-run finishes the rest. A symlinked
        # archive/ folder leading out of the root: refused before anything is deleted.
        raise EnvironmentProblem(str(exc)) from None
    verb = "would remove" if report.dry_run else "removed"
    print(f"{verb} {len(report.removed)} WARC files ({report.removed_bytes:,} bytes); "
          f"kept {report.kept_files} ({report.kept_bytes:,} bytes)")
    for path in report.removed:
        print(f"  {path}")
    if report.stale_temps:
        print(f"{verb} {len(report.stale_temps)} unfinished .warc.gz.tmp file(s) of killed crawls")
        for path in report.stale_temps:
            print(f"  {path}")
    return EXIT_OK
