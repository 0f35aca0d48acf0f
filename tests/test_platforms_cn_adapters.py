"""Douyin, Weibo and Bilibili adapters on real response shapes quoted from PLATFORMS.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.platforms.base import (
    Blocked,
    Captcha,
    Captured,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    PlatformError,
    RateLimited,
    Unsupported,
)
from crawler.platforms.bilibili import Bilibili
from crawler.platforms.douyin import Douyin
from crawler.platforms.weibo import Weibo, parse_created_at, topic_host
from crawler.text.tags import TagRef
from replica.clock import ReplicaClock
from replica.server import ReplicaServer
from replica.world import World, display_count
from tests.fixtures.regenerate import CLOCK_AT

FIXTURES = Path(__file__).resolve().parent / "fixtures"

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# PLATFORMS.md §5.2: a real saved details/top answer, and the real not-found answer
BILIBILI_8995 = (
    '{"code":0,"message":"0","ttl":1,"data":{"top_details":{"topic_item":{"id":8995,'
    '"name":"寒假不咕咕","view":488338287,"discuss":642172,"fav":45,"dynamics":38483,'
    '"jump_url":"https://m.bilibili.com/topic-detail?topic_id=8995","back_color":"#6188FF",'
    '"description":"寒假不做鸽子精，这次一定！...","share_pic":"http://i0.hdslb.com/bfs/vc/....png",'
    '"share":1,"like":136,"share_url":"https://m.bilibili.com/topic-detail?topic_id=8995",'
    '"ctime":1641380305},"topic_creator":{"uid":32708726,"face":"...","name":"傲娇的时尚喵"},'
    '"operation_content":{},"has_create_jurisdiction":true,"word_color":0,'
    '"close_pub_layer_entry":false},"functional_card":{},"click_area_card":{}}}'
)
BILIBILI_MISSING = '{"code":4401031,"message":"话题不存在","ttl":1,"data":null}'


def page(body: str | dict[str, Any], status: int = 200, url: str = "https://x.test/",
         headers: dict[str, str] | None = None) -> Page:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Page(url=url, status=status, headers=headers or {}, text=text, observed_at=AT)


def test_bilibili_real_details_top_gives_exact_counters() -> None:
    result = Bilibili().on_details(page(BILIBILI_8995), TagRef(None, "8995"), {})
    snap = result.snapshot
    assert (snap["views"], snap["discussions"], snap["posts"]) == (488338287, 642172, 38483)
    assert snap["tag_id"] == "8995"
    assert snap["tag_display"] == "寒假不咕咕"
    assert snap["url"] == "https://m.bilibili.com/topic-detail?topic_id=8995"


@pytest.mark.parametrize(("body", "status", "error"), [
    (BILIBILI_MISSING, 200, NotFound),
    ('{"code":-352,"message":"风控校验失败","data":{"v_voucher":"voucher_x"}}', 200, Captcha),
    ('{"code":-412,"message":"请求被拦截"}', 412, Blocked),
    ('{"code":-101,"message":"账号未登录","ttl":1}', 200, LoginWall),
    ('{"code":-509,"message":"请求过于频繁，请稍后再试","ttl":1}', 200, RateLimited),
    ('{"error":"Too Many Requests"}', 429, RateLimited),
    ('{"code":0,"message":"0","ttl":1,"data":{"topic_info":{"id":8995}}}', 200, LayoutChanged),
    ("<html>gateway</html>", 200, LayoutChanged),
    ('{"code":-404,"message":"啥都木有"}', 200, PlatformError),
])
def test_bilibili_answers_name_their_failure(body: str, status: int,
                                             error: type[PlatformError]) -> None:
    with pytest.raises(error):
        Bilibili().on_details(page(body, status), TagRef(None, "8995"), {})


def test_bilibili_search_picks_the_exact_name_not_the_first_hit() -> None:
    # bilibili-API-collect's sample: search matches substrings
    body = {"code": 0, "message": "0", "ttl": 1, "data": {
        "new_topic": {"name": "2233"}, "has_create_jurisdiction": False,
        "topic_items": [
            {"id": 1101122, "name": "2233异世集", "view": 2502, "discuss": 11,
             "stat_desc": "2502浏览·11讨论", "description": "分享数字周边",
             "show_interact_data": False},
            {"id": 1050671, "name": "2233", "view": 21149, "discuss": 130,
             "stat_desc": "2.1万浏览·130讨论", "description": "", "show_interact_data": False},
        ]}}
    adapter = Bilibili("http://mirror.test/bili")
    fetch = adapter.on_search(page(body), TagRef("2233", None), {})
    assert fetch.url == "http://mirror.test/bili/x/topic/web/details/top?topic_id=1050671"
    with pytest.raises(NotFound):
        adapter.on_search(page(body), TagRef("2233生日", None), {})


def test_bilibili_id_must_be_numeric() -> None:
    with pytest.raises(NotFound):
        Bilibili().first_fetch(TagRef(None, "abc"))


@pytest.mark.parametrize("topic_id", ["²", "１２３", "1" * 5000, 12.5, None])
def test_bilibili_search_hit_without_an_ascii_numeric_id_is_a_layout_change(
    topic_id: Any,
) -> None:
    body = {"code": 0, "data": {"topic_items": [{"id": topic_id, "name": "寒假不咕咕"}]}}
    with pytest.raises(LayoutChanged, match="topic search item has no numeric id") as caught:
        Bilibili().on_search(page(body), TagRef("寒假不咕咕", None), {})
    assert len(caught.value.detail) < 100


@pytest.mark.parametrize(("body", "detail"), [
    ('{"code":0,"data":' + "[" * 100_000 + "]" * 100_000 + "}",
     "unreadable JSON: nesting too deep"),
    ('{"code":0,"data":{"n":' + "1" * 5000 + "}}",
     "unreadable JSON: a number longer than 4300 digits"),
])
def test_bilibili_hostile_json_is_named(body: str, detail: str) -> None:
    with pytest.raises(LayoutChanged, match=f"^{detail}$"):
        Bilibili().on_details(page(body), TagRef(None, "8995"), {})


def weibo_body(midtext: str, cards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    head = {"title": "#TikTok难民#", "midtext": midtext, "downtext": "主持人：新浪热点"}
    return {"ok": 1, "data": {"cardlistInfo": {"cardlist_head_cards": [{"head_data": head}]},
                              "cards": cards or []}}


def test_weibo_midtext_gives_approximate_reads_and_discussions() -> None:
    result = Weibo().on_topic(page(weibo_body("阅读2.3亿 讨论4.5万")), TagRef("TikTok难民", None),
                              {})
    snap = result.snapshot
    assert snap["views_text"] == "2.3亿"
    assert snap["discussions_text"] == "4.5万"
    assert "views" not in snap
    assert snap["tag_display"] == "TikTok难民"
    assert topic_host(weibo_body("x")["data"]["cardlistInfo"]["cardlist_head_cards"][0]
                      ["head_data"]) == "新浪热点"


@pytest.mark.parametrize("midtext", ["", "阅读量2.3亿 讨论量4.5万", "2.3亿 4.5万"])
def test_weibo_unreadable_midtext_is_a_layout_change(midtext: str) -> None:
    with pytest.raises(LayoutChanged):
        Weibo().on_topic(page(weibo_body(midtext)), TagRef("t", None), {})


def test_weibo_posts_come_flat_and_from_card_groups() -> None:
    mblog = {"created_at": "Tue Feb 23 12:28:47 +0800 2021", "id": "4607741009594608",
             "mid": "4607741009594608", "text": '<a href="/n/x">@x</a> 好 &amp; 坏',
             "user": {"id": 1645372340, "screen_name": "于三羊鲜声"},
             "attitudes_count": 3, "comments_count": 2, "reposts_count": 1}
    cards = [{"card_type": 4, "desc": "intro"},
             {"card_type": 11, "card_group": [{"card_type": 9, "mblog": mblog}]},
             {"card_type": 9, "mblog": {**mblog, "mid": "2", "created_at": "3分钟前"}}]
    posts = Weibo().on_topic(page(weibo_body("阅读1 讨论1", cards)), TagRef("t", None), {}).posts
    assert [p["post_id"] for p in posts] == ["4607741009594608", "2"]
    first = posts[0]
    assert first["created_at"] == datetime(2021, 2, 23, 4, 28, 47, tzinfo=UTC)
    assert first["text"] == "@x 好 & 坏"
    assert first["author_id"] == "1645372340"
    assert (first["likes"], first["comments"], first["shares"]) == (3, 2, 1)
    assert posts[1]["created_at"] == AT - timedelta(minutes=3)


@pytest.mark.parametrize(("text", "expected"), [
    ("Tue Feb 23 12:28:47 +0800 2021", datetime(2021, 2, 23, 4, 28, 47, tzinfo=UTC)),
    ("刚刚", AT),
    ("45秒前", AT - timedelta(seconds=45)),
    ("2小时前", AT - timedelta(hours=2)),
    ("昨天 23:10", datetime(2026, 1, 1, 15, 10, tzinfo=UTC)),  # AT is 11:04 in +08:00
    ("06-27", None),  # a date without its time: the time would be invented
    ("2021-02-23", None),
    (None, None),
    # hostile: no datetime, no traceback
    ("999999999小时前", None),  # before year 1
    ("1" * 5000 + "秒前", None),  # int() would refuse it
    ("²秒前", None),
    ("昨天 25:61", None),
])
def test_weibo_created_at_forms(text: str | None, expected: datetime | None) -> None:
    assert parse_created_at(text, AT) == expected


@pytest.mark.parametrize(("status", "headers", "body", "error"), [
    (200, {}, '{"ok":0,"msg":"这里还没有内容","data":{"cards":[]}}', NotFound),
    (200, {}, '{"ok":-100,"msg":"请先登录","url":"https://passport.weibo.cn/signin/welcome?'
              'entry=mweibo&r=x"}', LoginWall),
    (302, {"location": "https://passport.weibo.com/visitor/visitor?entry=miniblog"},
     "<title>Sina Visitor System</title>", Captcha),
    (302, {"location": "https://passport.weibo.cn/signin/welcome?entry=mweibo"}, "", LoginWall),
    (432, {}, "", Blocked),
    (418, {}, "", RateLimited),
    (429, {"retry-after": "30"}, '{"error":"Too Many Requests"}', RateLimited),
    (200, {}, '{"ok":1,"data":{"cards":[]}}', LayoutChanged),
    (200, {}, "<html></html>", LayoutChanged),
])
def test_weibo_answers_name_their_failure(status: int, headers: dict[str, str], body: str,
                                          error: type[PlatformError]) -> None:
    with pytest.raises(error):
        Weibo().on_topic(page(body, status, headers=headers), TagRef("t", None), {})


def test_weibo_has_no_ids() -> None:
    with pytest.raises(Unsupported):
        Weibo().first_fetch(TagRef(None, "123"))


def test_weibo_saved_fixture_agrees_with_the_replica_truth() -> None:
    """The regenerate check only compares exact integers; Weibo's are display text."""
    expected = json.loads((FIXTURES / "weibo" / "topic" / "expected.json").read_text())
    world = World(seed=2025, clock=ReplicaClock(start=CLOCK_AT))
    truth = world.topic("weibo", "TikTok难民")
    snap = expected["snapshot"]
    assert snap["views_text"] == display_count(truth.views)
    assert snap["discussions_text"] == display_count(truth.discussions)
    posts = world.posts_for("weibo", "TikTok难民", limit=10)
    assert [p["post_id"] for p in expected["posts"]] == [p.id for p in posts]
    assert [p["created_at"] for p in expected["posts"]] == [
        p.created_at.isoformat() for p in posts]


