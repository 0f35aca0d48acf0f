"""The user's own browser and sessions, against the replica and real Chromium: attaching over
CDP, a persistent profile per platform, and the "am I signed in" check before a platform."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from crawler.downloader.profiles import RemoteBrowserRefused, check_cdp_url
from replica.server import ReplicaServer
from tests.access_helpers import users_chromium
from tests.crawl_helpers import crawl, outcomes, run_cli, snapshots

SESSION_VALUE = "douyin-session-of-the-user-7f3a"


def test_a_rendered_platform_is_crawled_through_the_users_own_browser(
        replica: ReplicaServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with users_chromium(tmp_path) as (browser_process, cdp):
        # the user is signed in in their browser; a cookie of another site is theirs alone
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(cdp)
            browser.contexts[0].add_cookies([
                {"name": "sessionid", "value": SESSION_VALUE, "domain": ".douyin.com",
                 "path": "/"},
                {"name": "bank", "value": "not-for-tagarchive-91c2", "domain": ".example.org",
                 "path": "/"}])
            tabs = len(browser.contexts[0].pages)
            browser.close()
        replica.cookies_seen.clear()
        out = tmp_path / "out"
        # no local Chromium can be launched: the page can only render in the attached one
        result = run_cli("crawl", "douyin", "cdptag", "--out", str(out), "--replica",
                         replica.url, "--delay", "0", "--browser-cdp", cdp,
                         env={"TAGARCHIVE_CHROMIUM": str(tmp_path / "no-such-chromium")})
        assert result.code == 0, result.stderr[-3000:]
        [row] = snapshots(out)
        assert row["views"] == replica.world.topic("douyin", "cdptag").views
        # fetched in a signing page, itself in the attached browser (docs/access.md)
        assert row["fetched_by"] == "in_page_fetch"
        # the user's cookie for the platform reached it; their other cookies did not
        assert any(SESSION_VALUE in c for c in replica.cookies_seen)
        assert not any("not-for-tagarchive" in c for c in replica.cookies_seen)
        assert SESSION_VALUE not in result.stdout + result.stderr
        # the user's browser is still running, with its own tabs, and answers
        assert browser_process.poll() is None
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(cdp)
            assert len(browser.contexts[0].pages) == tabs
            browser.close()


def test_a_remote_devtools_url_needs_the_flag_that_allows_it(replica: ReplicaServer,
                                                             tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:9222", "ws://[::1]:9222/devtools/browser/x",
                "http://localhost:9222"):
        assert check_cdp_url(url) == url
    with pytest.raises(RemoteBrowserRefused, match="--allow-remote-cdp"):
        check_cdp_url("http://192.0.2.7:9222")
    assert check_cdp_url("http://192.0.2.7:9222", allow_remote=True)
    with pytest.raises(ValueError, match="credentials"):
        check_cdp_url("http://me:secret-word@127.0.0.1:9222")
    result = crawl(replica, tmp_path / "out", "douyin", "remotetag",
                   extra=("--browser-cdp", "http://192.0.2.7:9222"))
    assert result.code == 2
    assert "--allow-remote-cdp" in result.stderr
    assert not (tmp_path / "out" / "runs").exists()


def test_a_cookie_set_in_one_crawl_is_sent_in_the_next_with_a_profile(
        replica: ReplicaServer, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    try:
        replica.accounts.hand_out("douyin", "ttwid", "set-in-the-first-crawl")
        first = crawl(replica, tmp_path / "out", "douyin", "profiletag",
                      extra=("--browser-profile", str(profiles)))
        assert first.code == 0, first.stderr[-3000:]
    finally:
        replica.accounts.stop("douyin")
    replica.cookies_seen.clear()
    second = crawl(replica, tmp_path / "out", "douyin", "profiletag",
                   extra=("--browser-profile", str(profiles)))
    assert second.code == 0, second.stderr[-3000:]
    assert any("ttwid=set-in-the-first-crawl" in c for c in replica.cookies_seen)
    assert stat.S_IMODE((profiles / "douyin").stat().st_mode) == 0o700
    assert stat.S_IMODE(profiles.stat().st_mode) == 0o700


def test_a_session_the_platform_signed_out_ends_its_tags_unrequested(
        replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "alsohere", "ssr")
    lost, kept = tmp_path / "lost.json", tmp_path / "kept.json"
    for path, value in ((lost, "bili-lost-session-1"), (kept, "bili-kept-session-2")):
        path.write_text(json.dumps({"cookies": [
            {"name": "SESSDATA", "value": value, "domain": ".bilibili.com", "path": "/"}]}))
    try:
        replica.accounts.revoke("bilibili", "bili-lost-session-1")
        replica.reset_hits()
        out = tmp_path / "out"
        result = crawl(replica, out, "bilibili,tiktok", "signedtag", "alsohere",
                       extra=("--session", f"bilibili={lost}", "--no-browser"))
        assert result.code == 1
        got = outcomes(out)
        assert got[("bilibili", "signedtag")] == got[("bilibili", "alsohere")] == "login_wall"
        assert got[("tiktok", "alsohere")] == "stored"
        hits = replica.hits_snapshot()
        assert hits[("bilibili", "whoami")] == 1  # one probe, then nothing for its tags
        assert {k for (p, k) in hits if p == "bilibili"} == {"whoami"}
        assert "says the session from" in result.stderr
        assert "signin bilibili" in result.stderr

        replica.reset_hits()
        again = crawl(replica, tmp_path / "out2", "bilibili", "signedtag",
                      extra=("--session", f"bilibili={kept}", "--no-browser"))
        assert again.code == 0, again.stderr[-2000:]
        hits = replica.hits_snapshot()
        assert hits[("bilibili", "whoami")] == 1
        assert any(k != "whoami" for (p, k) in hits if p == "bilibili")
    finally:
        replica.accounts.clear()


def test_the_config_names_the_browser_for_every_watch(tmp_path: Path) -> None:
    from crawler.services.watchconfig import load_config
    from crawler.services.watchvalues import ConfigError

    watch = '[watches.w]\nplatforms = ["douyin"]\ntags = ["x"]\nevery = "1h"\n'
    path = tmp_path / "tagarchive.toml"
    path.write_text('[browser]\ncdp = "http://127.0.0.1:9222"\n' + watch)
    config = load_config(path)
    args = config.crawl_args(config.watch("w"))
    assert args[args.index("--browser-cdp") + 1] == "http://127.0.0.1:9222"
    path.write_text('[browser]\nprofile = "profiles"\n' + watch)
    config = load_config(path)
    args = config.crawl_args(config.watch("w"))
    assert args[args.index("--browser-profile") + 1] == str(tmp_path / "profiles")
    path.write_text('[browser]\ncdp = "http://192.0.2.7:9222"\n' + watch)
    with pytest.raises(ConfigError, match="browser.cdp: .*allow_remote_cdp = true"):
        load_config(path)
    path.write_text('[browser]\ncdp = "http://192.0.2.7:9222"\nallow_remote_cdp = true\n'
                    + watch)
    assert "--allow-remote-cdp" in load_config(path).crawl_args(load_config(path).watch("w"))
    path.write_text('[browser]\ncdp = "http://127.0.0.1:9222"\nprofile = "p"\n' + watch)
    with pytest.raises(ConfigError, match="not both"):
        load_config(path)


def test_a_signed_in_profile_is_the_session_of_a_platform_read_over_http(
        replica: ReplicaServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from crawler.downloader.chromium import find_chromium, launch_options
    from crawler.downloader.profiles import mark_signed_in, profile_dir

    profiles = tmp_path / "profiles"
    value = "bili-profile-session-3c9d"
    with sync_playwright() as pw:  # what `signin bilibili --profile` leaves behind
        context = pw.chromium.launch_persistent_context(
            str(profile_dir(profiles, "bilibili")), **launch_options(find_chromium()))
        context.add_cookies([{"name": "SESSDATA", "value": value, "url": replica.url,
                              "expires": 4102444800}])
        context.close()
    mark_signed_in(profiles, "bilibili", "test")
    try:
        replica.reset_hits()
        result = crawl(replica, tmp_path / "out", "bilibili", "profilehttp",
                       extra=("--browser-profile", str(profiles)))
        assert result.code == 0, result.stderr[-2000:]
        assert replica.hits_snapshot()[("bilibili", "whoami")] == 1
        assert any(value in c for c in replica.cookies_seen)
        replica.accounts.revoke("bilibili", value)  # signed out by the platform
        result = crawl(replica, tmp_path / "out2", "bilibili", "profilehttp",
                       extra=("--browser-profile", str(profiles)))
        assert result.code == 1
        assert outcomes(tmp_path / "out2") == {("bilibili", "profilehttp"): "login_wall"}
        assert f"profile {profiles / 'bilibili'}" in result.stderr
    finally:
        replica.accounts.clear()
