"""TikTok and Instagram as captured in the wild (issue 13): what each number is, and every shape.

TikTok's integers are display-rounded, its videoCount of 0 beside views is a glitch, a tag page
lists a few hundred videos at most; Instagram answers a hashtag in three forms, lays top posts
out in clips and fill items, and saturates media_count at 2^31-1. Each is checked on the real
captures (tests/fixtures/real/) and end to end against the replica's ground truth.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crawler.platforms.base import Blocked, LayoutChanged, Page, TagResult
from crawler.platforms.instagram import Instagram, media_count
from crawler.platforms.tiktok import TikTok, parse_detail, tag_counters
from crawler.platforms.timeline import TimelinePage
from crawler.text.tags import TagRef
from replica.server import ReplicaServer
from replica.tiktok import tiktok_rounded
from tests.crawl_helpers import crawl, run_cli, snapshots
from tests.fixture_helpers import FIXTURES, REAL, load_case
from tests.fixtures.regenerate import OBSERVED_AT

GLITCH = "posts: videoCount 0 beside viewCount > 0 (known TikTok glitch, not a count)"
CEILING = 2147483647
SESSIONID = "ig-sessionid-0c9e4a71b2"


def _page(body: Any, url: str = "https://www.tiktok.com/api/challenge/detail/") -> Page:
    text = body if isinstance(body, str) else json.dumps(body)
    return Page(url=url, status=200, headers={}, text=text, observed_at=OBSERVED_AT)


def _detail(stats: dict[str, Any] | None = None,
            stats_v2: dict[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"challenge": {"id": "229207", "title": "fyp"}}
    if stats is not None:
        info["stats"] = stats
    if stats_v2 is not None:
        info["statsV2"] = stats_v2
    return {"statusCode": 0, "challengeInfo": info}


# --- TikTok: what the numbers are ------------------------------------------------------------


def test_tiktok_view_count_is_rounded_and_a_video_count_beside_it_too() -> None:
    """#jeopardy 2021: viewCount 179900000 beside "179.0m views", videoCount 9833."""
    snap = parse_detail(_detail({"videoCount": 9833, "viewCount": 179900000}), _page("{}"),
                        source="api", items=[]).snapshot
    assert (snap["views"], snap["views_semantics"]) == (179900000, "rounded")
    assert (snap["posts"], snap["posts_semantics"]) == (9833, "rounded")
    assert "caveats" not in snap


@pytest.mark.parametrize(("stats", "said"), [
    ({"videoCount": 0, "viewCount": 67764100000000}, "videoCount 0"),  # TikTokPy#88, 2024
    ({"viewCount": 3200000000}, "no videoCount"),                    # videoCount missing
])
def test_tiktok_zero_or_missing_video_count_beside_views_is_null_with_a_caveat(
        stats: dict[str, int], said: str) -> None:
    snap = parse_detail(_detail(stats), _page("{}"), source="api", items=[]).snapshot
    assert snap["posts"] is None
    assert "posts_semantics" not in snap
    assert snap["caveats"] == [f"posts: {said} beside viewCount > 0 "
                               "(known TikTok glitch, not a count)"]
    assert snap["views"] == stats["viewCount"]


def test_tiktok_glitch_is_read_in_statsv2_strings_too() -> None:
    counters = tag_counters("5314600000000", "0", posts_given=True)
    assert counters["posts"] is None
    assert counters["caveats"] == [GLITCH]
    assert counters["views_semantics"] == "rounded"


def test_tiktok_zero_videos_and_zero_views_is_a_zero_not_a_glitch() -> None:
    counters = tag_counters(0, 0, posts_given=True)
    assert (counters["posts"], counters["posts_semantics"]) == (0, "rounded")
    assert "caveats" not in counters


def test_tiktok_statsv2_only_counters_are_rounded_too() -> None:
    """No capture shows a challenge's statsV2; on items it repeats the rounded figure, so a
    statsV2-only tag is stored as rounded as well [INF]."""
    snap = parse_detail(_detail(None, {"videoCount": "1143000", "viewCount": "468200000"}),
                        _page("{}"), source="api", items=[]).snapshot
    assert (snap["views"], snap["views_semantics"]) == ("468200000", "rounded")
    assert (snap["posts"], snap["posts_semantics"]) == ("1143000", "rounded")


