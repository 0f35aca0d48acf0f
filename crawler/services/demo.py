"""`tagarchive demo`: the whole product against the offline replica, replaying 10–20 January 2025.

Starts the replica in this process with its clock at 10 January 2025, crawls a handful of tags on
every built-in platform once per replica-clock tick (12 hours; one crawl subprocess each, as the
scheduler does) with the crawl's clock set to the replica's, so its rows carry the replayed days
as `observed_at` and its runs are marked `trigger = demo` (simulated). Then it reads the stored
Parquet back with DuckDB, prints what was stored and the growth it saw, writes the report to
`<out>/report.html`, and says how to open it and how to watch it live with `serve`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crawler.clock import SIMULATED_NOW
from crawler.extensions.runrecord import EXIT_OK, EXIT_TAG_FAILED
from crawler.platforms import REGISTRY
from crawler.report.labels import format_time, semantics_sign

DEMO_TAGS = ("tiktokrefugee", "TikTok难民", "rednote")
# the replica's clock replays 10–20 January 2025: Xiaohongshu's "TikTok难民" passes 100M views
# around the 14th–15th (1.2亿 views and 281.2万 discussions on the 15th)
DEMO_START = datetime(2025, 1, 10, 0, 0, tzinfo=UTC)
DEMO_STEP = timedelta(hours=12)
DEMO_TICKS = 21  # 10 Jan 00:00 to 20 Jan 00:00


# Replica-only sign-in, so the demo also shows platforms that need the user's session. These are
# not secrets: the replica accepts any well-formed session.
DEMO_COOKIES = "#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\tdemo-replica-session\n"
DEMO_ENV = {"TAGARCHIVE_BLUESKY_HANDLE": "demo.bsky.social",
            "TAGARCHIVE_BLUESKY_APP_PASSWORD": "demo-repl-ica0-0001"}


def crawl_command(out: str, replica_url: str, platforms: str, tags: tuple[str, ...],
                  sessions: dict[str, str]) -> list[str]:
    command = [sys.executable, "-m", "crawler.cli", "crawl", platforms, *tags, "--out", out,
               "--replica", replica_url, "--delay", "0", "--concurrency", "4", "--quiet",
               "-s", "TAGARCHIVE_TRIGGER=demo"]
    for platform, path in sessions.items():
        command += ["--session", f"{platform}={path}"]
    return command


def _cookie_jar(out: str) -> Path:
    """Write the replica's session to `<out>/.tagarchive/demo-cookies.txt` and return its path.

    Refused in one line (exit 3) when `.tagarchive` or the file is a symlink; the file is
    replaced by a rename, never written through whatever is at its name."""
    from storage.errors import StorageError
    from storage.paths import state_path

    try:
        jar = state_path(out, "demo-cookies.txt")
        jar.parent.mkdir(parents=True, exist_ok=True)
        jar = state_path(out, "demo-cookies.txt")  # what mkdir found is checked again
        temp = jar.with_name(f".{jar.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # a leftover of this pid's earlier demo (or a link: never followed)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(DEMO_COOKIES)
        os.replace(temp, jar)
    except OSError as exc:
        raise StorageError(f"cannot write {out}/.tagarchive: {exc.strerror}") from None
    return jar


def run_demo(out: str = "data", ticks: int = DEMO_TICKS, seed: int = 2025,
             console: Console | None = None) -> int:
    from replica.clock import ReplicaClock
    from replica.server import ReplicaServer
    from replica.world import World

    # piped output (CI logs, `| tee`) would otherwise wrap the table at 80 columns
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    platforms = ",".join(sorted(REGISTRY))
    Path(out).mkdir(parents=True, exist_ok=True)
    jar = _cookie_jar(out)
    world = World(seed=seed, clock=ReplicaClock(start=DEMO_START, step=DEMO_STEP))
    failed = 0
    with ReplicaServer(world=world) as server:
        console.print(f"replica serving {platforms} at {server.url} (seed {seed})")
        sessions = {"instagram": str(jar)} if "instagram" in REGISTRY else {}
        for tick in range(ticks):
            now = world.clock.now()
            # the crawl observes on the replica's clock: its rows land on the replayed days
            env = {**os.environ, **DEMO_ENV, SIMULATED_NOW: now.isoformat()}
            t0 = time.monotonic()
            proc = subprocess.run(crawl_command(out, server.url, platforms, DEMO_TAGS, sessions),
                                  capture_output=True, text=True, env=env)
            took = time.monotonic() - t0
            status = "ok" if proc.returncode == EXIT_OK else f"exit {proc.returncode}"
            console.print(f"tick {tick + 1}/{ticks}  replica time {now:%Y-%m-%d %H:%M}Z  "
                          f"crawl {status} in {took:.1f}s")
            if proc.returncode != EXIT_OK:
                failed += 1
                console.print(proc.stderr.strip()[-2000:], style="red", markup=False)
            world.clock.tick()
    summarize(out, DEMO_START, console)
    report = write_story_report(out)
    console.print(f"report: {report}  (open it in a browser: {report.resolve().as_uri()})",
                  markup=False, soft_wrap=True)
    console.print(f"watch it live: tagarchive serve --root {out}   (then open the address it "
                  "prints)", markup=False, soft_wrap=True)
    return EXIT_OK if failed == 0 else EXIT_TAG_FAILED


def write_story_report(out: str) -> Path:
    """`<out>/report.html`: the demo's tags on every platform, over the replayed days."""
    from crawler.report import ReportRequest, build_report, write_report
    from storage.analysis import fold_tag, open_archive

    path = Path(out) / "report.html"
    with open_archive(out) as archive:
        report = build_report(archive, ReportRequest(tags=[fold_tag(t) for t in DEMO_TAGS]))
    write_report(report, path)
    return path


