"""What each Douyin and YouTube counter is (issue 13 §3): exact integers from Douyin's ch_info,
rounded display text from its header fallback and from YouTube's hashtag header."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from crawler.platforms.base import Captured, Page, TagResult
from crawler.platforms.douyin import Douyin
from crawler.platforms.youtube import YouTube
from crawler.text.tags import TagRef
from tests.fixture_helpers import FIXTURES, load_case

YT_HEADER = ('<script>var ytInitialData = {"header":{"hashtagHeaderRenderer":{"hashtag":'
             '{"simpleText":"#tiktokrefugee"},"hashtagInfoText":{"simpleText":"%s"}}}};</script>')


def youtube_snapshot(info: str) -> dict[str, Any]:
    page = Page(url="https://www.youtube.com/hashtag/tiktokrefugee", status=200, headers={},
                text=YT_HEADER % info, observed_at=load_case(
                    FIXTURES / "youtube" / "hashtag_header")[4].observed_at)
    result = YouTube().handle("hashtag", page, TagRef("tiktokrefugee", None), {})
    assert isinstance(result, TagResult)
    return result.snapshot


@pytest.mark.parametrize(("info", "posts", "participants"), [
    ("1.2M videos • 300K channels", ("1.2M", "rounded"), ("300K", "rounded")),
    ("1.2M videos · 300K channels", ("1.2M", "rounded"), ("300K", "rounded")),
    ("57 videos • 3 channels", ("57", "exact"), ("3", "exact")),
    ("14K videos • 8.1K channels", ("14K", "rounded"), ("8.1K", "rounded")),
])
def test_youtube_header_counts_are_display_text_and_say_so(
        info: str, posts: tuple[str, str], participants: tuple[str, str]) -> None:
    snap = youtube_snapshot(info)
    assert (snap["posts_text"], snap["posts_semantics"]) == posts
    assert (snap["participants_text"], snap["participants_semantics"]) == participants
    assert "posts" not in snap  # the value is parsed from the text by the normalize rule


def test_youtube_saved_fixtures_mark_both_header_forms_rounded() -> None:
    for case in ("hashtag_header", "page_header"):
        expected = json.loads((FIXTURES / "youtube" / case / "expected.json").read_text())
        assert expected["snapshot"]["posts_semantics"] == "rounded", case
        assert expected["snapshot"]["participants_semantics"] == "rounded", case


def _douyin_detail(page: Page, body: dict[str, Any]) -> Page:
    caps = tuple(c for c in page.captured if "/challenge/detail/" not in c.url)
    detail = Captured(url="https://www.douyin.com/aweme/v1/web/challenge/detail/?ch_id=1",
                      status=200, headers={}, body=json.dumps(body, ensure_ascii=False))
    return replace(page, captured=(*caps, detail))


def test_douyin_ch_info_integers_are_stored_exact() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "douyin" / "hashtag")
    body = {"status_code": 0, "ch_info": {"cid": "1", "cha_name": "x", "view_count": 345523145,
                                          "user_count": 9572}}
    result = Douyin().handle(step, _douyin_detail(page, body), tag, {"cid": "1"})
    assert isinstance(result, TagResult)
    snap = result.snapshot
    assert (snap["views"], snap["views_semantics"]) == (345523145, "exact")
    assert (snap["participants"], snap["participants_semantics"]) == (9572, "exact")


def test_douyin_missing_user_count_has_no_semantics() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "douyin" / "hashtag")
    body = {"status_code": 0, "ch_info": {"cid": "1", "cha_name": "x", "view_count": 10}}
    result = Douyin().handle(step, _douyin_detail(page, body), tag, {"cid": "1"})
    assert isinstance(result, TagResult)
    snap = result.snapshot
    assert snap["views_semantics"] == "exact"
    assert "participants_semantics" not in snap


@pytest.mark.parametrize(("stats", "views", "participants"), [
    ("1.2亿次播放 · 3.4万人参与", ("1.2亿", "rounded"), ("3.4万", "rounded")),
    ("8571次播放 · 857人参与", ("8571", "exact"), ("857", "exact")),
])
def test_douyin_header_fallback_is_display_text(stats: str, views: tuple[str, str],
                                                participants: tuple[str, str]) -> None:
    html = (f'<div class="challenge-header"><h1>#x</h1>'
            f'<div class="challenge-stats">{stats}</div></div>')
    _, tag, _step, _state, page = load_case(FIXTURES / "douyin" / "hashtag")
    bare = replace(page, text=html, captured=())
    result = Douyin().handle("hashtag", bare, tag, {"cid": "1"})
    assert isinstance(result, TagResult)
    snap = result.snapshot
    assert (snap["views_text"], snap["views_semantics"]) == views
    assert (snap["participants_text"], snap["participants_semantics"]) == participants
    assert snap["source"] == "rendered_dom"
