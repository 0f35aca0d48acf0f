"""`tagarchive breaker [list]` and `tagarchive breaker reset [PLATFORM ...]`: the platforms the
crawler is leaving alone after a captcha, a block or a rate limit, and ending that early.

The state is `<out>/.tagarchive/breaker.json` (crawler/downloader/breakerstate.py; an S3 root
keeps it in the backend's local state directory). Exit codes: 0 done (also when nothing was
cooling; a damaged state file is reported in one line and read as every platform closed);
2 usage error (a platform neither known nor in the state); 3 the state cannot be read or
written (a `.tagarchive` that is a symbolic link, a read-only directory).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import EXIT_OK


def register(subparsers: Any) -> None:
    """Add `breaker` to the `tagarchive` command line."""
    p = subparsers.add_parser(
        "breaker",
        help="platforms left alone after a captcha, block or rate limit; reset them",
        description="list: each platform's breaker (cooling until when, half-open, closed). "
        "reset: close the breakers of the platforms named (all when none is), so the next "
        "crawl requests them again and a later trip starts from the shortest cool-off. "
        "See docs/access.md, 'Backing off a platform'.",
    )
    p.add_argument("action", nargs="?", choices=["list", "reset"], default="list")
    p.add_argument("platforms", nargs="*", metavar="PLATFORM",
                   help="reset: only these platforms (default: every one)")
    p.add_argument("--out", "--root", default=os.environ.get("TAGARCHIVE_OUT", "data"),
                   help="output root, a directory or s3://bucket/prefix "
                        "(default: ./data or $TAGARCHIVE_OUT)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML config whose [[source]] tables add platforms")
    p.set_defaults(func=cmd_breaker)


def _store(out: str) -> Any:
    from crawler.downloader.breakerstate import BreakerStore
    from storage.backends import backend_for
    from storage.errors import StorageError
    from storage.fs import BadRootError

    try:
        return BreakerStore(backend_for(out).state_root(out))
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except (StorageError, OSError) as exc:
        raise EnvironmentProblem(str(exc)) from None


def cmd_breaker(args: argparse.Namespace) -> int:
    from crawler.downloader.breakerstate import describe

    store = _store(args.out)
    entries, problem = store.load()
    if problem:
        print(f"tagarchive: warning: {problem}", file=sys.stderr)
    if args.action == "list":
        if args.platforms:
            raise UsageError("breaker list takes no platform; breaker reset does")
        now = datetime.now(UTC)
        for name in sorted(entries):
            print(describe(entries[name], now))
            print(f"  {entries[name].detail}"[:80])
        if not entries:
            print(f"no platform is backed off under {args.out}")
        return EXIT_OK
    from storage.errors import StorageError

    names = [_platform(name, entries, args.config) for name in args.platforms] or None
    if not entries and not problem:  # nothing to forget: nothing is written
        print("nothing to reset: no platform is backed off")
        return EXIT_OK
    try:
        forgotten = store.reset(names)
    except (OSError, StorageError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise EnvironmentProblem(f"cannot write {store.path}: {reason}") from None
    for name in forgotten:
        print(f"{name}: breaker reset; its next crawl requests it again")
    if not forgotten:
        print("nothing to reset: " + ("no such platform is backed off" if entries
                                      else "the damaged state was replaced"))
    return EXIT_OK


def _platform(name: str, entries: dict[str, Any], config: str | None) -> str:
    """The canonical platform name: one in the state as given, else a known platform."""
    if name in entries:
        return name
    from crawler.cli.main import load_config_sources
    from crawler.platforms import UnknownPlatformError, platform_class

    load_config_sources(config)
    try:
        return platform_class(name).name
    except UnknownPlatformError as exc:
        raise UsageError(str(exc)) from None