def _shown(value: int | None, semantics: str | None) -> str:
    """A demo table cell: the value with its semantics sign (≈ rounded, ≥ lower bound)."""
    if value is None:
        return "-"
    return semantics_sign(semantics) + ("⧗ " if semantics == "window" else "") + f"{value:,}"


def summarize(out: str, since: datetime, console: Console) -> None:
    """What this demo stored, read back from Parquet with DuckDB: a table, counts, the story."""
    from storage import duckdb_connect

    con = duckdb_connect(out)
    console.print(_table(con, out, since))
    console.print("≈ rounded by the platform · ≥ a lower bound · ⧗ a count over a window "
                  "(docs/data.md: what each number is)", markup=False)
    counts = con.execute(
        "select (select count(*) from posts where observed_at >= ?),"
        " (select count(*) from rejects where rejected_at >= ?),"
        " (select count(*) from runs where started_at >= ? and trigger = 'demo')",
        [since, since, since]).fetchone()
    console.print(f"posts stored: {counts[0]}   rejects: {counts[1]}   runs: {counts[2]}")
    crossings = con.execute(
        """
        with s as (
            select platform, tag, observed_at, views, views_text,
                   lag(views) over (partition by platform, tag order by observed_at) as before
            from snapshots where observed_at >= ?)
        select platform, tag, observed_at, before, views, views_text from s
        where before < 100000000 and views >= 100000000 order by observed_at
        """, [since]).fetchall()
    for platform, tag, at, before, views, text in crossings:
        shown = f"{views:,}" + (f" ({text})" if text else "")
        console.print(f"{platform} {tag} crossed 100M views by {format_time(at, seconds=False)}:"
                      f" {before:,} -> {shown}", markup=False)
    console.print("read it with DuckDB:")
    console.print(
        f"  duckdb -c \"select platform, tag, observed_at, views, posts, discussions from "
        f"read_parquet('{out}/snapshots/**/*.parquet', hive_partitioning=true) "
        f"order by observed_at\"", markup=False, highlight=False, soft_wrap=True)


def _table(con: Any, out: str, since: datetime) -> Table:
    """Per platform and tag: snapshots, the latest values (with what each is) and growth."""
    rows = con.execute(
        """
        select platform, tag, count(*) as n,
               -- growth of the headline counter the platform gives: views, else the next one
               arg_min(coalesce(views, discussions, posts, participants), observed_at) as first,
               arg_max(coalesce(views, discussions, posts, participants), observed_at) as last,
               arg_max(views, observed_at) as views,
               arg_max(views_text, observed_at) as views_text,
               arg_max(views_semantics, observed_at) as views_semantics,
               arg_max(discussions, observed_at) as discussions,
               arg_max(discussions_semantics, observed_at) as discussions_semantics,
               arg_max(posts, observed_at) as posts,
               arg_max(posts_semantics, observed_at) as posts_semantics,
               string_agg(distinct source, ',') as sources
        from snapshots where observed_at >= ?
        group by 1, 2 order by 1, 2
        """,
        [since],
    ).fetchall()
    table = Table(title=f"stored under {out}/ (this demo)")
    for col in ("platform", "tag", "snapshots", "views (latest)", "growth", "posts",
                "discussions", "source"):
        table.add_column(col, justify="right" if col not in ("platform", "tag", "source")
                         else "left")
    for (platform, tag, n, first, last, views, views_text, views_kind, disc, disc_kind, posts,
         posts_kind, sources) in rows:
        growth = f"{(last - first) / first:+.1%}" if first and last is not None else "-"
        shown = _shown(views, views_kind)
        if views_text and views is not None:
            shown += f" ({views_text})"
        table.add_row(platform, tag, str(n), shown, growth, _shown(posts, posts_kind),
                      _shown(disc, disc_kind), sources)
    return table