def test_tiktok_post_counters_are_rounded_in_stats_and_statsv2_alike() -> None:
    """2025 capture: statsV2 "866000"/"14200000" repeat stats 866000/14200000."""
    case = REAL / "tiktok" / "api_user_popular_posts_2025_statsv2"
    item = json.loads((case / "body.json").read_text())["itemList"][0]
    item_v2_only = {**item, "stats": {}}
    page = _page({"statusCode": 0, "itemList": [item, item_v2_only], "hasMore": False})
    got = TikTok().handle("backfill_item_list", page, TagRef("china", None), {})
    assert isinstance(got, TimelinePage)
    first, second = got.posts
    assert (first["likes"], first["plays"]) == (866000, 14200000)
    assert (second["likes"], second["plays"]) == ("866000", "14200000")
    for post in got.posts:
        assert {post[f"{c}_semantics"] for c in ("likes", "comments", "shares", "plays")} == {
            "rounded"}


def test_tiktok_every_snapshot_carries_the_tag_page_cap() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "tiktok" / "ssr")
    result = TikTok("http://replica.test/tiktok").handle(step, page, tag, state)
    assert isinstance(result, TagResult)
    assert result.snapshot["visibility_cap"] == TikTok.visibility_cap == 500
    assert result.snapshot["posts_seen"] == len(result.posts) > 0


def test_tiktok_rendered_dom_fallback_counts_the_videos_it_saw() -> None:
    _, tag, _step, _state, page = load_case(FIXTURES / "tiktok" / "csr_rendered")
    result = TikTok("http://replica.test/tiktok").handle("rendered", replace(page, captured=()),
                                                          tag, {})
    assert isinstance(result, TagResult)
    assert result.snapshot["posts_seen"] == page.text.count('data-e2e="challenge-item"')
    assert result.snapshot["visibility_cap"] == 500


@pytest.mark.parametrize(("text", "error"), [
    ("", Blocked), ("not json", LayoutChanged), ("[1, 2]", LayoutChanged)])
def test_tiktok_api_body_steps_name_what_they_met(text: str, error: type[Exception]) -> None:
    for step in ("challenge_detail", "backfill_item_list"):
        with pytest.raises(error):
            TikTok().handle(step, _page(text), TagRef("fyp", None), {})


def test_tiktok_item_list_without_items_is_a_layout_change() -> None:
    with pytest.raises(LayoutChanged, match="neither itemList nor items"):
        TikTok().handle("backfill_item_list", _page({"statusCode": 0}), TagRef("fyp", None), {})


@pytest.mark.parametrize(("truth", "shown"), [
    (8297, 8297), (9833, 9833),                      # whole below 10,000
    (85_712, 85_700), (865_951, 866_000),            # hundreds below a million
    (179_912_345, 179_900_000), (5_314_600_012_345, 5_314_600_000_000)])
def test_replica_rounds_tiktok_counters_as_the_captures_show(truth: int, shown: int) -> None:
    assert tiktok_rounded(truth) == shown


# --- Instagram: every form, every layout, the ceiling ---------------------------------------


def _web_info(body: dict[str, Any]) -> Any:
    page = Page(url="https://www.instagram.com/api/v1/tags/web_info/?tag_name=x", status=200,
                headers={}, text=json.dumps(body), observed_at=OBSERVED_AT)
    return Instagram().handle("web_info", page, TagRef("x", None), {})


def _media(pk: str) -> dict[str, Any]:
    return {"media": {"pk": pk, "code": f"C{pk}", "taken_at": 1775651897,
                      "user": {"pk": "375121505", "username": "u"}, "like_count": 300}}


def test_instagram_reads_the_app_endpoint_top_level_form() -> None:
    body = json.loads((REAL / "instagram" / "tags_info_goodvibes_app_toplevel" /
                       "body.json").read_text())
    snap = _web_info(body).snapshot
    assert (snap["posts"], snap["posts_text"], snap["tag_id"]) == (
        162975566, "162M", "17843714881031175")


def test_instagram_top_level_without_media_count_is_a_layout_change() -> None:
    with pytest.raises(LayoutChanged):
        _web_info({"id": "1", "name": "x", "status": "ok"})


