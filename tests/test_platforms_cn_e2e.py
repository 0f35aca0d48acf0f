"""Douyin, Weibo and Bilibili end to end: the CLI in its own process against the replica.

One crawl per platform carries its good tags and every failure variant, so each platform costs
one subprocess; stored values are compared with the replica's ground truth.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from crawler.text.counts import parse_count
from replica.server import ReplicaServer
from replica.world import display_count
from tests.crawl_helpers import crawl, outcomes, run_record, snapshots


def _rows(out: Path) -> dict[str, dict]:
    return {r["tag"]: r for r in snapshots(out)}


def _failures_named(result_stderr: str, platform: str, expected: dict[str, str]) -> None:
    for tag, status in expected.items():
        if status != "stored":
            assert f"tagarchive: {platform} {tag}: {status}:" in result_stderr, (tag, status)
    assert "Traceback" not in result_stderr


def test_bilibili_by_id_and_name_and_every_failure(replica: ReplicaServer,
                                                   tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("bilibili", "walled", "login_wall")
    world.set_variant("bilibili", "verify", "captcha")
    world.set_variant("bilibili", "blockedip", "ip_block")
    world.set_variant("bilibili", "moved", "layout_changed")
    world.set_variant("bilibili", "slowdown", "rate_limited", times=50, retry_after=3600)
    world.set_variant("bilibili", "busytag", "rate_limited", times=1, retry_after=1)
    world.set_variant("bilibili", "bigtopic", "override", views=9_876_543_210)
    refugee = world.topic("bilibili", "TikTok难民")
    genshin = world.topic("bilibili", "原神")  # by id; one topic twice would be a duplicate
    result = crawl(replica, tmp_path, "bilibili", "id:8995", f"id:{genshin.topic_id}",
                   "TikTok难民", "busytag", "bigtopic", "nosuchtopic", "id:1", "walled",
                   "verify", "blockedip", "moved", "slowdown",
                   # each failure of a platform named in one run: no breaker cooling it off
                   extra=("-s", "TAGARCHIVE_BREAKER_ENABLED=False"))
    assert result.code == 1, result.stderr[-3000:]
    expected = {
        "id:8995": "stored", f"id:{genshin.topic_id}": "stored", "tiktok难民": "stored",
        "busytag": "stored",  # one 429, then served after its Retry-After
        "bigtopic": "stored",
        "nosuchtopic": "not_found",  # topic search lists no such name
        "id:1": "not_found",  # details/top code 4401031
        "walled": "login_wall", "verify": "captcha", "blockedip": "blocked",
        "moved": "layout_changed", "slowdown": "rate_limited",
    }
    got = {tag: status for (platform, tag), status in outcomes(tmp_path).items()
           if platform == "bilibili"}
    assert got == expected
    _failures_named(result.stderr, "bilibili", expected)

    rows = snapshots(tmp_path)
    # the done-when check: the real details/top sample, asked for as id:8995
    [record] = [r for r in rows if r["tag_id"] == "8995"]
    assert record["views"] == 488_338_287
    assert record["discussions"] == 642_172
    assert record["posts"] == 38_483
    assert record["tag"] == "寒假不咕咕"
    assert record["source"] == "api"
    assert record["url"] == "https://m.bilibili.com/topic-detail?topic_id=8995"
    assert record["views_semantics"] == "exact"
    assert record["discussions_semantics"] == "exact"
    # by id and by name: exact integers equal to the ground truth
    for truth in (refugee, genshin):
        [row] = [r for r in rows if r["tag_id"] == truth.topic_id]
        assert (row["views"], row["posts"], row["discussions"]) == (
            truth.views, truth.posts, truth.discussions)
        assert row["participants"] is None  # Bilibili shows no participant count
        assert row["tag_display"] == truth.name
    [big] = [r for r in rows if r["tag"] == "bigtopic"]
    assert big["views"] == 9_876_543_210
    busy = world.topic("bilibili", "busytag")
    assert [r["views"] for r in rows if r["tag"] == "busytag"] == [busy.views]
    assert len(rows) == 5
    assert run_record(tmp_path)["verdict"] == "failed"


def _posts(out: Path, platform: str) -> list[dict]:
    rel = duckdb.sql(f"select * from read_parquet('{out}/posts/**/*.parquet', "
                     f"hive_partitioning=true) where platform = '{platform}'")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def test_weibo_topic_counts_posts_and_every_failure(replica: ReplicaServer,
                                                    tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("weibo", "tiktokrefugee", "override", views=230_000_000, discussions=45_000)
    world.set_variant("weibo", "小众话题", "override", views=9999, discussions=12)
    world.set_variant("weibo", "walled", "login_wall")
    world.set_variant("weibo", "verify", "captcha")
    world.set_variant("weibo", "blockedip", "ip_block")
    world.set_variant("weibo", "moved", "layout_changed")
    world.set_variant("weibo", "slowdown", "rate_limited", times=50, retry_after=3600)
    world.set_variant("weibo", "busytag", "rate_limited", times=1, retry_after=1)
    # --privacy keep: the authors are compared with the truth as the page showed them
    result = crawl(replica, tmp_path, "weibo", "#TikTok难民#", "tiktokrefugee", "小众话题",
                   "busytag", "nosuchtopic", "walled", "verify", "blockedip", "moved",
                   "slowdown", "id:12345",
                   extra=("--privacy", "keep", "-s", "TAGARCHIVE_BREAKER_ENABLED=False"))
    assert result.code == 1, result.stderr[-3000:]
    expected = {
        "tiktok难民": "stored", "tiktokrefugee": "stored", "小众话题": "stored",
        "busytag": "stored", "nosuchtopic": "not_found",  # {"ok":0,"msg":"这里还没有内容"}
        "walled": "login_wall",  # {"ok":-100, "url": passport…/signin}
        "verify": "captcha",  # redirect to the Sina Visitor System
        "blockedip": "blocked",  # HTTP 432
        "moved": "layout_changed", "slowdown": "rate_limited",
        "id:12345": "unsupported",  # Weibo topics have names only
    }
    got = {tag: status for (platform, tag), status in outcomes(tmp_path).items()
           if platform == "weibo"}
    assert got == expected
    _failures_named(result.stderr, "weibo", expected)

    rows = _rows(tmp_path)
    assert set(rows) == {t for t, s in expected.items() if s == "stored"}
    # the midtext of PLATFORMS §4: "阅读2.3亿 讨论4.5万", stored as approximate values
    sample = rows["tiktokrefugee"]
    assert (sample["views"], sample["views_text"], sample["views_semantics"]) == (
        230_000_000, "2.3亿", "rounded")
    assert (sample["discussions"], sample["discussions_text"], sample["discussions_semantics"]) == (
        45_000, "4.5万", "rounded")
    # under 1万 the display is the exact number, and is stored as exact
    small = rows["小众话题"]
    assert (small["views"], small["views_semantics"], small["views_text"]) == (9999, "exact", None)
    assert (small["discussions"], small["discussions_semantics"]) == (12, "exact")
    for tag in ("tiktok难民", "busytag"):
        truth, row = world.topic("weibo", tag), rows[tag]
        assert row["views_text"] == display_count(truth.views)
        assert row["views"] == parse_count(display_count(truth.views)).value
        assert row["discussions"] == parse_count(display_count(truth.discussions)).value
        assert row["posts"] is None
        assert row["participants"] is None
        assert row["tag_id"] is None
        assert row["source"] == "api"
    assert rows["tiktok难民"]["tag_display"] == "TikTok难民"

    # posts: the first page's mblogs, flat and grouped, with parsed created_at
    posts = [p for p in _posts(tmp_path, "weibo") if p["tag"] == "tiktok难民"]
    truth_posts = {p.id: p for p in world.posts_for("weibo", "TikTok难民", limit=10)}
    assert {p["post_id"] for p in posts} == set(truth_posts)
    for post in posts:
        truth = truth_posts[post["post_id"]]
        assert post["created_at"] == truth.created_at
        assert (post["likes"], post["comments"], post["shares"]) == (
            truth.likes, truth.comments, truth.shares)
        assert post["text"] == truth.text
        assert post["author_name"] == truth.author_nickname


def test_douyin_rendered_and_signed_by_name_and_id(replica: ReplicaServer,
                                                   tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("douyin", "美食", "override", views=9_876_543_210)  # beyond 2^32
    world.set_variant("douyin", "walled", "login_wall")
    world.set_variant("douyin", "verify", "captcha")
    world.set_variant("douyin", "blockedip", "ip_block")
    world.set_variant("douyin", "moved", "layout_changed")
    world.set_variant("douyin", "slowdown", "rate_limited", times=50, retry_after=3600)
    world.set_variant("douyin", "busytag", "rate_limited", times=1, retry_after=1)
    food = world.topic("douyin", "美食")
    result = crawl(replica, tmp_path, "douyin", "TikTok难民", f"id:{food.topic_id}", "busytag",
                   "nosuchtopic", "id:1", "walled", "verify", "blockedip", "moved", "slowdown",
                   # rendered (tests/test_signing_e2e.py fetches them in a signing page)
                   extra=("-s", "TAGARCHIVE_BREAKER_ENABLED=False",
                          "-s", "TAGARCHIVE_SIGNING_ENABLED=0"))
    assert result.code == 1, result.stderr[-3000:]
    expected = {
        "tiktok难民": "stored", f"id:{food.topic_id}": "stored",
        "busytag": "stored",  # the search page answered 429 once
        "nosuchtopic": "not_found",  # challenge search lists no such name
        "id:1": "not_found",  # challenge/detail ch_info null
        "walled": "login_wall",  # status_code 8
        "verify": "captcha",  # 验证码中间页
        "blockedip": "blocked",  # the API answered "blocked"
        "moved": "layout_changed", "slowdown": "rate_limited",
    }
    got = {tag: status for (platform, tag), status in outcomes(tmp_path).items()
           if platform == "douyin"}
    assert got == expected
    _failures_named(result.stderr, "douyin", expected)

    rows = _rows(tmp_path)
    assert set(rows) == {"tiktok难民", "美食", "busytag"}
    for tag in rows:
        truth, row = world.topic("douyin", tag), rows[tag]
        assert (row["views"], row["participants"]) == (truth.views, truth.participants)
        assert row["views_semantics"] == "exact"
        assert row["participants_semantics"] == "exact"
        assert row["tag_id"] == truth.topic_id
        assert row["tag_display"] == truth.name
        assert row["source"] == "captured_xhr"
        assert row["posts"] is None
    assert rows["美食"]["views"] == 9_876_543_210
    record = run_record(tmp_path)
    # every request is rendered: two pages for a name found (search, hashtag), one for an id
    # or a failure, and busytag's search page twice (its 429, then the retry)
    assert record["rendered_requests"] == 2 + 1 + 3 + 1 + 1 + 1 + 1 + 1 + 2 + 1

    posts = [p for p in _posts(tmp_path, "douyin") if p["tag"] == "tiktok难民"]
    truth_posts = {p.id: p for p in world.posts_for("douyin", "TikTok难民", limit=20)}
    assert {p["post_id"] for p in posts} == set(truth_posts)
    for post in posts:
        truth = truth_posts[post["post_id"]]
        assert post["created_at"] == truth.created_at
        assert post["text"] == truth.text
        assert (post["likes"], post["comments"], post["shares"]) == (
            truth.likes, truth.comments, truth.shares)
        assert post["plays"] is None  # the web API's play_count is always 0: not stored
