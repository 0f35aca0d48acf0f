"""Dataset schemas and the strict row -> Arrow table conversion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from storage import DATASETS, SCHEMA_VERSION, SchemaError, get_spec, table_from_rows

T0 = datetime(2026, 1, 23, 14, 5, 1, 123456, tzinfo=UTC)


def snapshot(**fields: Any) -> dict[str, Any]:
    row = {"tag": "tiktokrefugee", "observed_at": T0, "source": "api", "run_id": "r1"}
    row.update(fields)
    return row


def test_every_dataset_has_a_versioned_schema_without_partition_columns() -> None:
    assert set(DATASETS) == {"snapshots", "posts", "activity", "rejects", "runs", "alerts"}
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.schema.metadata == {
            b"tagarchive.dataset": name.encode(),
            b"tagarchive.schema_version": str(SCHEMA_VERSION).encode(),
        }
        assert not set(spec.partition_by) & set(spec.schema.names)
        assert set(spec.sort_by) <= set(spec.schema.names)
        assert spec.schema.field("schema_version").type == pa.int16()
        assert not spec.schema.field("schema_version").nullable
        assert not spec.schema.field("run_id").nullable
    assert DATASETS["snapshots"].partition_by == ("platform", "date")
    assert DATASETS["rejects"].partition_by == ("date",)
    assert DATASETS["runs"].partition_by == ("date",)


def test_snapshot_columns_and_nullability() -> None:
    schema = DATASETS["snapshots"].schema
    utc_us = pa.timestamp("us", tz="UTC")
    assert schema.field("observed_at").type == utc_us
    assert not schema.field("observed_at").nullable
    assert not schema.field("tag").nullable
    assert not schema.field("source").nullable
    for counter in ("views", "posts", "discussions", "participants"):
        assert schema.field(counter).type == pa.int64()
        assert schema.field(counter).nullable
        assert schema.field(f"{counter}_text").type == pa.string()
        assert schema.field(f"{counter}_semantics").type == pa.string()
    assert DATASETS["activity"].schema.field("day").type == pa.date32()
    assert DATASETS["rejects"].schema.field("reasons").type == pa.list_(pa.string())
    outcomes = DATASETS["runs"].schema.field("outcomes").type
    assert [f.name for f in outcomes.value_type] == ["platform", "tag", "status", "detail"]


def test_rows_convert_to_exactly_the_schema() -> None:
    rows = [
        snapshot(views=9_876_543_210, views_text="98.8亿", views_semantics="rounded",
                 platform="tiktok"),
        snapshot(tag="b", posts=0, date="2026-01-23"),
    ]
    table = table_from_rows("snapshots", rows)
    assert table.schema == DATASETS["snapshots"].schema
    assert table.schema.metadata == DATASETS["snapshots"].schema.metadata
    first, second = table.to_pylist()
    assert first["views"] == 9_876_543_210
    assert first["views_text"] == "98.8亿"
    assert first["views_semantics"] == "rounded"
    assert first["posts"] is None
    assert second["posts"] == 0
    assert second["views"] is None
    assert first["observed_at"] == T0
    assert first["schema_version"] == SCHEMA_VERSION


def test_empty_rows_give_an_empty_table() -> None:
    assert table_from_rows("runs", []).schema == DATASETS["runs"].schema


def test_run_id_is_filled_in_when_given() -> None:
    row = snapshot()
    del row["run_id"]
    assert table_from_rows("snapshots", [row], run_id="r9")["run_id"].to_pylist() == ["r9"]
    with pytest.raises(SchemaError, match="snapshots.run_id: null"):
        table_from_rows("snapshots", [row])


def test_aware_non_utc_datetimes_keep_their_instant() -> None:
    shanghai = T0.astimezone(timezone(timedelta(hours=8)))
    table = table_from_rows("snapshots", [snapshot(observed_at=shanghai)])
    assert table["observed_at"].to_pylist() == [T0]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("views", "1.2亿", "snapshots.views: expected int64, got str"),
        ("views", 1.5, "snapshots.views: expected int64, got float"),  # pyarrow would give 1
        ("views", 1.0, "snapshots.views: expected int64"),
        ("views", True, "snapshots.views: expected int64, got bool"),
        ("views", Decimal("5.5"), "snapshots.views: expected int64"),
        ("views", 2**63, "snapshots.views"),
        ("views_semantics", 1, "snapshots.views_semantics"),
        ("views_semantics", "approx", "snapshots.views_semantics: 'approx' is not one of"),
        ("views_text", 12, "snapshots.views_text: expected string, got int"),
        ("observed_at", datetime(2026, 1, 23, 14, 5), "snapshots.observed_at: naive datetime"),
        ("observed_at", 1_769_000_000, "snapshots.observed_at: expected timestamp"),
        ("observed_at", "2026-01-23T14:05:01Z", "snapshots.observed_at: expected timestamp"),
        ("tag", None, "snapshots.tag: null in a non-nullable column"),
        ("source", "scraped", "snapshots.source: 'scraped' is not one of"),
        ("veiws", 5, "snapshots.veiws: unknown column"),
        ("schema_version", 99, "snapshots.schema_version"),
    ],
)
def test_type_mismatch_names_the_column(column: str, value: object, expected: str) -> None:
    rows = [snapshot(), snapshot(**{column: value})]
    with pytest.raises(SchemaError) as info:
        table_from_rows("snapshots", rows)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_naive_datetime_is_refused_even_among_nulls() -> None:
    rows = [
        {"post_id": "1", "tag": "t", "observed_at": T0, "source": "api", "run_id": "r"},
        {"post_id": "2", "tag": "t", "observed_at": T0, "source": "api", "run_id": "r"},
    ]
    rows[1]["created_at"] = datetime(2026, 1, 1)
    with pytest.raises(SchemaError, match=r"posts.created_at: naive datetime.*\(row 1\)"):
        table_from_rows("posts", rows)


def test_other_datasets_check_their_own_types() -> None:
    activity = {"tag": "t", "day": date(2026, 1, 20), "coverage": "complete", "source": "api"}
    activity |= {"observed_at": T0, "run_id": "r"}
    assert table_from_rows("activity", [activity])["day"].to_pylist() == [date(2026, 1, 20)]
    with pytest.raises(SchemaError, match="activity.day: expected date32"):
        table_from_rows("activity", [activity | {"day": T0}])  # a datetime would lose its time
    with pytest.raises(SchemaError, match="activity.coverage"):
        table_from_rows("activity", [activity | {"coverage": "partial"}])

    reject = {"rejected_at": T0, "reasons": ["views < 0"], "run_id": "r"}
    assert table_from_rows("rejects", [reject])["reasons"].to_pylist() == [["views < 0"]]
    with pytest.raises(SchemaError, match="rejects.reasons"):
        table_from_rows("rejects", [reject | {"reasons": "views < 0"}])  # not a list of chars

    run = {"run_id": "r", "started_at": T0, "verdict": "ok", "duration_s": 1}
    run["outcomes"] = [{"platform": "tiktok", "tag": "t", "status": "ok", "detail": None}]
    assert table_from_rows("runs", [run])["duration_s"].to_pylist() == [1.0]
    with pytest.raises(SchemaError, match="runs.outcomes"):
        bad = [{"platform": "tiktok", "tag": "t", "status": "ok", "typo": "x"}]
        table_from_rows("runs", [run | {"outcomes": bad}])
    with pytest.raises(SchemaError, match="runs.verdict"):
        table_from_rows("runs", [run | {"verdict": "meh"}])


def test_unknown_dataset() -> None:
    with pytest.raises(SchemaError, match="unknown dataset 'tweets'"):
        table_from_rows("tweets", [])
    with pytest.raises(SchemaError):
        get_spec("tweets")


def test_mapping_rows_are_accepted() -> None:
    from types import MappingProxyType

    table = table_from_rows("snapshots", [MappingProxyType(snapshot(views=3))])
    assert table["views"].to_pylist() == [3]


def test_every_platform_counter_carries_its_semantics() -> None:
    """snapshots, posts and activity: each int64 counter has a nullable string
    `<counter>_semantics`, and the item the store pipeline writes from has the field, so what
    a value is never gets dropped."""
    from dataclasses import fields

    from crawler.items import ActivityItem, PostItem, SnapshotItem
    from storage.schemas import ACTIVITY_COUNTERS, COUNTERS, POST_COUNTERS

    for dataset, counters, item in (("snapshots", COUNTERS, SnapshotItem),
                                    ("posts", POST_COUNTERS, PostItem),
                                    ("activity", ACTIVITY_COUNTERS, ActivityItem)):
        schema = DATASETS[dataset].schema
        # posts_seen and visibility_cap are counts of what was seen, not platform counters
        ints = {f.name for f in schema if f.type == pa.int64()} - {"posts_seen", "visibility_cap"}
        assert ints == set(counters), dataset  # no counter column without its flag
        names = {f.name for f in fields(item)}
        for counter in counters:
            flag = schema.field(f"{counter}_semantics")
            assert flag.type == pa.string(), (dataset, counter)
            assert flag.nullable, (dataset, counter)
            assert {counter, f"{counter}_semantics"} <= names, (dataset, counter)
