"""Bilibili, Weibo and Mastodon end to end against the replica's real variants (issue 13).

The replica serves what real captures showed: Bilibili video dynamics whose `desc` is null (their
text only in `major.archive`), a Weibo super-topic summary "阅读…　帖子…　粉丝…" with full-width
spaces, and a Mastodon-API server that keeps no tag history (GoToSocial's `history: []`) or
answers a Tag id "". Stored values are compared with the replica's ground truth.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import duckdb

from crawler.text.counts import parse_count
from replica.bilibili import BilibiliApp
from replica.server import ReplicaServer
from replica.weibo import WeiboApp
from replica.world import display_count
from tests.backfill_helpers import SINCE, UNTIL, backfill, posts
from tests.crawl_helpers import crawl, outcomes, snapshots


def _activity(out: Path) -> list[dict]:
    files = list(out.glob("activity/**/*.parquet"))
    if not files:
        return []
    rel = duckdb.sql(f"select * from read_parquet('{out}/activity/**/*.parquet', "
                     "hive_partitioning=true)")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _display(n: int) -> tuple[int, str]:
    """The value and semantics a count shown as display text is stored with."""
    shown = parse_count(display_count(n))
    return shown.value, "rounded" if shown.approximate else "exact"


def test_bilibili_video_dynamics_keep_their_text(replica: ReplicaServer,
                                                 tmp_path: Path) -> None:
    """Half the feed's 动态 are videos, half of those with `desc: null`: every post's text is
    the truth's, and a video's plays are its display text, stored as rounded."""
    result = backfill(replica, tmp_path, "bilibili", "旅行")
    assert result.code == 0, result.stderr
    app = BilibiliApp(replica.world)
    start = datetime.combine(SINCE, time(), UTC)
    end = datetime.combine(UNTIL + timedelta(days=1), time(), UTC)
    truth = {p.id: p for p in replica.world.timeline("bilibili", "旅行", until=end,
                                                      since=start, limit=100_000)}
    stored = {p["post_id"]: p for p in posts(tmp_path)}
    videos = [i for i in stored if app.is_video(truth[i])]
    no_desc = [i for i in videos if not app.video_has_desc(truth[i])]
    assert no_desc, "the walk met no video dynamic without desc"
    assert len(videos) < len(stored), "the walk met no text dynamic"
    for post_id, row in stored.items():
        assert row["text"] == truth[post_id].text, post_id
    for post_id in videos:
        assert (stored[post_id]["plays"], stored[post_id]["plays_semantics"]) == _display(
            truth[post_id].plays), post_id
    assert all(stored[i]["plays"] is None for i in stored if i not in videos)


def test_weibo_super_topic_by_id(replica: ReplicaServer, tmp_path: Path) -> None:
    """阅读 and 帖子 are stored from the summary; 粉丝 (followers) is no counter."""
    world = replica.world
    topic = world.topic("weibo", "猫咪日常")
    assert topic.topic_id.startswith("100808")
    summary = WeiboApp(world).super_summary(topic)
    assert "\u3000帖子" in summary
    assert "\u3000粉丝" in summary
    result = crawl(replica, tmp_path, "weibo", f"id:{topic.topic_id}")
    assert result.code == 0, result.stderr[-3000:]
    [row] = snapshots(tmp_path)
    assert row["tag_id"] == topic.topic_id
    assert row["tag_display"] == topic.name
    assert (row["views"], row["views_semantics"]) == _display(topic.views)
    assert (row["posts"], row["posts_semantics"]) == _display(topic.posts)
    assert row["participants"] is None
    assert row["discussions"] is None
    assert row["visibility_cap"] == 500
    # the first post is shown twice (a "评论微博了" card), and stored once
    shown = world.posts_for("weibo", "猫咪日常", limit=10)
    stored = [p["post_id"] for p in posts(tmp_path)]
    assert sorted(stored) == sorted(p.id for p in shown)
    assert row["posts_seen"] == len(shown)


def test_mastodon_server_without_history_stores_no_counts(replica: ReplicaServer,
                                                          tmp_path: Path) -> None:
    """GoToSocial's `history: []` is no history: the snapshot is stored without posts and
    participants, a caveat says why, no activity rows; a Tag id "" is stored as no id."""
    world = replica.world
    world.set_variant("mastodon", "nohistory", "history_stub")
    world.set_variant("mastodon", "norow", "tag_without_row")
    result = crawl(replica, tmp_path, "mastodon", "nohistory", "norow")
    assert result.code == 0, result.stderr[-3000:]
    assert outcomes(tmp_path) == {("mastodon", "nohistory"): "stored",
                                  ("mastodon", "norow"): "stored"}
    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    stub = rows["nohistory"]
    assert (stub["posts"], stub["participants"]) == (None, None)
    assert (stub["posts_semantics"], stub["participants_semantics"]) == (None, None)
    assert stub["caveats"][0].startswith("posts, participants: the server keeps no tag history")
    assert stub["tag_id"] is None
    assert stub["posts_seen"] == len(world.posts_for("mastodon", "nohistory", limit=40))
    days = [r for r in _activity(tmp_path) if r["tag"] == "nohistory"]
    assert days == []
    kept = rows["norow"]
    assert kept["tag_id"] is None
    daily = world.daily("mastodon", "norow", days=7)
    assert kept["posts"] == sum(d.posts for d in daily)
    assert kept["posts_semantics"] == "window"
    assert kept["window_start"] == min(d.day for d in daily)
    assert kept["window_end"] == max(d.day for d in daily) + timedelta(days=1)
    norow_days = [r for r in _activity(tmp_path) if r["tag"] == "norow"]
    assert {(r["posts_semantics"], r["participants_semantics"]) for r in norow_days} == {
        ("exact", "rounded")}

