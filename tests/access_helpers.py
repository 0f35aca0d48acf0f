"""A Chromium of the test's own, headless, with its DevTools port on loopback: the stand-in for
the user's everyday browser that `--browser-cdp` and `signin --browser-cdp` attach to."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from crawler.downloader.chromium import find_chromium
from tests.wait_helpers import reap, wait_until


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
