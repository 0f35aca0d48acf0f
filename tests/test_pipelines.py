"""Normalize and validate: exact integers win, display text is parsed, bad items get reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crawler.items import PostItem, SnapshotItem
from crawler.rules import item_problems, normalize_counter, normalize_item, raw_json

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("value", "text", "expected"),
    [
        (9876543210, None, (9876543210, None, "exact", None)),
        ("9876543210", None, (9876543210, None, "exact", None)),      # statsV2 digit string
        (None, "1.2亿", (120_000_000, "1.2亿", "rounded", None)),
        (None, "281.2万", (2_812_000, "281.2万", "rounded", None)),
        (None, "1,234", (1234, None, "exact", None)),                # exact, text not kept
        (120_480_000, "1.2亿", (120_480_000, "1.2亿", "exact", None)),  # exact wins over text
        (None, None, (None, None, None, None)),
    ],
)
def test_normalize_counter(value: object, text: str | None, expected: tuple) -> None:
    assert normalize_counter(value, text) == expected


@pytest.mark.parametrize("value", [True, 1.5, [3]])
def test_normalize_counter_flags_non_integers(value: object) -> None:
    assert normalize_counter(value, None)[3] is not None


def test_normalize_counter_flags_unparseable_text() -> None:
    value, text, _semantics, problem = normalize_counter(None, "lots")
    assert value is None
    assert text == "lots"
    assert problem


def snapshot(**kw: object) -> SnapshotItem:
    base = dict(platform="tiktok", tag="tiktokrefugee", tag_display="tiktokrefugee",
                observed_at=NOW, views=10, source="embedded_json")
    return SnapshotItem(**{**base, **kw})


def test_valid_snapshot_has_no_problems() -> None:
    assert item_problems(snapshot(), NOW, 10**15, SKEW) == []


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"tag": None}, "missing identity: tag"),
        ({"platform": None}, "missing identity: platform"),
        ({"views": -5}, "views: negative"),
        ({"views": 10**16}, "above the sane bound"),
        ({"views": "12"}, "views: not an integer"),
        ({"views": None}, "no counter at all"),
        ({"observed_at": NOW + timedelta(hours=1)}, "observed_at in the future"),
        ({"tag_display": "å°çº¢ä¹¦"}, "tag_display: mojibake"),
        ({"source": None}, "missing source"),
    ],
)
def test_snapshot_rejections(kw: dict, reason: str) -> None:
    problems = item_problems(snapshot(**kw), NOW, 10**15, SKEW)
    assert any(reason in p for p in problems), problems


def test_post_rejections() -> None:
    post = PostItem(platform="tiktok", post_id=None, observed_at=NOW, source="embedded_json",
                    created_at=NOW + timedelta(days=1), likes=-1, text="ok")
    problems = item_problems(post, NOW, 10**15, SKEW)
    assert "missing identity: post_id" in problems
    assert any(p.startswith("created_at in the future") for p in problems)
    assert any(p.startswith("likes: negative") for p in problems)


def test_clock_skew_is_tolerated() -> None:
    assert item_problems(snapshot(observed_at=NOW + timedelta(minutes=4)), NOW, 10**15,
                         SKEW) == []


def test_raw_json_keeps_the_item_without_bookkeeping() -> None:
    raw = raw_json(snapshot(problems=["x"], job_key="k"))
    assert '"tiktokrefugee"' in raw
    assert "problems" not in raw
    assert "job_key" not in raw


def test_adapter_marked_approximate_integer_stays_approximate() -> None:
    item = SnapshotItem(platform="bluesky", tag="x", posts=10_000, posts_semantics="rounded",
                        views=5, observed_at=NOW, source="api")
    normalize_item(item)
    assert item.posts == 10_000
    assert item.posts_semantics == "rounded"
    assert item.views_semantics == "exact"


@pytest.mark.parametrize(
    ("likes", "value", "semantics"),
    [(1200, 1200, "exact"), ("1200", 1200, "exact"), ("1.2K", 1200, "rounded"),
     ("1,234", 1234, "exact"), (None, None, None)],
)
def test_post_counters_keep_their_semantics(likes: object, value: int | None,
                                            semantics: str | None) -> None:
    post = PostItem(platform="tiktok", post_id="1", tag="x", observed_at=NOW, source="api",
                    likes=likes, plays=7, comments=5, comments_semantics="rounded")
    normalize_item(post)
    assert (post.likes, post.likes_semantics) == (value, semantics)
    assert (post.plays, post.plays_semantics) == (7, "exact")
    assert (post.comments, post.comments_semantics) == (5, "rounded")  # the adapter's word kept
    assert (post.shares, post.shares_semantics) == (None, None)
    assert post.problems == []
