"""Douyin, Weibo and Bilibili adapters on real response shapes quoted from PLATFORMS.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crawler.platforms.base import (
    Blocked,
    Captcha,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    PlatformError,
    RateLimited,
)
from crawler.platforms.bilibili import Bilibili
from crawler.tags import TagRef

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
    assert snap["tag_id"] == "8995" and snap["tag_display"] == "寒假不咕咕"
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
