"""Signing sessions end to end (issue 14 item 1): real `tagarchive crawl` processes, real Chromium,
the replica's Xiaohongshu signer (replica/signing.py) switched as the real site would change.

Every expected value is the replica's ground truth; what a test provokes (an old signature, a
crashed page, a new script version, a page without its signer) is checked on the replica's
side too (its hits and the refusals it counted), so a crawl that never met it cannot pass.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psutil

from crawler.platforms import platform_class
from crawler.platforms.base import TagResult
from crawler.services.reparse import archived_pages
from replica.server import ReplicaServer
from replica.signing import SignerState
from tests.access_helpers import platform_hits
from tests.crawl_helpers import ROOT, crawl, outcomes, run_record, snapshots
from tests.wait_helpers import StreamLines, reap, wait_until

PLATFORM = "xiaohongshu"
PAGES = 1  # TAGARCHIVE_SIGNING_PAGES


def _posts(out: Path) -> list[dict[str, Any]]:
    rel = duckdb.sql(f"select * from read_parquet('{out}/posts/**/*.parquet', "
                     "hive_partitioning=true)")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _assert_truth(replica: ReplicaServer, out: Path, tags: list[str]) -> list[dict[str, Any]]:
    """Every tag stored once, each number the replica's ground truth; the rows."""
    assert set(outcomes(out).values()) == {"stored"}, outcomes(out)
    rows = snapshots(out)
    assert sorted(r["tag"] for r in rows) == sorted(t.lower() for t in tags)
    for row in rows:
        truth = replica.world.topic(PLATFORM, row["tag"])
        assert (row["views"], row["discussions"], row["participants"]) == (
            truth.views, truth.discussions, truth.participants), row["tag"]
        assert row["tag_id"] == truth.topic_id
        assert truth.page_id in row["url"]
    return rows


