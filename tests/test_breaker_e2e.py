"""The per-platform circuit breaker end to end: real crawls (the CLI in its own process) against
the replica, whose request counts show what reached each platform.

The breaker's clock is injected (-s TAGARCHIVE_BREAKER_NOW: it stands still at that moment),
so "within the cool-off" and "after it" are chosen, never waited for. Expected cool-offs are
the documented defaults (docs/access.md): captcha 30 min, block 2 h, rate limit its
Retry-After, doubled on a repeat trip.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from rich.console import Console
from warcio.archiveiterator import ArchiveIterator

from crawler.services.status import collect, render
from crawler.services.watchconfig import load_config
from replica.server import ReplicaServer
from storage.archive import read_meta
from tests.crawl_helpers import CrawlResult, crawl, run_cli

TAGS = ("brka", "brkb", "brkc")


def _crawl(replica: ReplicaServer, out: Path, platforms: str, *tags: str, now: str | None,
           extra: tuple[str, ...] = ()) -> CrawlResult:
    # one request at a time (the replica is one host), so the run's order is the queue's
    clock = ("-s", f"TAGARCHIVE_BREAKER_NOW={now}") if now else ()
    return crawl(replica, out, platforms, *tags, extra=("--concurrency", "1", *clock, *extra))


def _runs(out: Path) -> list[dict]:
    import duckdb

    rel = duckdb.sql(f"select * from read_parquet('{out}/runs/**/*.parquet', "
                     "hive_partitioning=true) order by started_at")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _outcomes(run: Mapping) -> dict[tuple[str, str], tuple[str, str]]:
    return {(o["platform"], o["tag"]): (o["status"], o["detail"]) for o in run["outcomes"]}


def _hits(replica: ReplicaServer, platform: str) -> dict[str, int]:
    return {kind: n for (p, kind), n in replica.hits_snapshot().items() if p == platform}


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def _answered(out: Path, platform: str, run_id: str) -> set[str]:
    """The tags of a run whose requests the platform answered: every answer is archived."""
    tags = set()
    for path in out.glob("archive/**/*.warc.gz"):
        with path.open("rb") as handle:
            for record in ArchiveIterator(handle):
                meta = read_meta(record)
                if meta.get("Run-Id") == run_id and meta.get("Platform") == platform:
                    tags.add(meta["Tag"]["name"])
    return tags


def _state(out: Path) -> dict:
    path = out / ".tagarchive" / "breaker.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    platforms: dict = json.loads(path.read_text())["platforms"]
    return platforms


def _seconds(entry: Mapping) -> float:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at(entry["until"]) - at(entry["tripped_at"])).total_seconds()


def test_a_461_cools_xiaohongshu_alone_for_this_run_and_the_next_then_a_probe_reopens_it(
        replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    for tag in TAGS:
        world.set_variant("xiaohongshu", tag, "captcha")  # 461 with Verifytype on search/topic
        world.set_variant("tiktok", tag, "ssr")
    out = tmp_path / "out"

    # 1. the first 461 trips Xiaohongshu: its tags not yet requested are not sent; TikTok goes on
    before = _hits(replica, "xiaohongshu")
    first = _crawl(replica, out, "tiktok,xiaohongshu", *TAGS, now="2026-01-01T00:00:00Z")
    assert first.code == 1, first.stderr[-3000:]
    got = _outcomes(_runs(out)[-1])
    assert all(got[("tiktok", t)][0] == "stored" for t in TAGS)
    xhs = {t: got[("xiaohongshu", t)] for t in TAGS}
    captchas = [t for t, (s, _d) in xhs.items() if s == "captcha"]
    cooled = [t for t, (s, _d) in xhs.items() if s == "cooling_off"]
    assert sorted(captchas + cooled) == sorted(TAGS)
    assert cooled, xhs  # one at a time: at most the tag in flight when it tripped follows it
    # what reached Xiaohongshu: requests for the tags that got their captcha, none for the rest
    # (the archive keeps every answer with its tag, however the page was fetched)
    assert _delta(before, _hits(replica, "xiaohongshu")).get("search_topic")
    assert _answered(out, "xiaohongshu", _runs(out)[-1]["run_id"]) == set(captchas)
    for tag in cooled:
        detail = xhs[tag][1]
        assert detail.startswith("until 2026-01-01T00:30:00Z "), detail  # 30 min after the trip
        assert "after captcha (trip 1) on " in detail
        assert f"tagarchive: xiaohongshu {tag}: cooling_off: {detail}" in first.stderr
    assert "Traceback" not in first.stderr
    assert _runs(out)[-1]["verdict"] == "failed"
    state = _state(out)
    assert list(state) == ["xiaohongshu"]
    assert (state["xiaohongshu"]["kind"], _seconds(state["xiaohongshu"])) == ("captcha", 1800)

    # 2. a crawl ten minutes later sends Xiaohongshu nothing at all
    before = _hits(replica, "xiaohongshu")
    second = _crawl(replica, out, "tiktok,xiaohongshu", *TAGS, now="2026-01-01T00:10:00Z")
    assert second.code == 1
    assert _delta(before, _hits(replica, "xiaohongshu")) == {}
    got = _outcomes(_runs(out)[-1])
    assert all(got[("tiktok", t)][0] == "stored" for t in TAGS)
    assert all(got[("xiaohongshu", t)][0] == "cooling_off" for t in TAGS)

    # 3. after the cool-off one tag probes; the captcha again: twice as long, the others wait
    before = _hits(replica, "xiaohongshu")
    third = _crawl(replica, out, "xiaohongshu", *TAGS, now="2026-01-01T00:31:00Z")
    assert third.code == 1
    assert _delta(before, _hits(replica, "xiaohongshu")).get("search_topic")
    got = _outcomes(_runs(out)[-1])
    assert sorted(s for s, _d in got.values()) == ["captcha", "cooling_off", "cooling_off"]
    [probe] = [t for (_p, t), (s, _d) in got.items() if s == "captcha"]
    assert _answered(out, "xiaohongshu", _runs(out)[-1]["run_id"]) == {probe}
    for status, detail in got.values():
        if status == "cooling_off":
            assert detail.startswith("until 2026-01-01T01:31:00Z "), detail
            assert "(trip 2)" in detail
    assert _seconds(_state(out)["xiaohongshu"]) == 3600

    # 4. after that, the platform answers again: the probe goes through, the breaker closes
    for tag in TAGS:
        world.set_variant("xiaohongshu", tag, "normal")
    fourth = _crawl(replica, out, "xiaohongshu", *TAGS, now="2026-01-01T01:32:00Z")
    assert fourth.code == 0, fourth.stderr[-3000:]
    assert all(s == "stored" for s, _d in _outcomes(_runs(out)[-1]).values())
    assert _state(out)["xiaohongshu"]["closed"] is True


def test_each_kind_cools_for_its_time_and_ignore_cooloff_sends_anyway(
        replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("bilibili", "brkkind", "captcha")
    world.set_variant("weibo", "brkkind", "ip_block")  # HTTP 432
    world.set_variant("tiktok", "brkkind", "rate_limited", times=50, retry_after=3600)
    world.set_variant("tiktok", "brkcalm", "ssr")  # TikTok's HTTP shape (no browser)
    out = tmp_path / "out"
    first = _crawl(replica, out, "bilibili,weibo,tiktok", "brkkind",
                   now="2026-01-01T00:00:00Z")
    assert first.code == 1, first.stderr[-3000:]
    got = _outcomes(_runs(out)[-1])
    assert {p: s for (p, _t), (s, _d) in got.items()} == {
        "bilibili": "captcha", "weibo": "blocked", "tiktok": "rate_limited"}
    state = _state(out)
    assert {p: (e["kind"], _seconds(e)) for p, e in state.items()} == {
        "bilibili": ("captcha", 1800), "weibo": ("blocked", 7200),
        "tiktok": ("rate_limited", 3600)}  # TikTok's own Retry-After

    # within every cool-off: nothing reaches the three platforms, every tag is named
    before = {p: _hits(replica, p) for p in state}
    second = _crawl(replica, out, "bilibili,weibo,tiktok", "brkkind", "brkcalm",
                    now="2026-01-01T00:05:00Z")
    assert second.code == 1
    assert {p: _delta(before[p], _hits(replica, p)) for p in state} == {
        "bilibili": {}, "weibo": {}, "tiktok": {}}
    got = _outcomes(_runs(out)[-1])
    assert {s for s, _d in got.values()} == {"cooling_off"}
    assert got[("weibo", "brkcalm")][1].startswith("until 2026-01-01T02:00:00Z ")
    assert got[("weibo", "brkcalm")][1].count("after blocked (trip 1) on brkkind: ")
    assert second.stderr.count(": cooling_off: until ") == 6

    # --ignore-cooloff: requested anyway, and said so
    before = {p: _hits(replica, p) for p in state}
    third = _crawl(replica, out, "bilibili,weibo", "brkcalm", now="2026-01-01T00:06:00Z",
                   extra=("--ignore-cooloff",))
    assert third.code == 0, third.stderr[-3000:]
    assert "requested anyway (--ignore-cooloff)" in third.stderr
    assert all(_delta(before[p], _hits(replica, p)) for p in ("bilibili", "weibo"))
    assert {s for s, _d in _outcomes(_runs(out)[-1]).values()} == {"stored"}


def test_a_damaged_state_file_is_one_line_and_every_platform_closed(
        replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = out / ".tagarchive" / "breaker.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "platforms": {"bilibili": {"kind": "capt')
    result = _crawl(replica, out, "bilibili", "brkcalm", now=None)
    assert result.code == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "breaker.json" in line]
    assert len(lines) == 1, result.stderr
    assert "is unreadable (JSONDecodeError" in lines[0]
    assert "every platform is treated as closed" in lines[0]
    listed = run_cli("breaker", "--out", str(out))
    assert listed.code == 0
    assert listed.stderr.count("is unreadable") == 1
    assert "no platform is backed off" in listed.stdout


def test_status_shows_a_cooling_platform_in_one_line_and_reset_ends_it(
        replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "data"
    replica.world.set_variant("bilibili", "brkkind", "captcha")
    tripped = _crawl(replica, out, "bilibili", "brkkind", now=None)  # the real clock
    assert tripped.code == 1
    config = tmp_path / "tagarchive.toml"
    config.write_text(f'out = "{out}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[watches.w]\nplatforms = ["bilibili"]\ntags = ["brkcalm"]\n'
                      'every = "1h"\n')
    console = Console(record=True, width=80, color_system=None)
    render(collect(load_config(config)), console)
    lines = console.export_text().splitlines()
    [line] = [line for line in lines if " cooling until " in line]
    assert line.startswith("bilibili cooling until ")
    assert line.endswith(": captcha")
    assert max(console.measure(line).maximum for line in lines) <= 80

    listed = run_cli("breaker", "list", "--out", str(out))
    assert listed.code == 0
    assert listed.stdout.startswith("bilibili cooling until ")
    assert "brkkind: " in listed.stdout  # the tag and the platform's word that tripped it

    assert run_cli("breaker", "reset", "nosuchplatform", "--out", str(out)).code == 2
    reset = run_cli("breaker", "reset", "bilibili", "--out", str(out))
    assert reset.code == 0
    assert "bilibili: breaker reset" in reset.stdout
    assert "no platform is backed off" in run_cli("breaker", "--out", str(out)).stdout
    again = _crawl(replica, out, "bilibili", "brkcalm", now=None)
    assert again.code == 0, again.stderr[-3000:]
