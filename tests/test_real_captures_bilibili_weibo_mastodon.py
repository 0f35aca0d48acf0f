"""Bilibili, Weibo and Mastodon adapters against responses captured from the real platforms.

Each case under tests/fixtures/real/<platform>/<case>/ holds the body as published, the page it
answered (page.json: url, headers, the adapter step that reads it) and what a person read from
the body (expected.json, which tests/test_platform_fixtures.py checks; see
tests/fixtures/real/README.md). A Mastodon Tag case answers a fetch of the tag's timeline, so
expected_snapshot.json says what that tag's snapshot and activity are once the timeline step has
run; the other checks here are the differences issue 13 names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler.platforms import platform_class
from crawler.platforms.base import Page, PlatformError
from crawler.text.tags import TagRef
from tests.fixture_helpers import FIXTURES
from tests.fixtures.regenerate import CANONICAL, describe

REAL = FIXTURES / "real"
PLATFORMS = ("bilibili", "weibo", "mastodon")
CASES = sorted(p for name in PLATFORMS for p in (REAL / name).glob("*")
               if (p / "page.json").is_file())


def load_real(folder: Path) -> tuple[Any, TagRef, str, dict[str, Any], Page]:
    """The adapter, tag, step, state and page a real case describes."""
    meta = json.loads((folder / "page.json").read_text())
    body = folder / ("body.json" if (folder / "body.json").is_file() else "body.html")
    page = Page(url=meta["url"], status=meta["status"], headers=meta["headers"],
                text=body.read_text(encoding="utf-8"),
                observed_at=datetime.fromisoformat(meta["observed_at"]),
                rendered=meta["rendered"])
    platform = folder.parent.name
    adapter = platform_class(platform)(f"{CANONICAL}/{platform}")
    return adapter, TagRef(**meta["tag"]), meta["step"], meta["state"], page


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()))


def _same_fields(got: list[dict[str, Any]], expected: list[dict[str, Any]], what: str) -> None:
    assert len(got) == len(expected), what
    for i, (one, want) in enumerate(zip(got, expected, strict=True)):
        for field, value in want.items():
            assert one.get(field) == value, f"{what}[{i}].{field}"


def test_every_platform_here_has_real_cases() -> None:
    """tests/test_platform_fixtures.py runs each of them against its expected.json."""
    assert {c.parent.name for c in CASES} == set(PLATFORMS)


MASTODON_TAGS = sorted(p.parent for p in (REAL / "mastodon").glob("*/expected_snapshot.json"))


@pytest.mark.parametrize("folder", MASTODON_TAGS, ids=lambda p: p.name)
def test_mastodon_tag_capture_gives_its_snapshot_after_the_timeline_step(folder: Path) -> None:
    """The Tag entity's counters, carried to the timeline step, which is refused here (401):
    the snapshot is stored without posts."""
    adapter, tag, step, state, page = load_real(folder)
    fetch = adapter.handle(step, page, tag, state)
    refused = replace(page, url=fetch.url, status=401, text='{"error":"This API requires an '
                      'authenticated user"}')
    got = describe(adapter.handle(fetch.step, refused, tag, fetch.state))
    expected = json.loads((folder / "expected_snapshot.json").read_text())
    for field, value in expected["snapshot"].items():
        assert got["snapshot"].get(field) == value, f"snapshot.{field}"
    _same_fields(got.get("activity", []), expected["activity"], "activity")
    assert got["posts"] == []


def test_weibo_super_topic_followers_are_read_but_not_stored() -> None:
    """粉丝 (the super-topic's followers) parses, and is no counter: nothing holds 5810."""
    adapter, tag, step, state, page = load_real(REAL / "weibo" / "supertopic_nana7mi_live")
    result = adapter.handle(step, page, tag, state)
    assert "5810" not in json.dumps(_plain(result.snapshot))


def test_a_platform_error_is_what_the_real_not_found_says() -> None:
    adapter, tag, step, state, page = load_real(REAL / "bilibili" / "details_top_not_found")
    with pytest.raises(PlatformError) as caught:
        adapter.handle(step, page, tag, state)
    assert "4401031" in caught.value.detail


# --- each difference on its own ------------------------------------------------------------


@pytest.mark.parametrize(("dynamic", "text"), [
    # a video dynamic without desc: the title, then the description
    ({"desc": None, "major": {"archive": {"title": "T", "desc": "D"}}}, "T\nD"),
    # desc repeats the title, the description holds both: the description alone
    ({"desc": {"text": "T"}, "major": {"archive": {"title": "T", "desc": "T and more"}}},
     "T and more"),
    # "-" is a video without a description
    ({"desc": {"text": "hi"}, "major": {"archive": {"title": "T", "desc": "-"}}}, "hi\nT"),
    # an opus (MAJOR_TYPE_OPUS, bilibili-API-collect docs/dynamic/space.md): title and summary
    ({"desc": None, "major": {"opus": {"title": "O", "summary": {"text": "S"}}}}, "O\nS"),
    ({"desc": {"text": "plain words"}}, "plain words"),
    ({"desc": None, "major": None}, None),
])
def test_bilibili_dynamic_text_parts(dynamic: dict[str, Any], text: str | None) -> None:
    from crawler.platforms.bilibili import dynamic_text

    assert dynamic_text(dynamic) == text


def test_weibo_summary_labels_and_full_width_spaces() -> None:
    from crawler.platforms.weibo import midtext_counts
    from crawler.text.counts import CountParseError, parse_labelled

    summary = "阅读1607.2万\u3000帖子4115\u3000粉丝5810"
    assert midtext_counts(summary) == {"views": "1607.2万", "posts": "4115"}
    with pytest.raises(CountParseError, match="粉丝"):
        parse_labelled(summary)  # 粉丝 is no counter unless a caller says to skip it
    assert parse_labelled("帖子12.3万")["posts"].value == 123_000


def test_weibo_id_that_is_no_super_topic_is_refused() -> None:
    from crawler.platforms.base import Unsupported
    from crawler.platforms.weibo import Weibo

    with pytest.raises(Unsupported):
        Weibo().first_fetch(TagRef(None, "12345"))
    fetch = Weibo().first_fetch(TagRef(None, "1008081a127e1db26d4483eadf1d1dbe1a80c2"))
    assert "containerid=1008081a127e1db26d4483eadf1d1dbe1a80c2_-_feed" in fetch.url


def _tag_page(entity: dict[str, Any]) -> Page:
    return Page(url="http://localhost:8080/api/v1/tags/welcome", status=200, headers={},
                text=json.dumps(entity), observed_at=datetime(2025, 5, 22, tzinfo=UTC))


def test_mastodon_empty_history_is_no_history_not_a_layout_change() -> None:
    from crawler.platforms.mastodon import Mastodon

    adapter = Mastodon("http://replica.test/mastodon")
    entity = {"name": "welcome", "url": "http://localhost:8080/tags/welcome", "history": []}
    tag = TagRef("welcome", None)
    fetch = adapter.handle("tag", _tag_page(entity), tag, {})
    refused = replace(_tag_page(entity), status=401, text="{}")
    result = adapter.handle(fetch.step, refused, tag, fetch.state)
    assert "posts" not in result.snapshot
    assert "participants" not in result.snapshot
    assert result.activity == []
    assert result.snapshot["caveats"][0].startswith("posts, participants:")
    # "history" missing altogether is still a changed layout
    with pytest.raises(PlatformError, match="no history"):
        adapter.handle("tag", _tag_page({"name": "welcome"}), tag, {})


def test_mastodon_empty_id_is_no_id() -> None:
    from crawler.platforms.mastodon import parse_tag

    entity = {"id": "", "name": "heeho", "url": "u", "history": [
        {"day": "1785542400", "accounts": "2", "uses": "3"}]}
    result = parse_tag(entity, _tag_page(entity), TagRef("heeho", None))
    assert result.snapshot["tag_id"] is None
    assert result.snapshot["window_start"] == datetime(2026, 8, 1, tzinfo=UTC)
    assert result.snapshot["window_end"] == datetime(2026, 8, 2, tzinfo=UTC)
    assert (result.activity[0]["posts_semantics"],
            result.activity[0]["participants_semantics"]) == ("exact", "rounded")
