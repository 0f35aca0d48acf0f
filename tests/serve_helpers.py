"""`tagarchive serve` for tests: the real command in its own process, on a free loopback port.

The server prints its URL once its socket listens; a test waits for that line (never a sleep)
and reads the page in Chromium or with urllib. Every request the browser makes is recorded, and
anything not for the server's own origin is refused, so a test also proves nothing left it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from crawler.downloader.chromium import find_chromium, launch_options
from tests.wait_helpers import StreamLines, reap, wait_until

READY = re.compile(r"^tagarchive serve: (http://\S+/) ")


@dataclass
class Served:
    """A running `tagarchive serve` and what it printed."""

    proc: subprocess.Popen[str]
    url: str
    stdout: StreamLines
    stderr: StreamLines

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                            bytes]:
        """Status, headers and body of one GET (errors answered, not raised)."""
        request = urllib.request.Request(self.origin + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        reap(self.proc)
        self.stdout.close()
        self.stderr.close()


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without a config the test did not ask for."""
    env = {k: v for k, v in os.environ.items() if k != "TAGARCHIVE_CONFIG"}
    return {**env, **(extra or {})}


def start_serve(*args: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: float = 60) -> Served:
    """Start `tagarchive serve --port 0 ARGS` and wait for it to print its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "crawler.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(cwd), env=serve_env(env))
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout, stderr = StreamLines(proc.stdout), StreamLines(proc.stderr)
    try:
        wait_until(lambda: stdout.matching(READY.match) or proc.poll() is not None, timeout,
                   "tagarchive serve to print its URL")
    except BaseException:
        reap(proc)
        raise
    if proc.poll() is not None:
        raise AssertionError(f"tagarchive serve exited {proc.returncode}: {stderr.text()}")
    match = READY.match(stdout.matching(READY.match)[0])
    assert match is not None
    return Served(proc, match.group(1), stdout, stderr)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**launch_options(find_chromium()))
        yield launched
        launched.close()


@dataclass
class Visit:
    """A browser context on one server: every request recorded, other origins refused."""

    page: Page
    context: Any
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def visit(browser: Browser, served: Served) -> Visit:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    seen = Visit(page, context)

    def route(r: Any) -> None:
        if r.request.url.startswith(served.origin + "/"):
            r.continue_()
        else:
            seen.refused.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("console", lambda m: m.type in ("error", "warning") and seen.problems.append(m.text))
    page.on("pageerror", lambda e: seen.problems.append(str(e)))
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
    page.on("framenavigated", lambda f: f == page.main_frame and seen.navigations.append(f.url))
    return seen
