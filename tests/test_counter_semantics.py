"""Every stored counter says how it was read: `<counter>_approx` in snapshots, posts and activity.

A post counter given as display text ("1.2K") is stored with its flag set, an exact integer with
it cleared; files written before posts and activity had these columns read (null) and compact
together with new ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.extensions.runrecord import RunState, TagJob
from crawler.items import ActivityItem, items_from_result
from crawler.platforms import platform_class
from crawler.text.counts import parse_count
from crawler.text.tags import TagRef
from storage import duckdb_connect, open_dataset, table_from_rows
from storage.compact import compact
from storage.schemas import ACTIVITY_COUNTERS, DATASETS, POST_COUNTERS
from tests.fixture_helpers import FIXTURES, load_case
from tests.pipeline_helpers import pipeline_push

NOW = datetime.now(UTC)
SCRIPT = re.compile(r'(<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__"[^>]*>)(.*?)(</script>)',
                    re.S)
# TikTok's key for each post counter (crawler/platforms/tiktok.py parse_item)
TIKTOK_KEYS = {"likes": "diggCount", "comments": "commentCount", "shares": "shareCount",
               "plays": "playCount"}


@pytest.fixture
def chain(tmp_path: Path):  # noqa: ANN201 - a callable
    """normalize -> validate -> dedupe -> store, with a real writer under tmp_path."""
    job = TagJob("tiktok", TagRef("tiktokrefugee", None))
    return pipeline_push(RunState(out=str(tmp_path), jobs=[job]))


def _approximate(value: Any) -> bool:
    """What the input itself says: an integer (or digit string) is exact, display text is not."""
    if isinstance(value, int) and not isinstance(value, bool):
        return False
    return parse_count(value).approximate


def _tiktok_page_with_text_likes(likes_text: str) -> tuple[Any, TagRef, str, dict, Any, dict]:
    """The saved TikTok SSR page with its first post's likes given as display text only."""
    _, tag, step, state, page = load_case(FIXTURES / "tiktok" / "ssr")
    head, body, tail = SCRIPT.search(page.text).groups()
    data = json.loads(body)
    detail = data["__DEFAULT_SCOPE__"]["webapp.challenge-detail"]
    item = detail["itemList"][0]
    del item["stats"]["diggCount"]  # no exact int left: statsV2's text is all there is
    item["statsV2"]["diggCount"] = likes_text
    text = page.text.replace(head + body + tail, head + json.dumps(data) + tail)
    return platform_class("tiktok"), tag, step, state, replace(page, text=text), item


def test_tiktok_post_likes_as_display_text_are_stored_approximate(chain, tmp_path: Path) -> None:  # noqa: ANN001
    cls, tag, step, state, page, item = _tiktok_page_with_text_likes("1.2K")
    result = cls("http://replica.test/tiktok").handle(step, page, tag, state)
    items = items_from_result(result, "tiktokrefugee", "tiktokrefugee")
    assert all(chain(one) for one in items)
    chain.run.writer.close()
    columns = ", ".join(f"{c}, {c}_approx" for c in POST_COUNTERS)
    rows = duckdb_connect(tmp_path).execute(
        f"select post_id, {columns} from posts order by post_id").fetchall()
    assert len(rows) == len(result.posts) > 1
    by_id = {r[0]: r[1:] for r in rows}
    got = by_id[str(item["id"])]
    assert got[0] == 1200
    assert got[1] is True
    # every counter of the edited post: the flag follows the input it was read from
    for i, name in enumerate(POST_COUNTERS):
        key = TIKTOK_KEYS[name]
        raw = item["stats"].get(key, item["statsV2"].get(key))
        assert got[2 * i] == parse_count(raw).value, name
        assert got[2 * i + 1] is _approximate(raw), name
    # the other posts' counters all came as integers: stored exact, never null beside a value
    for post_id, values in by_id.items():
        for i, name in enumerate(POST_COUNTERS):
            if values[2 * i] is not None and post_id != str(item["id"]):
                assert values[2 * i + 1] is False, (post_id, name)


@pytest.mark.parametrize(("posts", "value", "approx"),
                         [(7, 7, False), ("7", 7, False), ("1.2K", 1200, True),
                          (None, None, None)])
def test_activity_counts_carry_their_semantics(chain, tmp_path: Path, posts: Any,  # noqa: ANN001
                                               value: int | None, approx: bool | None) -> None:
    assert chain(ActivityItem(platform="mastodon", tag="tiktokrefugee", day=date(2025, 1, 9),
                              posts=posts, participants=3, coverage="platform_reported",
                              source="api", observed_at=NOW))
    chain.run.writer.close()
    row = duckdb_connect(tmp_path).execute(
        "select posts, posts_approx, participants, participants_approx from activity").fetchone()
    # an approximate input never reads as an exact-looking count
    assert row == (value, approx, 3, False)


