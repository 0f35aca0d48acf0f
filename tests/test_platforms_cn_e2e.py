"""Douyin, Weibo and Bilibili end to end: the CLI in its own process against the replica.

One crawl per platform carries its good tags and every failure variant, so each platform costs
one subprocess; stored values are compared with the replica's ground truth.
"""

from __future__ import annotations

from pathlib import Path

from replica.server import ReplicaServer
from tests.conftest import crawl
from tests.test_crawl_e2e import outcomes, run_record, snapshots


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
                   "verify", "blockedip", "moved", "slowdown")
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
    assert record["views"] == 488_338_287 and record["discussions"] == 642_172
    assert record["posts"] == 38_483
    assert record["tag"] == "寒假不咕咕" and record["source"] == "api"
    assert record["url"] == "https://m.bilibili.com/topic-detail?topic_id=8995"
    assert record["views_approx"] is False and record["discussions_approx"] is False
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
