"""Every stored counter says what it is: `<counter>_semantics` in snapshots, posts and activity.

A post counter given as display text ("1.2K") is stored `rounded`, an exact integer `exact` unless
the adapter knows better; files of schema version 1 (`<counter>_approx` booleans, or no flag at
all) read through every reader with their flags folded into the semantics, and compact together
with version-2 files into version 2.
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
from storage.analysis import open_archive
from storage.compact import compact
from storage.schemas import (
    DATASETS,
    POST_COUNTERS,
    SCHEMA_VERSION,
    SEMANTICS,
    upgrade_table,
)
from tests.fixture_helpers import FIXTURES, load_case
from tests.pipeline_helpers import pipeline_push

NOW = datetime.now(UTC)
SCRIPT = re.compile(r'(<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__"[^>]*>)(.*?)(</script>)',
                    re.S)


@pytest.fixture
def chain(tmp_path: Path):  # noqa: ANN201 - a callable
    """normalize -> validate -> dedupe -> store, with a real writer under tmp_path."""
    job = TagJob("tiktok", TagRef("tiktokrefugee", None))
    return pipeline_push(RunState(out=str(tmp_path), jobs=[job]))


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


def test_tiktok_post_likes_as_display_text_are_stored_rounded(chain, tmp_path: Path) -> None:  # noqa: ANN001
    cls, tag, step, state, page, item = _tiktok_page_with_text_likes("1.2K")
    result = cls("http://replica.test/tiktok").handle(step, page, tag, state)
    items = items_from_result(result, "tiktokrefugee", "tiktokrefugee")
    assert all(chain(one) for one in items)
    chain.close()
    columns = ", ".join(f"{c}, {c}_semantics" for c in POST_COUNTERS)
    rows = duckdb_connect(tmp_path).execute(
        f"select post_id, {columns} from posts order by post_id").fetchall()
    assert len(rows) == len(result.posts) > 1
    by_id = {r[0]: r[1:] for r in rows}
    got = by_id[str(item["id"])]
    assert (got[0], got[1]) == (parse_count("1.2K").value, "rounded")
    # every stored value says what it is; none is null beside a value, none outside SEMANTICS
    for post_id, values in by_id.items():
        for i, name in enumerate(POST_COUNTERS):
            if values[2 * i] is not None:
                assert values[2 * i + 1] in SEMANTICS, (post_id, name)


@pytest.mark.parametrize(("posts", "value", "semantics"),
                         [(7, 7, "exact"), ("7", 7, "exact"), ("1.2K", 1200, "rounded"),
                          (None, None, None)])
def test_activity_counts_carry_their_semantics(chain, tmp_path: Path, posts: Any,  # noqa: ANN001
                                               value: int | None, semantics: str | None) -> None:
    assert chain(ActivityItem(platform="mastodon", tag="tiktokrefugee", day=date(2025, 1, 9),
                              posts=posts, participants=3, coverage="platform_reported",
                              source="api", observed_at=NOW))
    chain.close()
    row = duckdb_connect(tmp_path).execute(
        "select posts, posts_semantics, participants, participants_semantics from activity"
    ).fetchone()
    # a rounded input never reads as an exact-looking count
    assert row == (value, semantics, 3, "exact")


# --- files of schema version 1 -----------------------------------------------------------------

def _v1_schema(dataset: str, *, flags: bool = True) -> pa.Schema:
    """The dataset's schema as version 1 wrote it: `<counter>_approx` booleans (or, for the first
    posts/activity files, no flag at all) and none of version 2's snapshot columns."""
    fields = []
    for field in DATASETS[dataset].schema:
        if field.name in ("window_start", "window_end", "posts_seen", "visibility_cap",
                          "caveats"):
            continue
        if field.name.endswith("_semantics"):
            if flags:
                fields.append(pa.field(field.name.replace("_semantics", "_approx"), pa.bool_()))
            continue
        fields.append(field)
    return pa.schema(fields)


def _post(post_id: str, at: datetime, likes: int, run: str, version: int,
          **extra: Any) -> dict[str, Any]:
    return {"post_id": post_id, "tag": "wall", "observed_at": at, "likes": likes,
            "source": "api", "run_id": run, "schema_version": version, **extra}


FIRST = datetime(2026, 1, 10, 8, tzinfo=UTC)
LATER = datetime(2026, 1, 10, 9, tzinfo=UTC)
RUN1, RUN2, RUN3 = ("20260110T070000Z-00000001", "20260110T080000Z-00000002",
                    "20260110T090000Z-00000003")