def test_instagram_reads_clips_fill_items_and_medias_once_each() -> None:
    """instagrapi PR #2622: one_by_two_item.clips.items, then fill_items, then medias."""
    section = {"layout_type": "one_by_two_left", "layout_content": {
        "one_by_two_item": {"clips": {"items": [_media("1"), _media("2")]}},
        "fill_items": [_media("3"), _media("4")]}}
    grid = {"layout_type": "media_grid", "layout_content": {"medias": [_media("5"),
                                                                       _media("3")]}}
    body = {"data": {"id": 1, "name": "x", "media_count": 10, "top": {
        "sections": [section, grid]}}, "status": "ok"}
    posts = _web_info(body).posts
    assert [p["post_id"] for p in posts] == ["1", "2", "3", "4", "5"]


def test_instagram_saturated_media_count_is_a_cap_not_a_count() -> None:
    """#love answers media_count 2147483647, "2.1B": the 32-bit ceiling."""
    snap = _web_info({"id": "17843826142012701", "name": "love", "media_count": CEILING,
                      "formatted_media_count": "2.1B", "status": "ok"}).snapshot
    assert snap["posts"] is None
    assert (snap["posts_semantics"], snap["posts_text"]) == ("capped", str(CEILING))
    assert snap["caveats"] == ["posts: media_count 2147483647 is Instagram's 32-bit ceiling "
                               "(2^31-1), shown as '2.1B', not a count"]


def test_instagram_one_below_the_ceiling_is_still_a_count() -> None:
    assert media_count(CEILING - 1, None) == {"posts": CEILING - 1}


# --- end to end: the CLI against the replica's real variants --------------------------------


def test_tiktok_real_counters_end_to_end(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    for tag in ("rounded", "fyp"):
        world.set_variant("tiktok", tag, "ssr")
    world.set_variant("tiktok", "rounded", "rounded_counts")
    result = crawl(replica, tmp_path, "tiktok", "rounded", "fyp")
    assert result.code == 0, result.stderr[-3000:]
    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    for tag, row in rows.items():
        truth = world.topic("tiktok", tag)
        step = 100_000 if truth.views >= 1_000_000 else 100
        assert abs(row["views"] - truth.views) <= step // 2, tag
        assert row["views"] % step == 0
        assert row["views_semantics"] == "rounded"
        assert row["visibility_cap"] == 500
        assert row["posts_seen"] > 0
    truth = world.topic("tiktok", "rounded")
    assert abs(rows["rounded"]["posts"] - truth.posts) <= 50_000
    assert rows["rounded"]["posts_semantics"] == "rounded"
    assert list(rows["rounded"]["caveats"] or []) == []
    fyp = rows["fyp"]
    assert world.topic("tiktok", "fyp").posts > 0
    assert (fyp["posts"], fyp["posts_semantics"]) == (None, None)
    assert list(fyp["caveats"]) == [GLITCH]


def test_instagram_real_shapes_end_to_end(replica: ReplicaServer, tmp_path: Path) -> None:
    world = replica.world
    world.set_variant("instagram", "appform", "app_info")
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f"#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\t{SESSIONID}\n")
    out = tmp_path / "out"
    result = run_cli("crawl", "instagram", "love", "appform", "tiktokrefugee", "--out",
                     str(out), "--replica", replica.url, "--delay", "0", "--concurrency", "4",
                     "--session", f"instagram={jar}")
    assert result.code == 0, result.stderr[-3000:]
    rows = {r["tag"]: r for r in snapshots(out)}
    love = rows["love"]
    assert world.topic("instagram", "love").posts > CEILING
    assert (love["posts"], love["posts_semantics"], love["posts_text"]) == (
        None, "capped", str(CEILING))
    assert list(love["caveats"])[0].startswith("posts: media_count 2147483647")
    app = rows["appform"]
    truth = world.topic("instagram", "appform")
    assert (app["posts"], app["posts_semantics"], app["tag_id"]) == (
        truth.posts, "exact", truth.topic_id)
    assert app["posts_seen"] == 0  # the app form carries no sections
    rel = duckdb.sql(
        f"select post_id from read_parquet('{out}/posts/**/*.parquet', hive_partitioning=true)"
        " where tag = 'tiktokrefugee'")
    assert rel is not None
    stored = {r[0] for r in rel.fetchall()}
    top = world.posts_for("instagram", "tiktokrefugee", limit=9, order="mixed")
    recent = world.posts_for("instagram", "tiktokrefugee", limit=12, order="newest")
    # the clip and the fill items of the one_by_two_left section are stored with the grid's
    assert {p.id for p in top[:3]} <= stored
    assert stored == {p.id for p in top} | {p.id for p in recent}
    assert rows["tiktokrefugee"]["posts_seen"] == len(stored)
