"""A Chromium of the test's own, headless, with its DevTools port on loopback: the stand-in for
the user's everyday browser that `--browser-cdp` and `signin --browser-cdp` attach to."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from crawler.downloader.chromium import find_chromium
from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT
from tests.wait_helpers import StreamLines, reap, wait_until


@contextlib.contextmanager
def users_chromium(directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start Chromium with `--remote-debugging-port=0`; yield it and its DevTools URL, read
    from the DevToolsActivePort file it writes into its profile once it listens."""
    executable = find_chromium()
    assert executable, "these tests need Chromium"
    profile = directory / "users-profile"
    args = [executable, "--headless=new", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--no-first-run", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "about:blank"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start sandboxed as root
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        first = wait_until(lambda: port_file.is_file() and port_file.read_text().split(),
                           60, "Chromium's DevToolsActivePort file")
        yield proc, f"http://127.0.0.1:{first[0]}"
    finally:
        reap(proc)


def runs(out: Path) -> list[dict]:
    """Every `runs` row under an output root, oldest first."""
    from storage import open_dataset

    if not (out / "runs").exists():
        return []
    return sorted(open_dataset(out, "runs").to_table().to_pylist(),
                  key=lambda r: r["started_at"])


def schedule_until_tiktok_alone(config: Path, out: Path) -> tuple[int, str]:
    """`tagarchive schedule run` until a fire crawled TikTok without Bilibili (the paused
    platform), then SIGTERM: its exit code and its log."""
    service = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "schedule", "run", "--config", str(config),
         "--log-format", "json"], cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
    stderr = StreamLines(service.stderr)  # type: ignore[arg-type]
    try:
        def tiktok_alone() -> bool:
            return service.poll() is not None or any(
                r["platforms"] == ["tiktok"] and r["verdict"] == "ok" for r in runs(out))

        wait_until(tiktok_alone, 240, "a fire that crawled tiktok without bilibili")
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=120)
    finally:
        reap(service)
        stderr.close()
    return code, stderr.text()


def platform_hits(replica: ReplicaServer, platform: str) -> dict[str, int]:
    """The replica's hits on one platform, by kind."""
    return {kind: n for (p, kind), n in replica.hits_snapshot().items() if p == platform}


def mixed_watch_config(directory: Path, replica_url: str, tags: list[str],
                       concurrency: int) -> Path:
    """A config whose one watch crawls Bilibili (signed in from bilibili.json beside it) and
    TikTok every 2 s, without the browser; its path."""
    path = directory / "tagarchive.toml"
    path.write_text(f'''
out = "data"
replica = "{replica_url}"
[politeness]
delay = 0
concurrency = {concurrency}
browser = false
[signin]
bilibili = "bilibili.json"
[watches.mixed]
platforms = ["bilibili", "tiktok"]
tags = {json.dumps(tags, ensure_ascii=False)}
every = "2s"
timeout = "2m"
''')
    return path


def bilibili_session(path: Path, value: str) -> Path:
    """A session file signing in to Bilibili with SESSDATA `value`; its path."""
    path.write_text(json.dumps({"cookies": [
        {"name": "SESSDATA", "value": value, "domain": ".bilibili.com", "path": "/"}]}))
    return path
