"""Which browser the signing pages live in (docs/access.md "Which browser signs").

With a headless shell installed (`make setup` and `.ci/run` install Debian's
chromium-headless-shell), a signed crawl keeps its signing pages in it and never starts the
full Chromium; with TAGARCHIVE_HEADLESS_SHELL=off they live in the full Chromium as before.
Either way every number stored is the replica's ground truth. The processes are read from the
crawl's own process tree while it runs, so a crawl that never signed cannot pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from crawler.downloader.chromium import find_chromium, find_headless_shell
from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT, outcomes, snapshots
from tests.wait_helpers import reap

PLATFORM = "xiaohongshu"


def _binary(path: str) -> str:
    """The file name of the binary a launcher path ends in (Debian's /usr/bin entries are
    scripts that exec /usr/lib/chromium/<name>)."""
    name = Path(path).resolve().name
    return {"chromium-browser": "chromium"}.get(name, name)


def _crawl_seeing_browsers(replica: ReplicaServer, out: Path, tags: list[str],
                           env: dict[str, str]) -> set[str]:
    """Run a signed crawl; the binaries of every process under it, polled until it ends."""
    argv = [sys.executable, "-m", "crawler.cli", "crawl", PLATFORM, *tags, "--out", str(out),
            "--replica", replica.url, "--delay", "0", "--concurrency", "4"]
    proc = subprocess.Popen(argv, cwd=str(ROOT), env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: set[str] = set()
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                children = root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for child in children:
                try:
                    seen.add(Path(child.exe()).name)
                except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
                    continue
        _, stderr = proc.communicate(timeout=300)
    finally:
        reap(proc, group=True)
    assert proc.returncode == 0, stderr[-3000:]
    return seen


def _assert_truth(replica: ReplicaServer, out: Path, tags: list[str]) -> None:
    assert set(outcomes(out).values()) == {"stored"}, outcomes(out)
    rows = snapshots(out)
    assert sorted(r["tag"] for r in rows) == sorted(tags)
    for row in rows:
        truth = replica.world.topic(PLATFORM, row["tag"])
        assert (row["views"], row["discussions"]) == (truth.views, truth.discussions)
    assert {r["fetched_by"] for r in rows} == {"signed_http"}


def test_signing_pages_live_in_the_headless_shell(replica: ReplicaServer,
                                                  tmp_path: Path) -> None:
    shell, full = find_headless_shell(), find_chromium()
    assert shell, "make setup installs chromium-headless-shell"
    assert full, "make setup installs chromium"
    tags = [f"shellsign{i:03d}" for i in range(60)]
    seen = _crawl_seeing_browsers(replica, tmp_path, tags, {})
    assert _binary(shell) in seen, seen
    assert _binary(full) not in seen, seen  # nothing rendered: the full Chromium never ran
    _assert_truth(replica, tmp_path, tags)


def test_without_a_shell_signing_pages_live_in_the_full_chromium(
        replica: ReplicaServer, tmp_path: Path) -> None:
    shell, full = find_headless_shell(), find_chromium()
    assert shell
    assert full
    tags = [f"fullsign{i:03d}" for i in range(30)]
    seen = _crawl_seeing_browsers(replica, tmp_path, tags, {"TAGARCHIVE_HEADLESS_SHELL": "off"})
    assert _binary(full) in seen, seen
    assert _binary(shell) not in seen, seen
    _assert_truth(replica, tmp_path, tags)
