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
from datetime import datetime
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