def captured(url: str, body: str | dict[str, Any], status: int = 200) -> Captured:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Captured(url=url, status=status, headers={}, body=text)


def rendered(captures: list[Captured], html: str = "<html><body></body></html>") -> Page:
    return Page(url="https://www.douyin.com/hashtag/1", status=200, headers={}, text=html,
                observed_at=AT, rendered=True, captured=tuple(captures))


DETAIL = "https://www.douyin.com/aweme/v1/web/challenge/detail/?ch_id=1&a_bogus=x"
SEARCH = "https://www.douyin.com/aweme/v1/web/challenge/search/?keyword=k&a_bogus=x"


def test_douyin_detail_gives_exact_views_and_participants() -> None:
    # older answers name the object challenge_info (PLATFORMS §3.2)
    body = {"status_code": 0, "challenge_info": {"cid": "71340946479", "cha_name": "旅行",
                                                 "view_count": 12_345_678_901,
                                                 "user_count": 4321}}
    snap = Douyin().on_hashtag(rendered([captured(DETAIL, body)]), TagRef(None, "71340946479"),
                               {"cid": "71340946479"}).snapshot
    assert (snap["views"], snap["participants"], snap["tag_id"]) == (
        12_345_678_901, 4321, "71340946479")
    assert snap["source"] == "captured_xhr"