# --- files written before posts/activity had *_approx ------------------------------------------

def _old_schema(dataset: str, dropped: tuple[str, ...]) -> pa.Schema:
    """The dataset's schema as it was before the `_approx` columns (same version, 1)."""
    schema = DATASETS[dataset].schema
    for name in (f"{c}_approx" for c in dropped):
        schema = schema.remove(schema.get_field_index(name))
    return schema


def _post(post_id: str, at: datetime, likes: int, run: str, **extra: Any) -> dict[str, Any]:
    return {"post_id": post_id, "tag": "wall", "observed_at": at, "likes": likes,
            "source": "api", "run_id": run, "schema_version": 1, **extra}


def test_old_and_new_posts_files_read_and_compact_together(tmp_path: Path) -> None:
    partition = tmp_path / "posts" / "platform=tiktok" / "date=2026-01-10"
    partition.mkdir(parents=True)
    old = _old_schema("posts", POST_COUNTERS)
    assert "likes_approx" not in old.names
    first = datetime(2026, 1, 10, 8, tzinfo=UTC)
    later = datetime(2026, 1, 10, 9, tzinfo=UTC)
    old_rows = [_post("1", first, 5, "20260110T080000Z-00000001"),
                _post("2", first, 9, "20260110T080000Z-00000001")]
    pq.write_table(pa.Table.from_pylist(old_rows, schema=old),
                   partition / "part-20260110T080000Z-00000001-0000.parquet")
    new_rows = [_post("1", later, 1200, "20260110T090000Z-00000002", likes_approx=True),
                _post("3", later, 4, "20260110T090000Z-00000002", likes_approx=False)]
    pq.write_table(table_from_rows("posts", new_rows),
                   partition / "part-20260110T090000Z-00000002-0000.parquet")

    def read() -> dict[tuple[str, datetime], tuple[Any, Any]]:
        table = open_dataset(tmp_path, "posts").to_table()
        return {(r["post_id"], r["observed_at"]): (r["likes"], r["likes_approx"])
                for r in table.to_pylist()}

    expected_all = {("1", first): (5, None), ("2", first): (9, None),  # old: semantics unknown
                    ("1", later): (1200, True), ("3", later): (4, False)}
    assert read() == expected_all
    sql = duckdb_connect(tmp_path).execute(
        "select post_id, likes, likes_approx from posts order by post_id, observed_at")
    assert sql.fetchall() == [("1", 5, None), ("1", 1200, True), ("2", 9, None), ("3", 4, False)]

    report = compact(tmp_path, ["posts"], now=datetime(2026, 2, 1, tzinfo=UTC))
    assert report.errors == []
    assert report.datasets["posts"].compacted == 1
    [merged] = list(partition.glob("*.parquet"))
    assert pq.read_schema(merged).names == DATASETS["posts"].schema.names
    # the latest observation per post (DEDUP_RULES), old rows kept with their null flag
    assert read() == {k: v for k, v in expected_all.items() if k != ("1", first)}


def test_old_activity_files_read_with_null_flags(tmp_path: Path) -> None:
    partition = tmp_path / "activity" / "platform=mastodon" / "date=2025-01-09"
    partition.mkdir(parents=True)
    row = {"tag": "wall", "day": date(2025, 1, 9), "posts": 4, "participants": 2,
           "coverage": "platform_reported", "source": "api", "observed_at": NOW,
           "run_id": "20250109T000000Z-00000001", "schema_version": 1}
    pq.write_table(pa.Table.from_pylist([row], schema=_old_schema("activity", ACTIVITY_COUNTERS)),
                   partition / "part-20250109T000000Z-00000001-0000.parquet")
    [got] = open_dataset(tmp_path, "activity").to_table().to_pylist()
    assert (got["posts"], got["posts_approx"], got["participants_approx"]) == (4, None, None)


def test_sql_over_an_archive_of_old_files_only_knows_the_new_columns(tmp_path: Path) -> None:
    # every posts file predates the _approx columns: a query naming one reads null, not an error
    partition = tmp_path / "posts" / "platform=tiktok" / "date=2026-01-10"
    partition.mkdir(parents=True)
    first = datetime(2026, 1, 10, 8, tzinfo=UTC)
    rows = [_post("1", first, 5, "20260110T080000Z-00000001")]
    pq.write_table(pa.Table.from_pylist(rows, schema=_old_schema("posts", POST_COUNTERS)),
                   partition / "part-20260110T080000Z-00000001-0000.parquet")
    sql = duckdb_connect(tmp_path).execute("select post_id, likes, likes_approx from posts")
    assert sql.fetchall() == [("1", 5, None)]
