"""The pure parts of a backfill: the walk's counting and coverage, its files, and each
adapter's timeline step on hand-made pages (caps, splits, failures)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.platforms.base import Fetch, LayoutChanged, LoginWall, Page
from crawler.platforms.bilibili import parse_dynamic
from crawler.platforms.bluesky import Bluesky
from crawler.platforms.mastodon import Mastodon, next_max_id, snowflake_before
from crawler.platforms.timeline import TimelinePage, Window, timeline_refusal
from crawler.platforms.weibo import Weibo
from crawler.platforms.youtube import YouTube
from crawler.spiders.walks import Walk, WalkStore
from crawler.text.tags import TagRef

WINDOW = Window(date(2025, 1, 1), date(2025, 1, 3))
SEEN = datetime(2025, 1, 13, tzinfo=UTC)
BEFORE = datetime(2024, 12, 31, 23, tzinfo=UTC)  # an hour before --since


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


def post(post_id: str, created: datetime, author: str = "a") -> dict[str, Any]:
    return {"platform": "x", "post_id": post_id, "created_at": created, "author_id": author}


def page(text: str = "", status: int = 200, **headers: str) -> Page:
    return Page(url="http://replica.test/x", status=status, headers=headers, text=text,
                observed_at=SEEN)


def test_walk_counts_each_post_once_per_day_and_stops_past_the_window() -> None:
    walk = Walk("x", TagRef(name="t", id=None), WINDOW)
    more = Fetch(url="http://x/2", step="backfill")
    fresh, _ = walk.accept(TimelinePage(
        posts=[post("9", at(4)), post("3", at(3), "a"), post("2", at(3), "b")],
        next_fetch=more, oldest_seen=at(3)))
    assert [p["post_id"] for p in fresh] == ["3", "2"]  # the 4th is after the window
    assert walk.next_fetch is more
    assert not walk.done
    fresh, entries = walk.accept(TimelinePage(
        posts=[post("2", at(3), "b"), post("1", at(1), "b"), post("0", BEFORE)],
        next_fetch=more, oldest_seen=BEFORE))
    assert [p["post_id"] for p in fresh] == ["1"]  # "2" was counted already, "0" is before
    assert entries == [["1", "2025-01-01", "b"]]
    assert walk.done
    assert walk.next_fetch is None
    rows = walk.activity(SEEN, "api")
    assert [(r["day"], r["posts"], r["participants"], r["coverage"]) for r in rows] == [
        (date(2025, 1, 1), 1, 1, "complete"), (date(2025, 1, 2), 0, 0, "complete"),
        (date(2025, 1, 3), 2, 2, "complete")]


def test_ranked_listings_are_lower_bounds_and_caps_only_taint_their_days() -> None:
    ranked = Walk("x", TagRef(name="t", id=None), WINDOW)
    ranked.accept(TimelinePage(posts=[post("1", at(2))], oldest_seen=datetime(2024, 1, 1,
                                                                              tzinfo=UTC),
                               next_fetch=Fetch(url="http://x", step="backfill"), ranked=True))
    assert not ranked.done  # a ranked feed says nothing about time: it is walked to its end
    assert set(ranked.coverage().values()) == {"lower_bound"}
    capped = Walk("x", TagRef(name="t", id=None), WINDOW)
    capped.accept(TimelinePage(capped=True, capped_span=(at(2, 0), at(2, 1))))
    assert capped.coverage() == {date(2025, 1, 1): "complete", date(2025, 1, 2): "lower_bound",
                                 date(2025, 1, 3): "complete"}
    # an hour ending at midnight taints its own day, not the next
    edge = Walk("x", TagRef(name="t", id=None), WINDOW)
    edge.accept(TimelinePage(capped=True, capped_span=(at(1, 23), at(2, 0))))
    assert edge.coverage()[date(2025, 1, 2)] == "complete"


def test_store_resumes_from_the_last_state_and_drops_an_unacknowledged_page(
        tmp_path: Path) -> None:
    store = WalkStore(tmp_path, "x", "t", WINDOW)
    walk = Walk("x", TagRef(name="t", id=None), WINDOW,
                next_fetch=Fetch(url="http://x/1", step="backfill", body=b"\x00{}"))
    store.start(walk)
    _, entries = walk.accept(TimelinePage(posts=[post("1", at(1))],
                                          next_fetch=Fetch(url="http://x/2", step="backfill")))
    store.record(walk, entries)
    # a page journaled, then the process died before the state moved on
    with open(store.journal_path, "a") as handle:
        handle.write(json.dumps({"page": 2, "posts": [["2", "2025-01-02", "a"]]}) + "\n")
    again = store.resume()
    assert again.seen == {"1"}
    assert again.pages == 1
    assert again.next_fetch == Fetch(url="http://x/2", step="backfill")
    assert store.journal_path.read_text().count("\n") == 1
    assert not list(tmp_path.glob("posts"))
    assert store.directory.is_relative_to(tmp_path /
                                                                               ".tagarchive")


def test_refusal_names_the_reason() -> None:
    assert timeline_refusal(YouTube) == "continuations carry only relative 'x days ago' times"
    assert timeline_refusal(Mastodon) is None


def test_mastodon_max_id_from_a_timestamp_and_the_link_header() -> None:
    end = datetime(2025, 1, 13, tzinfo=UTC)
    assert int(snowflake_before(end)) >> 16 == 1736726400000
    link = ('<https://m.s/api/v1/timelines/tag/a?limit=40&max_id=113>; rel="next", '
            '<https://m.s/api/v1/timelines/tag/a?min_id=120>; rel="prev"')
    assert next_max_id(link) == "113"
    assert next_max_id("") is None
    last = Mastodon().on_backfill(page("[]", link=link), TagRef(name="a", id=None), {})
    assert last.posts == []
    assert last.next_fetch is None


def _bluesky_page(n: int, start: datetime, cursor: str | None = None) -> Page:
    views = [{"uri": f"at://did:plc:a/app.bsky.feed.post/{start.timestamp() - i:.0f}",
              "author": {"did": "did:plc:a", "handle": "a.bsky.social"},
              "record": {"text": "#t", "createdAt": (start - timedelta(seconds=i)).isoformat()}}
             for i in range(n)]
    body: dict[str, Any] = {"posts": views}
    if cursor:
        body["cursor"] = cursor
    return page(json.dumps(body))


def test_bluesky_asks_again_when_a_full_page_has_no_cursor() -> None:
    bsky = Bluesky("http://replica.test/bluesky")
    first = bsky.timeline_fetch(TagRef(name="t", id=None), WINDOW)
    assert "until=2025-01-04T00%3A00%3A00.000Z" in first.url
    paged = bsky.on_backfill(_bluesky_page(100, at(3), cursor="c1"), TagRef(name="t", id=None),
                             first.state)
    assert "cursor=c1" in paged.next_fetch.url
    restart = bsky.on_backfill(_bluesky_page(100, at(3)), TagRef(name="t", id=None), first.state)
    assert not restart.capped
    assert "cursor" not in restart.next_fetch.url
    assert restart.next_fetch.state["until"] == "2025-01-03T11:58:21.001Z"
    stuck = bsky.on_backfill(_bluesky_page(100, at(3)), TagRef(name="t", id=None),
                             restart.next_fetch.state | {"until": "2025-01-03T11:58:21.000Z"})
    assert stuck.capped
    assert stuck.next_fetch is None
    done = bsky.on_backfill(_bluesky_page(3, at(3)), TagRef(name="t", id=None), first.state)
    assert done.next_fetch is None
    assert not done.capped


def _weibo_html(cards: list[tuple[str, str]], pages: int, servertime: datetime) -> str:
    body = "".join(
        f'<div class="card-wrap" mid="{mid}"><div class="card"><div class="content">'
        '<div class="info"><div><a href="//weibo.com/123?refer_flag=1" class="name" '
        'nick-name="n">n</a></div></div><p class="txt" node-type="feed_list_content">#t# x</p>'
        f'<p class="from"><a href="//weibo.com/123/Abc?refer_flag=1">{when}</a></p></div></div>'
        '<a action-type="feed_list_forward">转发 3</a><a action-type="feed_list_comment">评论</a>'
        '<a action-type="feed_list_like"><em>7</em></a></div>' for mid, when in cards)
    items = "".join(f"<li><a>第{n}页</a></li>" for n in range(1, pages + 1))
    more = '<a class="next" href="/weibo?page=2">下一页</a>' if pages > 1 else ""
    return (f"<script>$CONFIG['servertime'] = {int(servertime.timestamp())};</script>"
            f'<div id="pl_feedlist_index">{body}<ul class="s-scroll">{items}</ul>{more}</div>')


def test_weibo_splits_a_full_day_into_hours_and_marks_a_full_hour_capped() -> None:
    weibo = Weibo("http://replica.test/weibo")
    tag = TagRef(name="t", id=None)
    first = weibo.timeline_fetch(tag, WINDOW)
    assert "timescope=custom:2025-01-03-8:2025-01-04-8" in first.url  # a UTC day, China hours
    full = weibo.on_backfill(page(_weibo_html([("1", "01月03日 20:00")], 50, SEEN)), tag,
                             first.state)
    assert full.posts == []
    assert len(full.next_fetch.state["slices"]) == 24 + 2
    assert "custom:2025-01-04-7:2025-01-04-8" in full.next_fetch.url  # the newest hour first
    hour = full.next_fetch.state
    capped = weibo.on_backfill(page(_weibo_html([("1", "01月04日 07:30")], 50, SEEN)), tag,
                               hour)
    assert capped.capped
    assert capped.capped_span == (at(3, 23), at(4, 0))
    assert capped.next_fetch.state["page"] == 2
    [card] = capped.posts
    assert card["created_at"] == datetime(2025, 1, 3, 23, 30, tzinfo=UTC)
    assert (card["shares"], card["comments"], card["likes"]) == (3, 0, 7)
    assert card["url"] == "https://weibo.com/123/Abc"
    assert card["author_id"] == "123"


def test_weibo_reads_relative_times_against_the_server_clock_and_names_failures() -> None:
    weibo = Weibo("http://replica.test/weibo")
    tag = TagRef(name="t", id=None)
    state = weibo.timeline_fetch(tag, WINDOW).state
    server = at(4, 0) + timedelta(minutes=20)  # the page was rendered 08:20 China time
    [card] = weibo.on_backfill(page(_weibo_html([("1", "25分钟前")], 1, server)), tag,
                               state).posts
    assert card["created_at"] == at(3, 23) + timedelta(minutes=55)
    with pytest.raises(LayoutChanged, match="outside its timescope"):
        weibo.on_backfill(page(_weibo_html([("1", "2024年01月03日 10:00")], 1, server)), tag,
                          state)
    signin = page(status=302, location="https://passport.weibo.com/sso/signin?entry=x")
    with pytest.raises(LoginWall, match="--session weibo="):
        weibo.on_backfill(signin, tag, state)


def test_bilibili_dynamic_without_a_publish_time_is_a_layout_change() -> None:
    card = {"dynamic_card_item": {"id_str": "123", "modules": {"module_author": {
        "mid": 1, "pub_ts": 1736726400000}}}}
    with pytest.raises(LayoutChanged, match="looks like milliseconds"):
        parse_dynamic(card, "9", TagRef(name="t", id=None), page())


def test_progress_shows_pages_posts_and_the_day_reached(
        capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.cli.backfill import RichProgress

    walk = Walk("x", TagRef(name="t", id=None), WINDOW)
    progress = RichProgress("x t", walk)
    walk.accept(TimelinePage(posts=[post("1", at(2))], oldest_seen=at(2),
                             next_fetch=Fetch(url="http://x/2", step="backfill")))
    assert walk.progress() == pytest.approx(1.5 / 3)  # a day and a half of three proven
    progress.update(walk)
    progress.close()
    err = capsys.readouterr().err
    assert "1 pages · 1 posts · reached 2025-01-02" in err
