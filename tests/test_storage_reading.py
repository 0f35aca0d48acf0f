"""Readers: open_dataset and the DuckDB views, on empty, partial and odd roots."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from storage import (
    DATASETS,
    DatasetWriter,
    UnsafePathError,
    dataset_schema,
    duckdb_connect,
    open_dataset,
)

T0 = datetime(2026, 1, 23, 14, 5, 1, tzinfo=UTC)
RUN = "20260123T140501Z-aaaaaaaa"


def write_snapshot(root: Path, platform: str = "tiktok", views: int = 1) -> None:
    row = {"platform": platform, "date": "2026-01-23", "tag": "t", "observed_at": T0}
    with DatasetWriter(root, RUN) as writer:
        writer.add("snapshots", row | {"views": views, "source": "api"})


def describe(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {view}").fetchall()}


def test_views_exist_on_an_empty_root(tmp_path: Path) -> None:
    con = duckdb_connect(tmp_path / "never-written")
    for name, spec in DATASETS.items():
        columns = describe(con, name)
        assert list(columns) == spec.schema.names + list(spec.partition_by)
        assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (0,)
    snapshots = describe(con, "snapshots")
    assert snapshots["observed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert snapshots["views"] == "BIGINT"
    assert snapshots["views_semantics"] == "VARCHAR"
    assert snapshots["platform"] == "VARCHAR"
    assert snapshots["date"] == "DATE"
    assert describe(con, "runs")["outcomes"].startswith("STRUCT(platform VARCHAR")
    assert not (tmp_path / "never-written").exists()  # reading creates nothing


def test_empty_and_populated_views_agree_on_columns(tmp_path: Path) -> None:
    empty = describe(duckdb_connect(tmp_path), "snapshots")
    write_snapshot(tmp_path)
    populated = describe(duckdb_connect(tmp_path), "snapshots")
    assert populated == empty


def test_connect_again_refreshes_the_views(tmp_path: Path) -> None:
    con = duckdb_connect(tmp_path)
    write_snapshot(tmp_path, views=9_876_543_210)
    assert duckdb_connect(tmp_path, con) is con
    assert con.execute("SELECT views, platform, date FROM snapshots").fetchall() == [
        (9_876_543_210, "tiktok", datetime(2026, 1, 23).date())
    ]
    assert con.execute("SELECT count(*) FROM posts").fetchone() == (0,)


def test_partition_values_keep_their_text(tmp_path: Path) -> None:
    # Left to inference, pyarrow would read platform=2024 as int32 and polars 007 as 7.
    write_snapshot(tmp_path, platform="007")
    table = open_dataset(tmp_path, "snapshots").to_table()
    assert table["platform"].to_pylist() == ["007"]
    assert table["date"].to_pylist() == ["2026-01-23"]
    con = duckdb_connect(tmp_path)
    assert con.execute("SELECT platform FROM snapshots").fetchall() == [("007",)]


@pytest.mark.parametrize(
    ("name", "decoy"),
    [
        ("it's", None),
        ("br[1]", "br1"),
        ("star*", "starfish"),
        ("q?", "qq"),
        ("cur{a,b}", "cura"),
        ("sp ace", None),
        ("日本", None),
    ],
)
def test_odd_root_names_are_escaped_for_sql_and_globs(
    tmp_path: Path, name: str, decoy: str | None
) -> None:
    root = tmp_path / name
    write_snapshot(root)
    if decoy:  # a directory an unescaped glob would also match
        write_snapshot(tmp_path / decoy)
    con = duckdb_connect(root)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (1,)


def test_backslash_root_is_refused_for_duckdb(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match="backslash"):
        duckdb_connect(tmp_path / "back\\slash")


def test_open_dataset_reads_only_published_files(tmp_path: Path) -> None:
    write_snapshot(tmp_path)
    directory = tmp_path / "snapshots" / "platform=tiktok" / "date=2026-01-23"
    (directory / f".part-{RUN}-0009.parquet.tmp").write_bytes(b"PAR1 half written")
    (directory / "_SUCCESS").write_bytes(b"")
    (directory / "notes.txt").write_text("not data")
    assert open_dataset(tmp_path, "snapshots").count_rows() == 1
    con = duckdb_connect(tmp_path)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (1,)


def test_open_dataset_on_a_missing_dataset_is_empty(tmp_path: Path) -> None:
    dataset = open_dataset(tmp_path, "activity")
    assert dataset.schema == dataset_schema("activity")
    assert dataset.to_table().num_rows == 0
    assert dataset.schema.field("date").type == pa.string()


def test_new_connections_show_utc(tmp_path: Path) -> None:
    con = duckdb_connect(tmp_path)
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
