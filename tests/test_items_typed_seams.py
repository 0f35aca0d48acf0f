"""The small typed seams of the platform and item layers: `mapping` and `items_from_result`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.items import ActivityItem, PostItem, SnapshotItem, items_from_result
from crawler.platforms.base import TagResult, mapping

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, [], [{"a": 1}], "x", 0, 1.5, True])
def test_mapping_reads_a_non_object_as_empty(value: object) -> None:
    assert mapping(value) == {}


def test_mapping_returns_an_object_itself() -> None:
    obj = {"user": {"id": 7}}
    assert mapping(obj) is obj


def _result() -> TagResult:
    return TagResult(
        snapshot={"platform": "weibo", "tag_display": "Tag", "views": "1.2万",
                  "observed_at": WHEN},
        posts=[{"platform": "weibo", "post_id": "1", "likes": 3, "observed_at": WHEN}],
        activity=[{"platform": "weibo", "posts": 2}],
    )


def test_items_from_result_marks_snapshot_and_posts_with_the_archive_record() -> None:
    snapshot, post, activity = items_from_result(_result(), "tag", "tag",
                                                 archive=("a.warc.gz", "<urn:1>"))
    assert isinstance(snapshot, SnapshotItem)
    assert isinstance(post, PostItem)
    assert (snapshot.archive_file, snapshot.archive_record) == ("a.warc.gz", "<urn:1>")
    assert (post.archive_file, post.archive_record) == ("a.warc.gz", "<urn:1>")
    assert isinstance(activity, ActivityItem)
    assert activity.tag == "tag"
    assert snapshot.job_key == "tag"
    assert post.tag == "tag"


def test_items_from_result_without_an_archive_leaves_provenance_empty() -> None:
    snapshot, post, _ = items_from_result(_result(), None)
    assert (snapshot.archive_file, snapshot.archive_record) == (None, None)
    assert (post.archive_file, post.archive_record) == (None, None)
    # an `id:` request names the tag by the platform's display name
    assert snapshot.tag == post.tag == "Tag"
