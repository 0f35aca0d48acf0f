"""`tagarchive reparse`: rebuild snapshots and posts from the raw archive with today's parsers."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

from crawler.rules.privacy import MODES as PRIVACY_MODES


def register(sub: Any) -> None:
    p = sub.add_parser("reparse", help="parse the archived responses again (no network)")
    p.add_argument("--root", default="data", help="output root (default ./data)")
    p.add_argument("--since", type=_day, help="first archive day, YYYY-MM-DD")
    p.add_argument("--until", type=_day, help="last archive day, YYYY-MM-DD")
    p.add_argument("--platform", action="append", default=[], help="only these (repeatable)")
    p.add_argument("--identity", metavar="FILE",
                   help="age identity file, to read encrypted WARC files (docs/privacy.md)")
    p.add_argument("--privacy", choices=PRIVACY_MODES,
                   default="pseudonymize",
                   help="the privacy mode the rebuilt rows are made under (docs/privacy.md); "
                        "a stricter mode than the archive's rows had replaces them")
    p.add_argument("--pseudonym-key", metavar="FILE",
                   help="the pseudonymisation key file (default as for crawl)")
    p.set_defaults(func=cmd_reparse)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (YYYY-MM-DD)") from None


def cmd_reparse(args: argparse.Namespace) -> int:

    from crawler.cli.errors import EnvironmentProblem, UsageError
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.services.reparse import reparse
    from storage import StorageError
    from storage.backends import backend_for
    from storage.fs import BadRootError, S3Error

    backend = backend_for(args.root)  # on S3 the WARC files are read there, the rows written
    try:
        backend.check(args.root)
        found = backend.is_dir(args.root, "archive")
        root = backend.url(args.root)
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except S3Error as exc:
        raise EnvironmentProblem(str(exc)) from None
    if not found:
        raise EnvironmentProblem(f"no archive under {root} (crawls write archive/ there)")
    args.root = root
    try:
        platforms = {platform_class(p).name for p in args.platform} or None
    except UnknownPlatformError as exc:
        raise UsageError(str(exc)) from None
    from crawler.cli.archive import identities_for
    from crawler.services.reparse import archive_files

    identities = identities_for(args.root, [str(f) for f in archive_files(
        args.root, args.since, args.until, platforms)], args.identity)
    try:
        report = reparse(args.root, since=args.since, until=args.until, platforms=platforms,
                         identities=identities, privacy=args.privacy,
                         pseudonym_key=args.pseudonym_key)
    except StorageError as exc:
        raise EnvironmentProblem(f"storage failed: {exc}") from None
    summary = (f"reparse {report.run_id}: {report.pages} archived pages -> {report.snapshots} "
               f"snapshots, {report.posts} posts, {report.activity} activity rows, "
               f"{report.rejects} rejects")
    if report.not_reparsed:
        summary += f"; {_pages(report.not_reparsed)} not reparsed ({_counts(report.not_reparsed)})"
    if report.no_tag_data:
        summary += (f"; {_pages(report.no_tag_data)} without tag data "
                    f"({_counts(report.no_tag_data)})")
    print(summary)
    for page in report.skipped:
        print(f"tagarchive: not reparsed: {page.line()}", file=sys.stderr)
    more = sum(report.not_reparsed.values()) - len(report.skipped)
    if more:
        print(f"tagarchive: and {more} more pages not reparsed (each is logged above)",
              file=sys.stderr)
    return report.exit_code


def _pages(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} page" if total == 1 else f"{total} pages"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
