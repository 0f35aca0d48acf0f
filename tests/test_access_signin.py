"""`tagarchive signin`: no display prints how to export cookies instead; in a browser (here the
test's own headless Chromium, attached over CDP and driven by the test as a person would) it
waits for the platform's signed-in cookie and saves only the platform's session, 0600."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from replica.server import ReplicaServer
from tests.access_helpers import users_chromium
from tests.crawl_helpers import ROOT, crawl, outcomes, run_cli
from tests.wait_helpers import StreamLines, reap

NO_DISPLAY = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}


def test_without_a_display_it_says_so_and_how_to_export_cookies(tmp_path: Path) -> None:
    result = run_cli("signin", "bilibili", "--save", str(tmp_path / "s.json"), env=NO_DISPLAY)
    assert result.code == 3
    [line] = result.stderr.strip().splitlines()
    assert "no display" in line
    assert "bilibili" in line
    assert "cookies.txt" in result.stdout
    assert "--session bilibili=FILE" in result.stdout
    assert "SESSDATA" in result.stdout  # the cookie that says so, for checking an export
    assert "--remote-debugging-port" in result.stdout
    assert not (tmp_path / "s.json").exists()


def test_a_platform_without_known_sign_in_is_a_usage_error() -> None:
    result = run_cli("signin", "mastodon", env=NO_DISPLAY)
    assert result.code == 2
    assert "--session mastodon=FILE" in result.stderr


def test_signing_in_saves_only_the_platforms_session(replica: ReplicaServer,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    saved = tmp_path / "sessions" / "bilibili.json"
    with users_chromium(tmp_path) as (_browser, cdp), sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(cdp)
        context = browser.contexts[0]
        context.add_cookies([{"name": "bank", "value": "not-for-tagarchive-55e1",
                              "domain": ".example.org", "path": "/"}])
        tabs = list(context.pages)  # the user's own
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "signin", "bilibili", "--browser-cdp", cdp,
             "--replica", replica.url, "--save", str(saved), "--timeout", "2m"],
            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = StreamLines(proc.stdout)  # type: ignore[arg-type]
        try:
            # the tab signin opens (events that came meanwhile are dispatched in the wait)
            opened = [p for p in context.pages if p not in tabs]
            page = opened[0] if opened else context.wait_for_event("page", timeout=60_000)
            page.wait_for_url("**/bilibili/login", timeout=60_000)
            page.fill("input[name=username]", "researcher")
            page.fill("input[name=password]", "correct horse")
            page.click("button[type=submit]")
            code = proc.wait(timeout=120)
        finally:
            reap(proc)
            output.close()
            browser.close()
    text = output.text()
    assert code == 0, text
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    state = json.loads(saved.read_text())
    [issued] = replica.accounts.issued["bilibili"]
    assert [(c["name"], c["value"]) for c in state["cookies"]] == [("SESSDATA", issued)]
    assert "not-for-tagarchive" not in saved.read_text()
    assert issued not in text  # the secret is saved, never printed
    assert f"--session bilibili={saved}" in text

    # the saved session is one a crawl takes: its check asks the platform, which says yes
    replica.reset_hits()
    result = crawl(replica, tmp_path / "out", "bilibili", "signedintag",
                   extra=("--session", f"bilibili={saved}", "--no-browser"))
    assert result.code == 0, result.stderr[-2000:]
    assert outcomes(tmp_path / "out") == {("bilibili", "signedintag"): "stored"}
    assert replica.hits_snapshot()[("bilibili", "whoami")] == 1
    assert any(issued in c for c in replica.cookies_seen)
