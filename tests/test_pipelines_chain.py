"""The four pipelines in order, with a real DatasetWriter: what lands where."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import ActivityItem, PostItem, SnapshotItem
from crawler.text.tags import TagRef
from storage import duckdb_connect
from tests.pipeline_helpers import pipeline_push

NOW = datetime.now(UTC)


@pytest.fixture
def chain(tmp_path: Path):  # noqa: ANN201 - a callable
    job = TagJob("mastodon", TagRef("TikTokRefugee", None))
    return pipeline_push(RunState(out=str(tmp_path), jobs=[job]))


def test_activity_rows_are_partitioned_by_their_own_day(chain, tmp_path: Path) -> None:  # noqa: ANN001
    days = [date(2025, 1, 9 + i) for i in range(3)]
    for i, day in enumerate(days):
        assert chain(ActivityItem(platform="mastodon", tag="TikTokRefugee", day=day,
                                  posts=str(10 * i), participants=i, coverage="platform_reported",
                                  source="api", observed_at=NOW))
    # the same day twice in one run is a duplicate
    assert not chain(ActivityItem(platform="mastodon", tag="tiktokrefugee", day=days[0],
                                  posts=1, participants=1, coverage="platform_reported",
                                  source="api", observed_at=NOW))
    chain.close()
    dirs = sorted(p.relative_to(tmp_path).as_posix()
                  for p in tmp_path.glob("activity/*/*") if p.is_dir())
    assert dirs == [f"activity/platform=mastodon/date={d.isoformat()}" for d in days]
    con = duckdb_connect(tmp_path)
    rows = con.execute("select tag, day, posts, participants, coverage from activity "
                       "order by day").fetchall()
    assert rows == [("tiktokrefugee", d, 10 * i, i, "platform_reported")
                    for i, d in enumerate(days)]


def test_invalid_items_land_in_rejects_with_reasons(chain, tmp_path: Path) -> None:  # noqa: ANN001
    assert not chain(ActivityItem(platform="mastodon", tag="x", day=date(2999, 1, 1), posts=-1,
                                  coverage="guess", source="api", observed_at=NOW))
    assert not chain(SnapshotItem(platform="mastodon", tag="x", views_text="lots",
                                  source="api", observed_at=NOW))
    assert chain(PostItem(platform="mastodon", tag="x", post_id="1", source="api",
                          observed_at=NOW, likes=3))
    chain.close()
    con = duckdb_connect(tmp_path)
    rejects = dict(con.execute("select item_type, reasons from rejects").fetchall())
    assert any("day in the future" in r for r in rejects["activity"])
    assert any("posts: negative" in r for r in rejects["activity"])
    assert any("coverage: unknown" in r for r in rejects["activity"])
    assert any("cannot parse count" in r for r in rejects["snapshot"])
    assert chain.stats.get_value("tagarchive/rejected") == 2
    assert con.execute("select count(*) from posts").fetchone() == (1,)


def test_same_topic_by_name_and_by_id_is_stored_once_and_both_answered(chain) -> None:  # noqa: ANN001
    for key in ("tiktokrefugee", "id:8995"):
        chain(SnapshotItem(platform="bilibili", tag="tiktokrefugee", views=5, source="api",
                           observed_at=NOW, job_key=key))
    assert chain.stats.get_value("tagarchive/stored/snapshots") == 1
    assert chain.run.outcomes[("bilibili", "tiktokrefugee")][0] == "stored"
    assert chain.run.outcomes[("bilibili", "id:8995")][0] == "stored"
