"""`tagarchive check-live PLATFORM TAG`: does the real page still have the shape we read?

It crawls the one tag once, politely (robots.txt obeyed, one request at a time), into a
throw-away directory, then compares what was read with what the adapter promises, field by
field. Meant for users with internet, the day a number looks odd; never run in CI (the tests
point it at the replica with --base-url).
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from rich.console import Console
from rich.table import Table

from crawler.extensions.runrecord import EXIT_OK, EXIT_TAG_FAILED
from crawler.items import COUNTERS


def register(sub: Any) -> None:
    p = sub.add_parser("check-live", help="fetch one real tag page and check its shape")
    p.add_argument("platform")
    p.add_argument("tag")
    p.add_argument("--base-url", action="append", default=[], metavar="[PLATFORM=]URL",
                   help="check a mirror instead of the real site")
    p.add_argument("--config", metavar="FILE", help="TOML config with [[source]] platforms")
    p.add_argument("--session", action="append", default=[], metavar="PLATFORM=FILE")
    p.set_defaults(func=cmd_check_live)


def cmd_check_live(args: argparse.Namespace) -> int:
    from crawler.cli.main import cmd_crawl, load_config_sources, parser
    from crawler.platforms import platform_class

    load_config_sources(args.config)
    adapter = platform_class(args.platform)
    with tempfile.TemporaryDirectory(prefix="tagarchive-check-") as out:
        # through the crawl command's own parser, so every crawl option keeps its default
        argv = ["crawl", args.platform, args.tag, "--out", out, "--concurrency", "1",
                "--delay", "1", "--log-level", "ERROR", "--quiet", "--no-archive"]
        for entry in args.base_url:
            argv += ["--base-url", entry]
        for entry in args.session:
            argv += ["--session", entry]
        if args.config:
            argv += ["--config", args.config]
        crawl_args = parser().parse_args(argv)
        crawl_args.argv = ["check-live", args.platform, args.tag]
        code = cmd_crawl(crawl_args)
        rows = _snapshot(out)
    console = Console()
    if not rows:
        console.print(f"{adapter.name} {args.tag}: nothing stored (exit {code}); the line above "
                      "names why", markup=False)
        return EXIT_TAG_FAILED
    snap = rows[0]
    table = Table(title=f"{adapter.name} {args.tag}: shape check")
    for col in ("field", "adapter reads it from", "value", "verdict"):
        table.add_column(col)
    missing = 0
    for counter in COUNTERS:
        promised = adapter.counters.get(counter)
        value = snap.get(counter)
        if promised is None and value is None:
            continue
        semantics = snap.get(f"{counter}_semantics")
        shown = "-" if value is None else f"{value:,}" + (
            f" ({semantics})" if semantics not in (None, "exact") else "")
        verdict = "ok" if value is not None else "MISSING"
        if promised is None:
            verdict = "ok (not documented)"
        missing += value is None and promised is not None
        table.add_row(counter, promised or "-", shown, verdict)
    table.add_row("source", "", str(snap.get("source")), "")
    console.print(table)
    if missing:
        console.print(f"{missing} promised field(s) missing: the page's shape has changed")
        return EXIT_TAG_FAILED
    return EXIT_OK if code == EXIT_OK else code


def _snapshot(out: str) -> list[dict[str, Any]]:
    from storage import duckdb_connect

    con = duckdb_connect(out)
    rel = con.execute("select * from snapshots")
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]
