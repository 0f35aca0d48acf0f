"""End-to-end crawls: the CLI in its own process, real Chromium, the replica on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import polars as pl

from replica.server import ReplicaServer
from storage import duckdb_connect, open_dataset
from tests.crawl_helpers import ROOT, crawl, outcomes, run_record, snapshots

SNAPSHOT_COLUMNS = {"tag", "tag_display", "tag_id", "url", "observed_at", "views", "posts",
                    "discussions", "participants", "source", "run_id", "platform", "date"}


def test_both_platforms_store_exact_ground_truth(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("tiktok", "tiktokrefugee", "ssr")
    world.set_variant("tiktok", "TikTok难民", "csr")  # the page's own JS must fetch the data
    # contexts rotate every 2 pages here, so rotation is exercised on a real crawl
    # Xiaohongshu rendered as before signing sessions (tests/test_signing_e2e.py signs it)
    result = crawl(replica, tmp_path, "tiktok,xiaohongshu", "tiktokrefugee", "TikTok难民",
                   extra=("-s", "TAGARCHIVE_CONTEXT_PAGES=2", "--log-level", "INFO",
                          "-s", "TAGARCHIVE_SIGNING_ENABLED=0"))
    assert result.code == 0, result.stderr[-3000:]
    assert "closed browser context tagarchive-0" in result.stderr

    rows = {(r["platform"], r["tag"]): r for r in snapshots(tmp_path)}
    assert set(rows) == {(p, t) for p in ("tiktok", "xiaohongshu")
                         for t in ("tiktokrefugee", "tiktok难民")}
    for (platform, tag), row in rows.items():
        truth = world.topic(platform, tag)
        assert row["views"] == truth.views, (platform, tag)
        # TikTok's integers are its display-rounded figures (crawler/platforms/tiktok.py)
        assert row["views_semantics"] == ("rounded" if platform == "tiktok" else "exact")
        assert row["views_text"] is None
        # how each page came: TikTok's server-rendered page over HTTP, the others rendered
        ssr = (platform, tag) == ("tiktok", "tiktokrefugee")
        assert row["fetched_by"] == ("http" if ssr else "render"), (platform, tag)
        assert str(row["date"]) == row["observed_at"].strftime("%Y-%m-%d")
        if platform == "tiktok":
            assert row["posts"] == truth.posts
            assert row["tag_id"] == truth.topic_id
        else:
            assert row["discussions"] == truth.discussions
            assert row["participants"] == truth.participants
            assert row["tag_id"] == truth.topic_id
            assert truth.page_id in row["url"]
            assert row["source"] == "captured_xhr"
    assert rows[("tiktok", "tiktokrefugee")]["source"] == "embedded_json"
    assert rows[("tiktok", "tiktok难民")]["source"] == "captured_xhr"
    assert rows[("xiaohongshu", "tiktok难民")]["tag_display"] == "TikTok难民"

    record = run_record(tmp_path)
    assert record["verdict"] == "ok"
    assert record["exit_code"] == 0
    assert record["snapshots"] == 4
    # 2 Xiaohongshu tags × (search + topic page) + the one client-rendered TikTok tag
    assert record["rendered_requests"] == 5
    assert record["posts"] > 0

    # the data contract: the columns of DESIGN.md, readable by Polars with hive partitioning
    frame = pl.scan_parquet(f"{tmp_path}/snapshots/**/*.parquet", hive_partitioning=True)
    assert set(frame.collect_schema().names()) >= SNAPSHOT_COLUMNS
    assert frame.select(pl.len()).collect().item() == 4
    posts = pl.read_parquet(f"{tmp_path}/posts/**/*.parquet", hive_partitioning=True)
    assert posts["post_id"].n_unique() == posts.height
    assert set(posts["platform"].unique()) == {"tiktok", "xiaohongshu"}
    # pandas with nullable dtypes, and the package's own typed readers
    frame = pd.read_parquet(tmp_path / "snapshots", dtype_backend="numpy_nullable")
    assert str(frame["views"].dtype) == "Int64"
    assert sorted(frame["views"].tolist()) == sorted(r["views"] for r in rows.values())
    assert open_dataset(tmp_path, "snapshots").count_rows() == 4
    con = duckdb_connect(tmp_path)
    count = con.execute("select count(*) from snapshots where tag = 'tiktokrefugee'").fetchone()
    assert count == (2,)


def test_tiktok_huge_view_count_is_stored_exactly(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "bigviews", "ssr")
    replica.world.set_variant("tiktok", "bigviews", "override", views=9876543210)
    result = crawl(replica, tmp_path, "tiktok", "bigviews")
    assert result.code == 0, result.stderr[-2000:]
    [row] = snapshots(tmp_path)
    assert row["views"] == 9876543210
    assert row["views_semantics"] == "rounded"  # what TikTok's viewCount is, however long
    # a normal HTTP-path crawl never starts a page in the browser
    assert run_record(tmp_path)["rendered_requests"] == 0


def test_failure_shapes_are_named_and_exit_1(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    for platform in ("tiktok", "xiaohongshu"):
        world.set_variant(platform, "walled", "login_wall")
        world.set_variant(platform, "verify", "captcha")
        world.set_variant(platform, "moved", "layout_changed")
    world.set_variant("xiaohongshu", "blockedip", "ip_block")
    world.set_variant("tiktok", "goodtag", "ssr")
    world.set_variant("tiktok", "blockedip", "ssr")
    result = crawl(replica, tmp_path, "tiktok,xiaohongshu", "goodtag", "nosuchtag", "walled",
                   "verify", "moved", "blockedip",
                   # each failure of a platform named in one run: no breaker cooling it off
                   extra=("-s", "TAGARCHIVE_BREAKER_ENABLED=False"))
    assert result.code == 1
    got = outcomes(tmp_path)
    expected = {
        ("tiktok", "goodtag"): "stored",
        ("xiaohongshu", "goodtag"): "stored",
        ("tiktok", "nosuchtag"): "not_found",
        ("xiaohongshu", "nosuchtag"): "not_found",
        ("tiktok", "walled"): "login_wall",
        ("xiaohongshu", "walled"): "login_wall",
        ("tiktok", "verify"): "captcha",
        ("xiaohongshu", "verify"): "captcha",
        ("tiktok", "moved"): "layout_changed",
        ("xiaohongshu", "moved"): "layout_changed",
        ("xiaohongshu", "blockedip"): "blocked",
        ("tiktok", "blockedip"): "stored",  # the IP block is Xiaohongshu's only
    }
    for key, status in expected.items():
        assert got[key] == status, (key, got[key])
    # each failure is one line on stderr, naming platform, tag and outcome; no traceback
    for (platform, tag), status in expected.items():
        if status != "stored":
            assert f"tagarchive: {platform} {tag}: {status}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_record(tmp_path)["verdict"] == "failed"
    stored = {(r["platform"], r["tag"]) for r in snapshots(tmp_path)}
    assert stored == {key for key, status in expected.items() if status == "stored"}


def test_retry_after_is_honoured(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "busytag", "ssr")
    replica.world.set_variant("tiktok", "busytag", "rate_limited", times=1, retry_after=2)
    started = time.monotonic()
    result = crawl(replica, tmp_path, "tiktok", "busytag")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr[-2000:]
    assert elapsed >= 2.0  # waited out Retry-After before the retry
    assert snapshots(tmp_path)[0]["views"] == replica.world.topic("tiktok", "busytag").views


def test_retry_after_too_long_is_reported_rate_limited(replica: ReplicaServer,
                                                       tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "slowdown", "rate_limited", times=50, retry_after=3600)
    result = crawl(replica, tmp_path, "tiktok", "slowdown")
    assert result.code == 1
    assert outcomes(tmp_path)[("tiktok", "slowdown")] == "rate_limited"


def test_server_errors_are_retried_with_backoff(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "flaky", "ssr")
    replica.world.set_variant("tiktok", "flaky", "server_error", times=2, status=503)
    result = crawl(replica, tmp_path, "tiktok", "flaky",
                   extra=("-s", "TAGARCHIVE_BACKOFF_BASE=0.1"))
    assert result.code == 0, result.stderr[-2000:]
    assert len(snapshots(tmp_path)) == 1


def test_robots_txt_is_obeyed_unless_overridden(replica: ReplicaServer, tmp_path: Path) -> None:
    disallowed = f"tiktok={replica.url}/tiktok/private"
    replica.reset_hits()
    result = crawl(replica, tmp_path / "obey", "tiktok", "anytag",
                   extra=("--base-url", disallowed))
    assert result.code == 1
    assert outcomes(tmp_path / "obey")[("tiktok", "anytag")] == "robots_disallowed"
    assert not any("private" in kind for (_p, kind) in replica.hits_snapshot())

    result = crawl(replica, tmp_path / "ignore", "tiktok", "anytag",
                   extra=("--base-url", disallowed, "--ignore-robots"))
    assert any("private" in kind for (_p, kind) in replica.hits_snapshot())


def test_no_browser_names_tags_that_need_it(replica: ReplicaServer, tmp_path: Path) -> None:
    result = crawl(replica, tmp_path, "xiaohongshu", "tiktokrefugee", extra=("--no-browser",))
    assert result.code == 1
    assert outcomes(tmp_path)[("xiaohongshu", "tiktokrefugee")] == "unsupported"


HOSTILE_TAGS = ("../../x", "a/b", "%2F..%2F", "..", "C:\\evil", "tag?x=1#y", "$(touch pwned)")


def test_hostile_tags_never_write_outside_out(replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for tag in HOSTILE_TAGS:
        replica.world.set_variant("tiktok", tag, "ssr")
    result = crawl(replica, out, "tiktok", *HOSTILE_TAGS)
    assert result.code in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    outside = [p for p in tmp_path.rglob("*") if out not in p.parents and p != out]
    assert outside == []
    assert not (ROOT / "pwned").exists()
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
        # partition directories hold only safe, known values
        for part in path.relative_to(out).parts[1:-1]:
            key, _, value = part.partition("=")
            assert key in ("platform", "date"), part
            assert value.replace("-", "").isalnum(), part
    # the hostile text is data, kept verbatim in a column
    stored = {r["tag"] for r in snapshots(out)}
    assert "../../x" in stored
    assert "$(touch pwned)" in stored


def test_a_killed_crawl_keeps_what_the_timed_flush_wrote(replica: ReplicaServer,
                                                         tmp_path: Path) -> None:
    """Rows are flushed every TAGARCHIVE_FLUSH_SECONDS, so SIGKILL loses at most one interval."""
    replica.world.set_variant("tiktok", "quick", "ssr")
    replica.world.set_variant("tiktok", "stalled", "rate_limited", times=1, retry_after=60)
    args = [sys.executable, "-m", "crawler.cli", "crawl", "tiktok", "quick", "stalled",
            "--out", str(tmp_path), "--replica", replica.url, "--delay", "0",
            "-s", "TAGARCHIVE_FLUSH_SECONDS=0.5"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(tmp_path.glob("snapshots/**/*.parquet")):
            time.sleep(0.1)
        assert proc.poll() is None, "the crawl should still be waiting out Retry-After"
    finally:
        proc.kill()
        proc.wait()
    [row] = snapshots(tmp_path)
    assert row["tag"] == "quick"
    assert not list(tmp_path.glob("runs/**/*.parquet"))  # the run never finished
    # what is published is complete: the archive file the row points to was published first
    assert (tmp_path / row["archive_file"]).is_file()
    warcs = [str(p) for p in tmp_path.glob("archive/**/*.warc.gz")]
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", *warcs],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    published = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith(".")
                 and ".tagarchive" not in p.parts]
    assert all(p.name.endswith((".parquet", ".warc.gz")) for p in published), published
