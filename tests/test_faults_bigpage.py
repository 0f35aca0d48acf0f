"""Very large pages: memory stays bounded, and the outcome is named.

The replica pads a TikTok tag page with filler (replica/faults.py `huge`), leaving the counters
intact. A page over DOWNLOAD_MAXSIZE (32 MiB, crawler/settings.py) is refused before its body
is read; one under it is read and stored exactly. Peak RSS of the crawl process is sampled
every 20 ms and compared with the same crawl of a normal page.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT, outcomes, snapshots
from tests.wait_helpers import reap

MIB = 1024 * 1024


def crawl_peak_rss(replica: ReplicaServer, out: Path, tag: str) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of a one-tag TikTok crawl."""
    args = [sys.executable, "-m", "crawler.cli", "crawl", "tiktok", tag, "--out", str(out),
            "--replica", replica.url, "--delay", "0"]
    with open(out.parent / f"{tag}.log", "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        code = proc.wait(timeout=120)
    finally:
        reap(proc)
    return code, (out.parent / f"{tag}.log").read_text(), peak


def test_pages_above_the_cap_are_refused_and_below_it_stored_in_bounded_memory(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    for tag in ("normalpage", "page50mb", "page20mb"):
        replica.world.set_variant("tiktok", tag, "ssr")
    replica.faults.add("huge", "/tiktok/tag/page50mb", times=0, size=50 * MIB)
    replica.faults.add("huge", "/tiktok/tag/page20mb", times=0, size=20 * MIB)

    code, err, baseline = crawl_peak_rss(replica, tmp_path / "normal", "normalpage")
    assert code == 0, err[-2000:]
    code, err, refused = crawl_peak_rss(replica, tmp_path / "big", "page50mb")
    assert code == 1, err[-2000:]
    assert outcomes(tmp_path / "big")[("tiktok", "page50mb")] == "error"
    assert "tagarchive: tiktok page50mb: error: DownloadCancelledError: " in err
    assert "larger than download max size (33554432)" in err
    assert not list((tmp_path / "big").glob("snapshots/**/*.parquet"))
    code, err, stored = crawl_peak_rss(replica, tmp_path / "under", "page20mb")
    assert code == 0, err[-2000:]
    [row] = snapshots(tmp_path / "under")
    truth = replica.world.topic("tiktok", "page20mb")
    assert (row["views"], row["posts"]) == (truth.views, truth.posts)

    print(f"peak RSS: normal page {baseline / MIB:.0f} MiB, 50 MiB page (refused) "
          f"{refused / MIB:.0f} MiB, 20 MiB page (stored) {stored / MIB:.0f} MiB")
    assert refused - baseline < 48 * MIB  # the refused body is never held
    assert stored - baseline < 8 * 20 * MIB  # about 7x the page while it is parsed and archived
