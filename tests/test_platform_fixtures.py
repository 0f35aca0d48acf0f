"""Adapters against saved platform responses: a changed shape shows up as a failing field.

The folders under tests/fixtures/<platform>/<case>/ are made by `python -m
tests.fixtures.regenerate`, which checks each answer against the replica's ground truth first.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from crawler.platforms import REGISTRY, platform_class
from crawler.platforms.base import LayoutChanged
from crawler.platforms.xiaohongshu import header_counts, initial_state
from tests.fixture_helpers import CASES, FIXTURES, REAL_CASES, load_case
from tests.fixtures.regenerate import CANONICAL, describe, run_step


def adapter_for(platform: str):  # noqa: ANN201 - any adapter
    return platform_class(platform)(f"{CANONICAL}/{platform}")


def test_every_platform_has_fixtures() -> None:
    """Each registered platform has saved cases, at least one of them a stored snapshot."""
    with_snapshot = {c.parent.name for c in CASES
                     if json.loads((c / "expected.json").read_text())["result"] == "tag"}
    assert with_snapshot == set(REGISTRY)


def test_real_captures_cover_six_platforms_with_provenance() -> None:
    """Each real case has its provenance and the page.json that names the step reading it."""
    assert len({c.parent.name for c in REAL_CASES}) >= 6
    for case in REAL_CASES:
        for name in ("provenance.md", "expected.json", "page.json"):
            assert (case / name).is_file(), f"{case.relative_to(FIXTURES)}/{name}"
        assert (case / "body.json").is_file() or (case / "body.html").is_file(), case.name


@pytest.mark.parametrize("folder", CASES + REAL_CASES,
                         ids=lambda p: str(p.relative_to(FIXTURES)))
def test_adapter_matches_saved_expectation(folder: Path) -> None:
    platform, tag, step, state, page = load_case(folder)
    got = describe(run_step(adapter_for(platform), step, state, page, tag))
    expected = json.loads((folder / "expected.json").read_text())
    expected.pop("notes", None)  # a real case explains its values; not compared
    assert got["result"] == expected["result"]
    if expected["result"] == "tag":
        for field, value in expected["snapshot"].items():
            assert got["snapshot"].get(field) == value, f"snapshot.{field}"
        assert len(got["posts"]) == len(expected["posts"])
        for i, post in enumerate(expected["posts"]):
            for field, value in post.items():
                assert got["posts"][i].get(field) == value, f"posts[{i}].{field}"
        for i, day in enumerate(expected.get("activity", [])):
            for field, value in day.items():
                assert got["activity"][i].get(field) == value, f"activity[{i}].{field}"
    elif folder in REAL_CASES:
        # a real case states the fields it read by hand (a next fetch's url and step, say)
        for field, value in expected.items():
            assert got.get(field) == value, field
    else:
        assert got == expected


def test_tiktok_statsv2_survives_beyond_float_precision() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "tiktok" / "ssr_big_views")
    result = adapter_for("tiktok").handle(step, page, tag, state)
    assert result.snapshot["views"] == 9876543210


def test_xiaohongshu_record_is_the_january_2025_figure() -> None:
    _, tag, step, state, page = load_case(FIXTURES / "xiaohongshu" / "topic_record")
    result = adapter_for("xiaohongshu").handle(step, page, tag, state)
    snap = result.snapshot
    assert 120_000_000 <= snap["views"] < 125_000_000      # shown as 1.2亿浏览
    assert 2_812_000 <= snap["discussions"] < 2_813_000    # shown as 281.2万讨论
    assert header_counts(page.text) == {"views": "1.2亿", "discussions": "281.2万"}


def test_xiaohongshu_falls_back_to_the_rendered_header() -> None:
    """No captured JSON and no search state: the header text, marked approximate later."""
    _, tag, step, state, page = load_case(FIXTURES / "xiaohongshu" / "topic_record")
    bare = replace(page, captured=())
    result = adapter_for("xiaohongshu").handle(step, bare, tag, {"page_id": state["page_id"]})
    snap = result.snapshot
    assert snap["source"] == "rendered_dom"
    assert snap["views_text"] == "1.2亿"
    assert "views" not in snap
    assert snap["discussions_text"] == "281.2万"
    assert "discussions" not in snap
    assert snap["tag_display"] == "TikTok难民"  # from window.__INITIAL_STATE__


def test_xiaohongshu_initial_state_tolerates_bare_undefined() -> None:
    html = '<script>window.__INITIAL_STATE__={"global":{"x":undefined},"a":[undefined]}</script>'
    assert initial_state(html) == {"global": {"x": None}, "a": [None]}


def test_xiaohongshu_changed_header_is_a_layout_change() -> None:
    html = '<div class="summary"><div class="meta">1.2亿 reads · 281.2万 hearts</div></div>'
    with pytest.raises(LayoutChanged):
        header_counts(html)


def test_tiktok_rendered_dom_fallback_reads_posts_text() -> None:
    _, tag, _step, _state, page = load_case(FIXTURES / "tiktok" / "csr_rendered")
    bare = replace(page, captured=())
    result = adapter_for("tiktok").handle("rendered", bare, tag, {})
    assert result.snapshot["source"] == "rendered_dom"
    assert result.snapshot["posts_text"].endswith(("K", "M", "B")) or \
        result.snapshot["posts_text"].replace(",", "").isdigit()
