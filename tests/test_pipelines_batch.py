"""A page's items as one PageItems through the four pipelines: the same outcome as one by one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from scrapy.exceptions import DropItem
from scrapy.statscollectors import MemoryStatsCollector

from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import ActivityItem, PageItems, PostItem, SnapshotItem
from crawler.text.tags import TagRef
from storage import duckdb_connect
from tests.pipeline_helpers import offline_crawler, pipeline_chain

NOW = datetime.now(UTC)


def _page() -> list[Any]:
    """A snapshot, good and bad posts, a repeated post and activity days, one of them bad."""
    return [
        SnapshotItem(platform="mastodon", tag="TikTokRefugee", views="1.2万", posts=7,
                     source="api", observed_at=NOW, job_key="tiktokrefugee"),
        PostItem(platform="mastodon", tag="tiktokrefugee", post_id="1", likes="12",
                 text="fine", source="api", observed_at=NOW),
        PostItem(platform="mastodon", tag="tiktokrefugee", post_id="2", likes=-3,
                 source="api", observed_at=NOW),
        PostItem(platform="mastodon", tag="tiktokrefugee", post_id="3", text="å°çº¢ä¹¦",
                 source="api", observed_at=NOW),
        PostItem(platform="mastodon", tag="tiktokrefugee", post_id="1", likes=13,
                 source="api", observed_at=NOW),
        ActivityItem(platform="mastodon", tag="tiktokrefugee", day=date(2025, 1, 9), posts=4,
                     participants=2, coverage="complete", source="api", observed_at=NOW),
        ActivityItem(platform="mastodon", tag="tiktokrefugee", day=date(2025, 1, 10), posts=1,
                     coverage="guess", source="api", observed_at=NOW),
    ]


def _chain(out: Path) -> tuple[list[Any], RunState, MemoryStatsCollector]:
    run = RunState(out=str(out), jobs=[TagJob("mastodon", TagRef("TikTokRefugee", None))])
    crawler = offline_crawler(run)
    stages = pipeline_chain(crawler)
    return stages, run, crawler.stats


def _stored(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb_connect(root)
    return {
        "snapshots": con.execute("select tag, views, views_text, views_semantics, posts "
                                 "from snapshots").fetchall(),
        "posts": con.execute("select post_id, likes, text from posts order by 1").fetchall(),
        "activity": con.execute("select day, posts from activity order by 1").fetchall(),
        "rejects": con.execute("select item_type, reasons from rejects "
                               "order by item_type, raw").fetchall(),
    }


def test_a_page_batch_stores_and_rejects_exactly_what_single_items_do(tmp_path: Path) -> None:
    stages, _run, stats = _chain(tmp_path / "single")
    for item in _page():
        try:
            for stage in stages:
                item = stage.process_item(item)
        except DropItem:
            pass
    stages[-1].close_run()  # the store pipeline writes every row

    batch_stages, batch_run, batch_stats = _chain(tmp_path / "batch")
    batch: Any = PageItems(_page())
    for stage in batch_stages:
        batch = stage.process_item(batch)
    batch_stages[-1].close_run()

    assert [type(i).__name__ for i in batch.items] == ["SnapshotItem", "PostItem",
                                                       "ActivityItem"]
    single, batched = _stored(tmp_path / "single"), _stored(tmp_path / "batch")
    assert batched == single
    assert batched["posts"] == [("1", 12, "fine")]
    assert len(batched["rejects"]) == 3  # negative likes, mojibake text, unknown coverage
    for key in ("tagarchive/stored/snapshots", "tagarchive/stored/posts",
                "tagarchive/stored/activity", "tagarchive/rejected",
                "tagarchive/duplicates/post"):
        assert batch_stats.get_value(key) == stats.get_value(key), key
    assert batch_stats.get_value("item_dropped_count") == 4  # 3 rejects + 1 duplicate
    assert batch_run.outcomes[("mastodon", "tiktokrefugee")][0] == "stored"
