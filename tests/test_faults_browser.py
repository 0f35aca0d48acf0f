"""Chromium killed in the middle of a rendered crawl (Xiaohongshu renders every page).

The browser processes the crawl started are SIGKILLed while a page is loading. Every tag must
then be stored with the replica's exact numbers (scrapy-playwright relaunches the browser and the
request is retried) or be reported by name; never a wrong number, never a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT, assert_whole_files, outcomes, run_record, snapshots

TAGS = ("browserkill1", "browserkill2", "browserkill3")


def browser_processes(crawl: psutil.Process) -> list[psutil.Process]:
    """The Chromium processes under the crawl (not Playwright's node driver)."""
    found = []
    for child in crawl.children(recursive=True):
        try:
            if "chrom" in child.name().lower():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_chromium_killed_mid_crawl_is_relaunched_or_named(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    # the topic search answers slowly, so the kill lands while the page waits for it
    replica.faults.add("slow", "/xiaohongshu/web_api/sns/v1/search/topic", times=0, seconds=1.5)
    args = [sys.executable, "-m", "crawler.cli", "crawl", "xiaohongshu", *TAGS,
            "--out", str(tmp_path), "--replica", replica.url, "--delay", "0",
            "--concurrency", "1", "-s", "TAGARCHIVE_BACKOFF_BASE=0.1"]
    with open(tmp_path.parent / "browser-crawl.log", "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    killed: list[int] = []
    try:
        crawl = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            if replica.faults.fired["slow"] >= 1:  # a page is waiting on its API call
                victims = browser_processes(crawl)
                for victim in victims:
                    try:
                        victim.send_signal(signal.SIGKILL)
                        killed.append(victim.pid)
                    except psutil.NoSuchProcess:
                        continue
            time.sleep(0.05)
        assert killed, "no Chromium process was found to kill"
        code = proc.wait(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log_text = (tmp_path.parent / "browser-crawl.log").read_text()

    assert code in (0, 1), log_text[-3000:]
    got = outcomes(tmp_path)
    assert set(got) == {("xiaohongshu", t) for t in TAGS}
    for (_platform, tag), status in got.items():
        assert status in ("stored", "error"), (tag, status)
        if status == "error":
            assert f"tagarchive: xiaohongshu {tag}: error: " in log_text
    rows = snapshots(tmp_path)
    assert {r["tag"] for r in rows} == {t for (_p, t), s in got.items() if s == "stored"}
    for row in rows:
        truth = replica.world.topic("xiaohongshu", row["tag"])
        assert row["views"] == truth.views
        assert row["discussions"] == truth.discussions
    assert run_record(tmp_path)["exit_code"] == code
    assert_whole_files(tmp_path)
    print(f"chromium kill: {len(killed)} processes killed; outcomes {sorted(got.values())}")
