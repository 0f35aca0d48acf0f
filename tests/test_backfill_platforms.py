"""Three-week backfills of every timeline platform against the replica's ground truth.

Chronological, uncapped listings (Mastodon in test_backfill_resume.py, Bluesky, Bilibili,
Weibo) must reproduce the World's posts and distinct authors per day exactly and say so
(`complete`); ranked, capped feeds (TikTok, Xiaohongshu) must count exactly what the feed
showed and say it is a `lower_bound`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from replica.server import ReplicaServer
from tests.backfill_helpers import backfill, posts, ranked_truth, stored_days, truth

BLUESKY_LOGIN = {"TAGARCHIVE_BLUESKY_HANDLE": "backfill.bsky.social",
                 "TAGARCHIVE_BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"}


def _complete(out: Path, expected: dict[date, tuple[int, int]]) -> None:
    days = stored_days(out)
    assert {d: v[:2] for d, v in days.items()} == expected
    assert {v[2] for v in days.values()} == {"complete"}
    stored = [p["post_id"] for p in posts(out)]
    assert len(stored) == len(set(stored)) == sum(v[0] for v in expected.values())


def test_bluesky_walks_past_the_per_query_cap(replica: ReplicaServer, tmp_path: Path) -> None:
    # about 2,900 posts: three queries, each stopped by the replica's 1,000-result cursor cap
    result = backfill(replica, tmp_path, "bluesky", "space", env=BLUESKY_LOGIN)
    assert result.code == 0, result.stderr
    assert "21/21 days complete" in result.stdout
    _complete(tmp_path, truth(replica, "bluesky", "space"))


def test_bilibili_cards_newest_first(replica: ReplicaServer, tmp_path: Path) -> None:
    result = backfill(replica, tmp_path, "bilibili", "旅行")
    assert result.code == 0, result.stderr
    _complete(tmp_path, truth(replica, "bilibili", "旅行"))
    assert {p["tag"] for p in posts(tmp_path)} == {"旅行"}


def _weibo_session(tmp_path: Path) -> str:
    jar = tmp_path / "weibo-cookies.txt"
    jar.write_text(".weibo.com\tTRUE\t/\tTRUE\t0\tSUB\t_2A25backfillsubcookie\n")
    return f"weibo={jar}"


def test_weibo_day_by_day(replica: ReplicaServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = backfill(replica, out, "weibo", "cats", "--session", _weibo_session(tmp_path))
    assert result.code == 0, result.stderr
    _complete(out, truth(replica, "weibo", "cats"))


def test_weibo_day_over_the_50_page_cap_is_split_into_hours(replica: ReplicaServer,
                                                            tmp_path: Path) -> None:
    day = date(2024, 12, 24)  # 676 posts: more than 50 pages of 10
    expected = truth(replica, "weibo", "weather", day, day)
    assert expected[day][0] > 500
    out = tmp_path / "out"
    result = backfill(replica, out, "weibo", "weather", "--session", _weibo_session(tmp_path),
                      since=day, until=day)
    assert result.code == 0, result.stderr
    _complete(out, expected)


def test_tiktok_ranked_feed_is_a_lower_bound(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "cooking", "ssr")
    result = backfill(replica, tmp_path, "tiktok", "cooking")
    assert result.code == 0, result.stderr
    days = stored_days(tmp_path)
    shown = ranked_truth(replica, "tiktok", "cooking")
    assert {d: v[:2] for d, v in days.items()} == shown
    assert {v[2] for v in days.values()} == {"lower_bound"}
    complete = truth(replica, "tiktok", "cooking")
    assert all(shown[d][0] <= complete[d][0] for d in shown)
    assert sum(v[0] for v in shown.values()) < sum(v[0] for v in complete.values())


def test_xiaohongshu_ranked_feed_is_a_lower_bound(replica: ReplicaServer,
                                                  tmp_path: Path) -> None:
    result = backfill(replica, tmp_path, "xiaohongshu", "旅行")
    assert result.code == 0, result.stderr
    days = stored_days(tmp_path)
    assert {d: v[:2] for d, v in days.items()} == ranked_truth(replica, "xiaohongshu", "旅行")
    assert {v[2] for v in days.values()} == {"lower_bound"}
    assert sum(v[0] for v in days.values()) > 100  # fifteen scrolled pages, not the first one
