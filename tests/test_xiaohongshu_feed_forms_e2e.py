"""Xiaohongshu end to end: the CLI against the replica serving each known form of the topic notes
feed (issue 13 §2), with stored values and their semantics checked against ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from crawler.text.counts import parse_count
from replica.server import ReplicaServer
from replica.world import display_count
from tests.crawl_helpers import crawl, outcomes, snapshots


def _posts(out: Path, tag: str) -> list[dict[str, Any]]:
    rel = duckdb.sql(f"select * from read_parquet('{out}/posts/**/*.parquet', "
                     f"hive_partitioning=true) where platform = 'xiaohongshu' and tag = '{tag}'")
    assert rel is not None
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def test_every_feed_form_stores_what_it_carries(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("xiaohongshu", "旅行", "notes_list_data")
    world.set_variant("xiaohongshu", "美食", "notes_recommend_path")
    world.set_variant("xiaohongshu", "穿搭", "notes_uncaptured")
    result = crawl(replica, tmp_path, "xiaohongshu", "TikTok难民", "旅行", "美食", "穿搭")
    assert result.code == 0, result.stderr[-3000:]
    assert set(outcomes(tmp_path).values()) == {"stored"}
    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    truth = {tag: world.topic("xiaohongshu", tag) for tag in rows}

    # the default form (the demo's 1.2亿 / 281.2万 at the anchor time: the topic_record fixture)
    record = rows["tiktok难民"]
    assert (record["views"], record["discussions"], record["participants"]) == (
        truth["tiktok难民"].views, truth["tiktok难民"].discussions,
        truth["tiktok难民"].participants)
    assert record["views_semantics"] == "exact"
    assert record["discussions_semantics"] == "exact"

    # the path the public sample names: the same totals, read there
    food = rows["美食"]
    assert (food["views"], food["discussions"], food["participants"]) == (
        truth["美食"].views, truth["美食"].discussions, truth["美食"].participants)
    assert food["participants_semantics"] == "exact"
    assert len(_posts(tmp_path, "美食")) > 0

    # the list form: posts and the search's view_num, no totals (and a caveat saying so)
    travel = rows["旅行"]
    assert (travel["views"], travel["views_semantics"]) == (truth["旅行"].views, "exact")
    assert travel["discussions"] is None
    assert travel["participants"] is None
    assert any("carries no totals" in c for c in travel["caveats"])
    travel_posts = _posts(tmp_path, "旅行")
    truth_posts = {p.id: p for p in world.posts_for("xiaohongshu", "旅行", limit=20,
                                                   order="mixed")}
    assert {p["post_id"] for p in travel_posts} == set(truth_posts)
    for post in travel_posts:
        assert post["likes"] == truth_posts[post["post_id"]].likes
        assert post["likes_semantics"] == "exact"

    # no feed captured: the exact view_num and the header's rounded discussions, not a failure
    outfit = rows["穿搭"]
    assert (outfit["views"], outfit["views_semantics"]) == (truth["穿搭"].views, "exact")
    shown = display_count(truth["穿搭"].discussions)
    assert outfit["discussions_text"] == shown
    assert outfit["discussions_semantics"] == "rounded"
    assert outfit["discussions"] == parse_count(shown).value
    assert outfit["participants"] is None
    assert any(c.startswith("discussions, participants: no topic notes feed")
               for c in outfit["caveats"])
    assert _posts(tmp_path, "穿搭") == []