def _crawl_process(replica: ReplicaServer, out: Path, tags: list[str],
                   *extra: str) -> subprocess.Popen[str]:
    """A crawl in its own process, logging at INFO, to act on while it runs."""
    argv = [sys.executable, "-m", "crawler.cli", "crawl", PLATFORM, *tags, "--out", str(out),
            "--replica", replica.url, "--delay", "0", "--concurrency", "4",
            "--log-level", "INFO", *extra]
    return subprocess.Popen(argv, cwd=str(ROOT), env=dict(os.environ), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _finish(proc: subprocess.Popen[str], log: StreamLines) -> str:
    """The crawl's log once it ended on its own (a hang guard kills it), its exit checked."""
    try:
        proc.wait(timeout=300)
    finally:
        reap(proc, group=True)
        text = log.text()
        log.close()
    assert proc.returncode == 0, text[-3000:]
    return text


def _mid_crawl(replica: ReplicaServer, out: Path, tags: list[str],
               act: Callable[[subprocess.Popen[str]], object]) -> tuple[str, int]:
    """A crawl in its own process, `act` done to it once 8 topics were read: its log, and how
    many topics had been read when `act` was done."""
    proc = _crawl_process(replica, out, tags)
    assert proc.stderr is not None
    log = StreamLines(proc.stderr)
    try:
        wait_until(lambda: platform_hits(replica, PLATFORM).get("notes", 0) >= 8, 120,
                   "8 topics read")
        act(proc)
        done_at = platform_hits(replica, PLATFORM).get("notes", 0)
    finally:
        text = _finish(proc, log)
    return text, done_at


def _tags(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def test_signed_crawl_stores_truth_without_rendering_a_page(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    tags = ["TikTok难民", *_tags("signed", 7)]
    result = crawl(replica, tmp_path, PLATFORM, *tags)
    assert result.code == 0, result.stderr[-3000:]
    rows = _assert_truth(replica, tmp_path, tags)
    assert {r["fetched_by"] for r in rows} == {"signed_http"}
    assert {r["source"] for r in rows} == {"api"}
    for row in rows:
        assert row["views_semantics"] == row["discussions_semantics"] == "exact"
    # the posts are the feed's first page, with the likes the replica holds
    posts = _posts(tmp_path)
    truth = {p.id: p for tag in tags
             for p in replica.world.posts_for(PLATFORM, tag, limit=20, order="mixed")}
    assert {p["post_id"] for p in posts} == set(truth)
    assert all(p["likes"] == truth[p["post_id"]].likes for p in posts)

    hits = platform_hits(replica, PLATFORM)
    # one search and one feed call per tag, every one signed well enough to be answered
    assert hits.get("search_topic") == hits.get("notes") == len(tags), hits
    assert signer.state()["refused"] == {}
    # no topic or search page was loaded; the signing pages, once each: 2 for 8 tags
    assert "topic_page" not in hits, hits
    assert "search_page" not in hits, hits
    assert hits.get("home", 0) <= PAGES, hits
    assert run_record(tmp_path)["rendered_requests"] == 0


def test_expired_signature_is_signed_again_not_stored_as_captcha(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    """Requests signed as they enter the downloader wait there behind one the replica holds
    for longer than a signature lives: they arrive expired, and must be signed again."""
    signer.set(ttl_ms=1500)
    replica.faults.add("slow", "/xiaohongshu/web_api/sns/v1/search/topic", times=1,
                       seconds=2.5)
    tags = _tags("expiry", 6)
    # one request at a time to the replica: the others are signed and queued meanwhile (the
    # platform breaker, when on, lets only as many past as the platform takes at once, so
    # they are signed just before they are sent, and this takes a slow throttle instead)
    result = crawl(replica, tmp_path, PLATFORM, *tags,
                   extra=("--concurrency", "1", "--log-level", "INFO",
                          "-s", "TAGARCHIVE_BREAKER_ENABLED=False"))
    assert result.code == 0, result.stderr[-3000:]
    assert signer.state()["refused"].get("expired", 0) >= 1, signer.state()
    assert "signature refused" in result.stderr
    rows = _assert_truth(replica, tmp_path, tags)  # none stored as captcha
    assert "signed_http" in {r["fetched_by"] for r in rows}


def test_signing_page_killed_mid_crawl_is_recreated(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    tags = _tags("killed", 60)

    def kill_renderers(proc: subprocess.Popen[str]) -> None:
        crawl_proc = psutil.Process(proc.pid)
        renderers = [p for p in crawl_proc.children(recursive=True)
                     if "--type=renderer" in " ".join(p.cmdline())]
        assert renderers, "no Chromium renderer under the crawl"
        for renderer in renderers:  # every signing page's renderer: the pages crash
            renderer.kill()

    text, killed_at = _mid_crawl(replica, tmp_path, tags, kill_renderers)
    assert killed_at < len(tags), "the crawl ended before the pages were killed"
    assert "re-creating signing page" in text
    assert platform_hits(replica, PLATFORM).get("home", 0) > PAGES  # signing pages loaded again
    rows = _assert_truth(replica, tmp_path, tags)  # no tag lost or wrong
    assert "signed_http" in {r["fetched_by"] for r in rows}


def test_key_rotation_mid_run_recreates_sessions(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    tags = _tags("rotated", 60)
    # the site ships a new script: pages loaded before sign wrongly
    text, rotated_at = _mid_crawl(replica, tmp_path, tags, lambda _proc: signer.set(version=2))
    assert rotated_at < len(tags), "the crawl ended before the script changed"
    refused = signer.state()["refused"]
    assert refused.get("stale_key", 0) >= 1, refused  # the old pages' signatures were refused
    assert "signing pages are re-created" in text
    assert platform_hits(replica, PLATFORM).get("home", 0) > PAGES
    rows = _assert_truth(replica, tmp_path, tags)  # and no wrong number stored
    assert {r["fetched_by"] for r in rows} == {"signed_http"}


def test_render_fallback_when_the_page_has_no_signer(
        replica: ReplicaServer, signer: SignerState, tmp_path: Path) -> None:
    signer.set(exposed=False)  # the site still signs its own calls, but exposes no signer
    tags = ["TikTok难民", *_tags("nosigner", 3)]
    result = crawl(replica, tmp_path, PLATFORM, *tags, extra=("--log-level", "INFO"))
    assert result.code == 0, result.stderr[-3000:]
    assert "rendering instead of signing" in result.stderr
    rows = _assert_truth(replica, tmp_path, tags)
    assert {r["fetched_by"] for r in rows} == {"render"}
    assert {r["source"] for r in rows} == {"captured_xhr"}
    hits = platform_hits(replica, PLATFORM)
    assert hits.get("search_page") == hits.get("topic_page") == len(tags), hits
    # no API call was ever sent unsigned by the crawler itself
    assert signer.state()["refused"] == {}


def test_signing_off_renders_as_before(replica: ReplicaServer, signer: SignerState,
                                       tmp_path: Path) -> None:
    tags = ["TikTok难民"]
    result = crawl(replica, tmp_path, PLATFORM, *tags,
                   extra=("-s", "TAGARCHIVE_SIGNING_ENABLED=0"))
    assert result.code == 0, result.stderr[-3000:]
    rows = _assert_truth(replica, tmp_path, tags)
    assert rows[0]["fetched_by"] == "render"
    assert "home" not in platform_hits(replica, PLATFORM)  # no signing page was opened


def test_signed_pages_trace_to_their_warc_records(replica: ReplicaServer, signer: SignerState,
                                                  tmp_path: Path) -> None:
    """An API answer fetched signed is archived like any response, and parsing the archived
    record again gives exactly the stored numbers."""
    tags = ["TikTok难民", "旅行"]
    result = crawl(replica, tmp_path, PLATFORM, *tags)
    assert result.code == 0, result.stderr[-3000:]
    pages = {p.ref.record_id: p for p in archived_pages(tmp_path)}
    rows = snapshots(tmp_path)
    assert len(rows) == len(tags)
    for row in rows:
        archived = pages[row["archive_record"]]
        assert archived.step == "api_topic"
        assert not archived.page.rendered
        adapter = platform_class(PLATFORM)(replica.base_url(PLATFORM))
        again = adapter.handle(archived.step, archived.page, archived.tag, archived.state)
        assert isinstance(again, TagResult)
        for name in ("views", "discussions", "participants"):
            assert again.snapshot[name] == row[name], (row["tag"], name)
    # the signature headers went out, never into the archive: only responses are kept
    for path in tmp_path.glob("archive/**/*.warc.gz"):
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
        assert b"x-S-Common" not in raw
        assert b"X-B3-Traceid" not in raw


def test_tiktok_client_rendered_tags_are_signed(replica: ReplicaServer, tmp_path: Path) -> None:
    """TikTok's client-rendered tag page: its two API calls signed by a live page's
    `byted_acrawler.frontierSign`, not the page rendered."""
    tiktok: SignerState = replica.platforms["tiktok"].signing  # type: ignore[attr-defined]
    tiktok.reset()
    replica.reset_hits()
    tags = ["tiktokrefugee", "booktok", "signedcsr"]
    for tag in tags:
        replica.world.set_variant("tiktok", tag, "csr")
    result = crawl(replica, tmp_path, "tiktok", *tags)
    assert result.code == 0, result.stderr[-3000:]
    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    assert set(rows) == set(tags)
    for tag, row in rows.items():
        truth = replica.world.topic("tiktok", tag)
        assert (row["views"], row["posts"], row["tag_id"]) == (truth.views, truth.posts,
                                                               truth.topic_id)
        assert (row["fetched_by"], row["source"]) == ("signed_http", "api")
    posts = _posts(tmp_path)
    truth_posts = {p.id: p for tag in tags
                   for p in replica.world.posts_for("tiktok", tag, limit=30)}
    assert {p["post_id"] for p in posts} == set(truth_posts)
    hits = {kind: n for (platform, kind), n in replica.hits_snapshot().items()
            if platform == "tiktok"}
    assert hits.get("api_detail") == hits.get("api_item_list") == len(tags), hits
    assert tiktok.state()["refused"] == {}
    assert run_record(tmp_path)["rendered_requests"] == 0


def test_douyin_fetched_in_a_signing_page(replica: ReplicaServer, tmp_path: Path) -> None:
    """Douyin's SDK signs what its page fetches: the crawl's API calls are fetches run in a
    live page (in_page_fetch), by name and by id, and refusals end as the page would show."""
    douyin: SignerState = replica.platforms["douyin"].signing  # type: ignore[attr-defined]
    douyin.reset()
    replica.reset_hits()
    world = replica.world
    food = world.topic("douyin", "美食")
    world.set_variant("douyin", "walled", "login_wall")
    world.set_variant("douyin", "verify", "captcha")
    world.set_variant("douyin", "blockedip", "ip_block")
    result = crawl(replica, tmp_path, "douyin", "TikTok难民", f"id:{food.topic_id}",
                   "nosuchtopic", "id:1", "walled", "verify", "blockedip",
                   extra=("-s", "TAGARCHIVE_BREAKER_ENABLED=False"))
    assert result.code == 1, result.stderr[-3000:]
    got = {tag: status for (platform, tag), status in outcomes(tmp_path).items()}
    assert got == {"tiktok难民": "stored", f"id:{food.topic_id}": "stored",
                   "nosuchtopic": "not_found", "id:1": "not_found", "walled": "login_wall",
                   # refused in the page, then rendered: the page shows what the API said
                   "verify": "captcha", "blockedip": "blocked"}
    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    assert set(rows) == {"tiktok难民", "美食"}
    for tag, row in rows.items():
        truth = world.topic("douyin", tag)
        assert (row["views"], row["participants"], row["tag_id"]) == (
            truth.views, truth.participants, truth.topic_id)
        assert (row["fetched_by"], row["source"]) == ("in_page_fetch", "api")
    posts = [p for p in _posts(tmp_path) if p["tag"] == "tiktok难民"]
    truth_posts = {p.id: p for p in world.posts_for("douyin", "TikTok难民", limit=20)}
    assert {p["post_id"] for p in posts} == set(truth_posts)
    assert all(p["likes"] == truth_posts[p["post_id"]].likes for p in posts)
    hits = {kind: n for (platform, kind), n in replica.hits_snapshot().items()
            if platform == "douyin"}
    # the stored tags' pages were never loaded: only the refused ones were rendered
    assert hits.get("home", 0) <= 3, hits  # the first page, and re-created after refusals
    assert hits.get("hashtag_page", 0) + hits.get("search_page", 0) <= 2, hits
    assert douyin.state()["refused"] == {}  # nothing it sent was unsigned
