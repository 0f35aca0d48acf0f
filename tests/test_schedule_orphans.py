"""A crawl orphaned by a killed scheduler keeps its watch busy (issue 17, item 7).

The crawl runs in its own session, so SIGKILL of `tagarchive schedule run` leaves it running.
The watch's lock is inherited by the crawl, so a restarted service finds the watch busy and
records its fires as skipped until the orphan ends, then fires it again. Real crawls against
the replica; the orphan is held mid-crawl by a `slow` fault that `faults.clear()` releases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from crawler.services.watchconfig import Config, load_config
from replica.server import ReplicaServer
from storage import open_dataset
from tests.crawl_helpers import ROOT
from tests.wait_helpers import wait_until


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for a parent that is gone, holds no descriptor any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def crawls(config: Config) -> dict[int, str]:
    """The crawl processes running for this config: pid -> run id."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "crawler.cli" not in args or str(config.path) not in args:
            continue
        if args[args.index("crawler.cli") + 1 :][:1] != ["crawl"] or not alive(int(entry.name)):
            continue
        run_id = next((a.split("=", 1)[1] for a in args if a.startswith("TAGARCHIVE_RUN_ID=")),
                      "?")
        found[int(entry.name)] = run_id
    return found


def runs(config: Config) -> list[dict[str, Any]]:
    try:
        rows = open_dataset(config.out, "runs").to_table().to_pylist()
    except Exception:  # noqa: BLE001 - nothing published yet
        return []
    return sorted(rows, key=lambda r: r["started_at"])


def start_service(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "schedule", "run", "--config", str(path)],
            cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=stream, stderr=stream)


def test_a_restarted_scheduler_does_not_fire_a_watch_its_orphaned_crawl_still_runs(
        replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "orphantag", "ssr")  # served without the browser
    # the crawl's one page is held back until the test releases it (faults.clear())
    replica.faults.add("slow", "/tiktok/tag/orphantag", times=0, seconds=600)
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
replica = "{replica.url}"
[politeness]
delay = 0
browser = false
settings = {{ DOWNLOAD_TIMEOUT = 590 }}
[watches.w]
platforms = ["tiktok"]
tags = ["orphantag"]
every = "1s"
timeout = "10m"
''')
    config = load_config(path)
    log = tmp_path / "service.log"
    first = start_service(path, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: crawls(config) and replica.faults.fired["slow"] >= 1, 120,
                 "the first service's crawl reaches the held page")
        [(orphan, orphan_run)] = crawls(config).items()
        first.kill()  # SIGKILL: no chance to end its crawl
        first.wait(30)
        assert alive(orphan), "the crawl is meant to outlive its scheduler"

        second = start_service(path, log)
        pid = second.pid

        def busy_skips() -> list[dict[str, Any]]:  # fires that met the orphan's lock
            return [r for r in runs(config) if r["pid"] == pid and r["verdict"] == "skipped"
                    and "another run of this watch is still going" in r["reason"]]

        def seen() -> bool:
            assert second is not None, log.read_text()[-3000:]
            assert second.poll() is None, log.read_text()[-3000:]
            return len(busy_skips()) >= 2 or set(crawls(config)) - {orphan} != set()

        wait_until(seen, 120, "the restarted service fires the watch (skipped or crawled)")
        running = crawls(config)
        assert running == {orphan: orphan_run}, (
            f"the restarted service crawled the watch while its orphan {orphan} ran: {running}")
        skips = busy_skips()
        assert len(skips) >= 2
        for row in skips:
            assert row["watch"] == "w"
            assert row["command"] == "schedule"
            assert f"still going (pid {orphan})" in row["reason"], row["reason"]
        # any other skip is a fire due while this scheduler still handled the one before
        overlaps = [r for r in runs(config) if r["pid"] == pid and r["verdict"] == "skipped"
                    and r not in skips]
        assert all("previous fire of this watch was still being handled" in r["reason"]
                   for r in overlaps), overlaps
        assert alive(orphan)

        replica.faults.clear()  # the held page is answered: the orphan finishes on its own
        wait_until(lambda: not alive(orphan), 120, "the orphaned crawl ends")
        after = wait_until(lambda: [r for r in runs(config) if r["watch"] == "w"
                                  and r["verdict"] != "skipped" and r["run_id"] != orphan_run],
                         120, "the restarted service fires the watch once the orphan is gone")
        assert second.poll() is None, log.read_text()[-3000:]
        assert after[0]["verdict"] == "ok", after[0]
        assert after[0]["trigger"] in ("schedule", "catch-up")
        # the orphan finished undisturbed and wrote its own record; the next crawl began after
        [orphan_row] = [r for r in runs(config) if r["run_id"] == orphan_run]
        assert (orphan_row["verdict"], orphan_row["exit_code"]) == ("ok", 0), orphan_row
        assert after[0]["started_at"] >= orphan_row["finished_at"]
        # and no two crawls of the watch ever overlapped
        spans = sorted((r["started_at"], r["finished_at"]) for r in runs(config)
                       if r["verdict"] != "skipped")
        for (_start, end), (start, _end) in zip(spans, spans[1:], strict=False):
            assert start >= end, spans
    finally:
        replica.faults.clear()
        for service in (first, second):
            if service is not None and service.poll() is None:
                service.send_signal(signal.SIGTERM)  # the ordinary stop: ends its crawls
                try:
                    service.wait(90)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait(30)
        for crawl_pid in crawls(config):  # each crawl leads its own process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(crawl_pid, signal.SIGKILL)
        wait_until(lambda: not crawls(config), 30, "every crawl of the test is gone")