def _write_three_versions(root: Path) -> Path:
    """posts of one partition: a flagless v1 file, a flagged v1 file, and a v2 file."""
    partition = root / "posts" / "platform=tiktok" / "date=2026-01-10"
    partition.mkdir(parents=True)
    flagless = [_post("0", FIRST, 3, RUN1, 1)]
    pq.write_table(pa.Table.from_pylist(flagless, schema=_v1_schema("posts", flags=False)),
                   partition / f"part-{RUN1}-0000.parquet")
    flagged = [_post("1", FIRST, 5, RUN2, 1, likes_approx=False),
               _post("2", FIRST, 1200, RUN2, 1, likes_approx=True)]
    pq.write_table(pa.Table.from_pylist(flagged, schema=_v1_schema("posts")),
                   partition / f"part-{RUN2}-0000.parquet")
    current = [_post("1", LATER, 1300, RUN3, SCHEMA_VERSION, likes_semantics="rounded"),
               _post("3", LATER, 4, RUN3, SCHEMA_VERSION, likes_semantics="lower_bound")]
    pq.write_table(table_from_rows("posts", current), partition / f"part-{RUN3}-0000.parquet")
    return partition


# (post_id, observed_at) -> (likes, likes_semantics), from the rows written above: a v1 flag true
# was "parsed from rounded display text", false "an exact integer"; no flag, no semantics
EXPECTED = {("0", FIRST): (3, None), ("1", FIRST): (5, "exact"), ("2", FIRST): (1200, "rounded"),
            ("1", LATER): (1300, "rounded"), ("3", LATER): (4, "lower_bound")}


def test_v1_and_v2_posts_read_alike_through_every_reader(tmp_path: Path) -> None:
    _write_three_versions(tmp_path)
    table = upgrade_table(open_dataset(tmp_path, "posts").to_table(), "posts")
    assert "likes_approx" not in table.column_names
    assert {(r["post_id"], r["observed_at"]): (r["likes"], r["likes_semantics"])
            for r in table.to_pylist()} == EXPECTED
    sql = duckdb_connect(tmp_path).execute(
        "select post_id, observed_at, likes, likes_semantics from posts")
    assert {(r[0], r[1]): (r[2], r[3]) for r in sql.fetchall()} == EXPECTED
    columns = [c[0] for c in duckdb_connect(tmp_path).execute("select * from posts").description]
    assert not [c for c in columns if c.endswith("_approx")]
    with open_archive(tmp_path) as archive:
        frame = archive.scan("posts").collect()
    assert "likes_approx" not in frame.columns
    assert {(r["post_id"], r["observed_at"]): (r["likes"], r["likes_semantics"])
            for r in frame.iter_rows(named=True)} == EXPECTED


def test_compaction_moves_v1_files_to_v2(tmp_path: Path) -> None:
    partition = _write_three_versions(tmp_path)
    report = compact(tmp_path, ["posts"], now=datetime(2026, 2, 1, tzinfo=UTC))
    assert report.errors == []
    assert report.datasets["posts"].compacted == 1
    [merged] = list(partition.glob("*.parquet"))
    assert pq.read_schema(merged).names == DATASETS["posts"].schema.names
    rows = pq.read_table(merged).to_pylist()
    assert {r["schema_version"] for r in rows} == {SCHEMA_VERSION}
    # the latest observation per post (DEDUP_RULES): post 1's v1 row gives way to its v2 row
    assert {(r["post_id"], r["observed_at"]): (r["likes"], r["likes_semantics"])
            for r in rows} == {k: v for k, v in EXPECTED.items() if k != ("1", FIRST)}


def test_v1_activity_and_snapshots_read_with_their_flags_folded(tmp_path: Path) -> None:
    partition = tmp_path / "activity" / "platform=mastodon" / "date=2025-01-09"
    partition.mkdir(parents=True)
    row = {"tag": "wall", "day": date(2025, 1, 9), "posts": 4, "participants": 2,
           "posts_approx": False, "participants_approx": None, "coverage": "platform_reported",
           "source": "api", "observed_at": NOW, "run_id": RUN1, "schema_version": 1}
    pq.write_table(pa.Table.from_pylist([row], schema=_v1_schema("activity")),
                   partition / f"part-{RUN1}-0000.parquet")
    snaps = tmp_path / "snapshots" / "platform=weibo" / "date=2025-01-09"
    snaps.mkdir(parents=True)
    snap = {"tag": "wall", "observed_at": NOW, "views": 230_000_000, "views_text": "2.3亿",
            "views_approx": True, "discussions": 12, "discussions_approx": False,
            "source": "embedded_json", "run_id": RUN1, "schema_version": 1}
    pq.write_table(pa.Table.from_pylist([snap], schema=_v1_schema("snapshots")),
                   snaps / f"part-{RUN1}-0000.parquet")
    con = duckdb_connect(tmp_path)
    assert con.execute("select posts, posts_semantics, participants_semantics from activity"
                       ).fetchone() == (4, "exact", None)
    assert con.execute("select views, views_semantics, discussions_semantics, posts_seen, "
                       "window_start from snapshots").fetchone() == (
        230_000_000, "rounded", "exact", None, None)
