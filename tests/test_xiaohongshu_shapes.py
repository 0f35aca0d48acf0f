"""Xiaohongshu: every known form of the topic notes feed, a topic without a captured feed, and
what each counter is (issue 13 §2 and §3).

Expected values come from the real captures (tests/fixtures/real/xiaohongshu/ and
tests/fixtures/xiaohongshu/real_note_cards/, read by hand) or are written out in the test.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from crawler.platforms.base import Blocked, Captured, LayoutChanged, Page, TagResult
from crawler.platforms.timeline import TimelinePage
from crawler.platforms.xiaohongshu import (
    NOTES_API,
    Xiaohongshu,
    captured_feeds,
    notes_feed,
    parse_note,
    text_semantics,
)
from crawler.text.tags import TagRef
from tests.fixture_helpers import FIXTURES, load_case

REAL = FIXTURES / "real" / "xiaohongshu"
CARDS = FIXTURES / "xiaohongshu" / "real_note_cards"
AT = datetime(2025, 1, 15, tzinfo=UTC)
PAGE_ID = "6193a9cbbcb9c3000136f893"
SEARCH_URL = "https://edith.xiaohongshu.com/web_api/sns/v1/search/topic"
HEADER = ('<div class="topic-page"><div class="summary"><div class="meta"><span>1.2</span>亿浏览'
          ' · <span>281.2</span>万讨论</div></div></div>')


def adapter() -> Xiaohongshu:
    return Xiaohongshu("http://replica.test/xiaohongshu")


def cap(url: str, body: Any, status: int = 200) -> Captured:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Captured(url=url, status=status, headers={}, body=text)


def topic_page(*caps: Captured, html: str = "<html></html>") -> Page:
    return Page(url=f"http://replica.test/xiaohongshu/page/topics/{PAGE_ID}", status=200,
                headers={}, text=html, observed_at=AT, rendered=True, captured=caps)


def on_topic(page: Page, state: dict[str, Any] | None = None) -> TagResult:
    result = adapter().handle("topic", page, TagRef(name=None, id=PAGE_ID),
                              state or {"page_id": PAGE_ID})
    assert isinstance(result, TagResult)
    return result


def real_body(case: str) -> str:
    return (REAL / case / "body.json").read_text(encoding="utf-8")


def search_answer(view_num: int = 9918059975) -> dict[str, Any]:
    return {"success": True, "code": 0, "data": {"topic_info_dtos": [
        {"id": "t1", "name": "帅哥", "view_num": view_num,
         "link": f"https://www.xiaohongshu.com/page/topics/{PAGE_ID}?naviHidden=yes"}]}}


# -- the feed's paths and forms -----------------------------------------------------------------

@pytest.mark.parametrize(("url", "captured"), [
    (f"https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend?page_id={PAGE_ID}", True),
    ("https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend?sort=hot_desc&page_id=x",
     True),
    ("https://www.xiaohongshu.com/web_api/sns/v1/page/5a4384a08000862471d16763/notes?page=2",
     True),
    ("https://edith.xiaohongshu.com/api/sns/web/v1/topic/notes?page_id=x", True),
    # the search box's keyword suggestions share the recommend path: not the feed
    ("https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend?keyword=%E7%BE%8E", False),
    ("https://edith.xiaohongshu.com/api/sns/web/v1/homefeed", False),
])
def test_the_feed_is_captured_on_every_known_path(url: str, captured: bool) -> None:
    assert bool(re.search(NOTES_API, url)) is captured


def test_the_real_sample_reads_as_the_data_notes_form() -> None:
    feed = notes_feed(cap(f"https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend"
                          f"?page_id={PAGE_ID}", real_body("topic_notes_feed_data_notes_2024")))
    assert feed is not None
    assert feed["form"] == "data.notes"
    assert (feed["total_note_count"], feed["total_user_count"]) == (16, 16)
    assert [n["id"] for n in feed["notes"]] == ["6635e9d9000000001e03bd79"]


def test_a_bare_list_in_data_is_the_older_feed_form_without_totals() -> None:
    notes = [{"id": "n1", "title": "one", "likes": 3, "user": {"userid": "u1"}},
             {"id": "n2", "title": "two", "likes": 0, "user": {"userid": "u2"}}]
    feed = notes_feed(cap("https://www.xiaohongshu.com/web_api/sns/v1/page/p1/notes?page=1",
                          {"result": 0, "success": True, "data": notes}))
    assert feed is not None
    assert feed["form"] == "data as a list of notes"
    assert feed["notes"] == notes
    assert "total_note_count" not in feed


def test_keyword_suggestions_on_the_shared_path_are_not_a_feed() -> None:
    # the shape of submato/xhscrawl's search_keyword_recommend sample
    body = {"code": 1000, "success": True, "msg": "成功",
            "data": {"sug_items": [{"type": "top_note", "text": "美女照片全身"}]}}
    suggestions = cap("https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend"
                      "?keyword=%E7%BE%8E&page_id=x", body)
    assert notes_feed(suggestions) is None
    feed = cap(f"https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend?page_id={PAGE_ID}",
               real_body("topic_notes_feed_data_notes_2024"))
    # passed over, whatever the order: the feed is still read
    assert [f["total_note_count"] for f in captured_feeds(topic_page(feed, suggestions))] == [16]


def test_a_refused_feed_call_is_still_the_failure_it_names() -> None:
    refused = cap(f"https://x/web_api/sns/v1/page/{PAGE_ID}/notes",
                  {"code": 300012, "success": False, "msg": "网络连接异常"})
    with pytest.raises(Blocked, match="300012"):
        notes_feed(refused)


# -- the topic step: what is stored from each combination ---------------------------------------

def test_the_list_form_gives_posts_and_no_totals() -> None:
    notes = [{"id": "n1", "title": "one", "likes": 3, "create_time": 1714809305000,
              "user": {"userid": "u1", "nickname": "甲"}}]
    page = topic_page(cap(SEARCH_URL, search_answer()),
                      cap(f"https://www.xiaohongshu.com/web_api/sns/v1/page/{PAGE_ID}/notes",
                          {"success": True, "data": notes}),
                      html=HEADER.replace(" · <span>281.2</span>万讨论", ""))
    snap = on_topic(page).snapshot
    assert (snap["views"], snap["views_semantics"]) == (9918059975, "exact")
    assert snap.get("discussions") is None
    assert snap.get("discussions_text") is None
    assert snap.get("participants") is None
    assert snap["caveats"] == ["discussions, participants: the notes feed (data as a list of "
                               "notes) carries no totals"]
    [post] = on_topic(page).posts
    assert (post["post_id"], post["likes"], post["author_name"]) == ("n1", 3, "甲")
    assert post["created_at"] == datetime(2024, 5, 4, 7, 55, 5, tzinfo=UTC)


def test_without_a_feed_the_search_view_num_and_the_header_are_stored() -> None:
    page = topic_page(cap(SEARCH_URL, search_answer()), html=HEADER)
    result = on_topic(page)
    snap = result.snapshot
    assert (snap["views"], snap["views_semantics"]) == (9918059975, "exact")
    assert snap.get("views_text") is None  # the exact integer wins over "1.2亿"
    assert (snap["discussions_text"], snap["discussions_semantics"]) == ("281.2万", "rounded")
    assert snap.get("participants") is None
    assert snap["caveats"][0].startswith("discussions, participants: no topic notes feed")
    assert snap["source"] == "captured_xhr"
    assert result.posts == []


def test_without_a_feed_a_header_that_no_longer_parses_costs_only_its_counters() -> None:
    changed = '<div class="summary"><div class="meta">1.2亿 reads · 281.2万 hearts</div></div>'
    snap = on_topic(topic_page(cap(SEARCH_URL, search_answer()), html=changed)).snapshot
    assert snap["views"] == 9918059975
    assert snap.get("discussions_text") is None


def test_the_real_search_alone_is_enough_for_a_topic_addressed_by_id() -> None:
    _, tag, step, state, page = load_case(REAL / "topic_by_id_search_only_shuaige")
    result = adapter().handle(step, page, tag, state)
    assert isinstance(result, TagResult)
    assert result.snapshot["views"] == 9918059975
    assert result.snapshot["tag_id"] == "54754634e77989532682b929"


def test_nothing_read_is_still_a_changed_layout() -> None:
    with pytest.raises(LayoutChanged):
        on_topic(topic_page(html="<html><body><div id='app'></div></body></html>"))


def test_the_header_alone_is_display_text_marked_rounded() -> None:
    snap = on_topic(topic_page(html=HEADER)).snapshot
    assert (snap["views_text"], snap["views_semantics"]) == ("1.2亿", "rounded")
    assert (snap["discussions_text"], snap["discussions_semantics"]) == ("281.2万", "rounded")
    assert snap["source"] == "rendered_dom"


def test_a_full_feed_leaves_the_header_unread_and_marks_its_totals_exact() -> None:
    feed = cap(f"https://edith.xiaohongshu.com/api/sns/web/v1/search/recommend?page_id={PAGE_ID}",
               real_body("topic_notes_feed_data_notes_2024"))
    broken = '<div class="summary"><div class="meta">1.2亿 reads</div></div>'
    snap = on_topic(topic_page(cap(SEARCH_URL, search_answer()), feed, html=broken)).snapshot
    assert (snap["discussions"], snap["discussions_semantics"]) == (16, "exact")
    assert (snap["participants"], snap["participants_semantics"]) == (16, "exact")
    assert "caveats" not in snap


def test_backfill_reads_the_list_form_as_capped() -> None:
    notes = [{"id": "n1", "title": "one", "likes": 1, "create_time": 1714809305000,
              "user": {"userid": "u1"}}]
    page = topic_page(cap(f"https://x/web_api/sns/v1/page/{PAGE_ID}/notes?page=1",
                          {"success": True, "data": notes}))
    got = adapter().handle("backfill", page, TagRef(name=None, id=PAGE_ID), {"page_id": PAGE_ID})
    assert isinstance(got, TimelinePage)
    assert [p["post_id"] for p in got.posts] == ["n1"]
    assert got.capped  # the list form does not say whether more pages exist


# -- notes: the shapes the web answers, and what liked_count is ---------------------------------

def _items(name: str, path: list[str]) -> list[Any]:
    data = json.loads((CARDS / name).read_text(encoding="utf-8"))
    for key in path:
        data = data[key]
    assert isinstance(data, list)
    return data


@pytest.mark.parametrize("name", ["collect_page_2024.json", "explore_state_feeds_2024.json"])
def test_real_note_cards_are_read_with_their_likes_as_shown(name: str) -> None:
    expected = json.loads((CARDS / "expected_posts.json").read_text(encoding="utf-8"))[name]
    page = topic_page()
    posts = [parse_note(item, "t", None, page) for item in _items(name, expected["path"])]
    assert len(posts) == len(expected["posts"])
    for i, want in enumerate(expected["posts"]):
        got = posts[i]
        assert got is not None, i
        for field, value in want.items():
            assert got.get(field) == value, f"{name}[{i}].{field}"


@pytest.mark.parametrize(("text", "semantics"), [
    ("602", "exact"),
    ("1.5万", "rounded"),      # helium-pro explore state, 2024-11
    ("9.7万", "rounded"),      # helium-pro collect/page, 2024-11
    ("10万+", "lower_bound"),  # a MediaCrawler export of interact_info (see docs/platforms.md)
    ("1.2亿", "rounded"),
])
def test_displayed_counts_say_what_they_are(text: str, semantics: str) -> None:
    assert text_semantics(text) == semantics


def test_a_feed_note_with_an_integer_like_count_stays_exact() -> None:
    note = json.loads(real_body("topic_notes_feed_data_notes_2024"))["data"]["notes"][0]
    post = parse_note(note, "t", None, topic_page())
    assert post is not None
    assert post["likes"] == 246
    assert "likes_semantics" not in post  # an integer: the normalize rule says exact


def test_provenance_names_a_source_for_every_real_case() -> None:
    for case in sorted(p for p in REAL.iterdir() if p.is_dir()):
        text = (case / "provenance.md").read_text(encoding="utf-8")
        assert re.search(r"@[0-9a-f]{40}:", text), case.name
        page = json.loads((case / "page.json").read_text())
        assert page["step"] in ("search", "topic", "backfill"), case.name


def test_note_card_provenance_exists() -> None:
    assert "helium-pro@39ae27429cd5f0c870bd7846befac54ffd2c86e7" in (
        CARDS / "provenance.md").read_text(encoding="utf-8")