@pytest.mark.parametrize(("body", "status", "error"), [
    ("", 200, Blocked),  # an a_bogus the server did not accept
    ("blocked", 200, Blocked),
    ('{"status_code":8,"status_msg":"用户未登录"}', 200, LoginWall),
    ('{"status_code":0,"ch_info":null}', 200, NotFound),
    ('{"status_code":0,"challenge_detail":{"id":"1"}}', 200, LayoutChanged),
    ('{"status_code":0,"ch_info":{"cid":"1","cha_name":"x"}}', 200, LayoutChanged),
    ("{}", 429, RateLimited),
    ('{"status_code":2154,"status_msg":"x"}', 200, PlatformError),
])
def test_douyin_detail_answers_name_their_failure(body: str, status: int,
                                                  error: type[PlatformError]) -> None:
    with pytest.raises(error):
        Douyin().on_hashtag(rendered([captured(DETAIL, body, status)]), TagRef(None, "1"),
                            {"cid": "1"})


def test_douyin_hostile_captured_json_is_named() -> None:
    deep = '{"status_code":0,"ch_info":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(LayoutChanged, match="^unreadable JSON: nesting too deep$"):
        Douyin().on_hashtag(rendered([captured(DETAIL, deep)]), TagRef(None, "1"), {"cid": "1"})
    # a post time no datetime holds: the post keeps no time, the counters are stored
    body = {"status_code": 0, "ch_info": {"cid": "1", "cha_name": "x", "view_count": 5}}
    feed = {"status_code": 0, "aweme_list": [{"aweme_id": "7", "create_time": 10**30}]}
    aweme = "https://www.douyin.com/aweme/v1/web/challenge/aweme/?ch_id=1&a_bogus=x"
    result = Douyin().on_hashtag(rendered([captured(DETAIL, body), captured(aweme, feed)]),
                                 TagRef(None, "1"), {"cid": "1"})
    assert result.snapshot["views"] == 5
    assert result.posts[0]["created_at"] is None
    with pytest.raises(LayoutChanged, match="no numeric cid"):
        search = {"status_code": 0, "challenge_list": [
            {"challenge_info": {"cid": "²", "cha_name": "旅行"}}]}
        Douyin().on_search(rendered([captured(SEARCH, search)]), TagRef("旅行", None), {})


@pytest.mark.parametrize(("html", "error"), [
    ("<title>验证码中间页</title><div id=captcha_container>请完成下列验证后继续</div>", Captcha),
    ('<div id="root"><div class="login-panel">扫码登录</div></div>', LoginWall),
    ('<div class="challenge-error">话题不存在</div>', NotFound),
    ('<div id="root"><div class="loading">加载中…</div></div>', LayoutChanged),
])
def test_douyin_page_without_json_names_what_it_shows(html: str,
                                                      error: type[PlatformError]) -> None:
    with pytest.raises(error):
        Douyin().on_hashtag(rendered([], html), TagRef(None, "1"), {"cid": "1"})


def test_douyin_falls_back_to_the_rendered_stats_line() -> None:
    meta = json.loads((FIXTURES / "douyin" / "hashtag" / "page.json").read_text())
    html = (FIXTURES / "douyin" / "hashtag" / "body.html").read_text()
    snap = Douyin().on_hashtag(rendered([], html), TagRef("TikTok难民", None),
                               meta["state"]).snapshot
    world = World(seed=2025, clock=ReplicaClock(start=CLOCK_AT))
    truth = world.topic("douyin", "TikTok难民")
    assert snap["source"] == "rendered_dom"
    assert "views" not in snap
    assert snap["views_text"] == display_count(truth.views)
    assert snap["participants_text"] == display_count(truth.participants)
    assert snap["tag_display"] == "TikTok难民"


def test_douyin_search_picks_the_exact_name() -> None:
    body = {"status_code": 0, "challenge_list": [
        {"challenge_info": {"cid": "111", "cha_name": "旅行日常", "view_count": 9}},
        {"challenge_info": {"cid": "222", "cha_name": "旅行", "view_count": 5}}]}
    adapter = Douyin("http://mirror.test/dy")
    fetch = adapter.on_search(rendered([captured(SEARCH, body)]), TagRef("旅行", None), {})
    assert (fetch.url, fetch.step, fetch.state) == (
        "http://mirror.test/dy/hashtag/222", "hashtag", {"cid": "222"})
    assert fetch.render is not None
    with pytest.raises(NotFound):
        adapter.on_search(rendered([captured(SEARCH, body)]), TagRef("美食", None), {})


def test_douyin_replica_refuses_unsigned_calls() -> None:
    """Only the page's own script can sign: a plain call gets Douyin's empty answer."""
    server = ReplicaServer(world=World(seed=2025))
    cid = server.world.topic("douyin", "旅行").topic_id
    status, _headers, body = server.dispatch(
        "GET", f"/douyin/aweme/v1/web/challenge/detail/?ch_id={cid}&msToken={'x' * 107}"
               "&a_bogus=DY00000000", {})
    assert (status, body) == (200, b"")
