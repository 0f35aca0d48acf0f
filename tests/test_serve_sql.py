"""The SQL box of `tagarchive serve`: one read-only statement, refused otherwise, and an engine
that could not write even if a statement got past the parser; a time limit and a row cap."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crawler.serve.sql import (
    SqlBox,
    SqlError,
    SqlRefused,
    SqlTimeout,
    check_statement,
    locked_connection,
    to_csv,
)
from storage import open_archive, open_dataset
from storage.schemas import DATASETS
from tests.analysis_helpers import write_archive

# Every one writes (a file, the catalog) or reaches outside the archive.
WRITES = [
    "insert into snapshots (tag) values ('x')",
    "copy (select * from snapshots) to 'leak.csv'",
    "attach 'leak.duckdb' as leak",
    "create table leak as select * from snapshots",
    "create or replace view snapshots as select 1 as x",
    "drop view snapshots",
    "export database 'leak'",
    "install httpfs",
    "load httpfs",
    "set enable_external_access = true",
    "pragma enable_profiling",
    "checkpoint",
    "call pragma_version()",
    "explain analyze copy (select 1) to 'leak.csv'",
    "select 1; copy (select 1) to 'leak.csv'",
    "with a as (select 1) select * from a; drop view snapshots",
]
READS = [
    "select count(*) from snapshots",
    "with a as (select tag from snapshots) select count(*) from a",
    "from runs",
    "describe snapshots",
    "show tables",
    "summarize activity",
    "values (1, 'a')",
    "select 1;",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("serve-sql") / "data")


@pytest.fixture(scope="module")
def datasets(root: Path) -> dict[str, Any]:
    return {name: open_dataset(root, name) for name in DATASETS}


def files(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size)
                  for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("sql", WRITES)
def test_a_write_or_several_statements_are_refused_before_running(sql: str) -> None:
    con = duckdb.connect()
    try:
        with pytest.raises(SqlError):
            check_statement(con, sql)
    finally:
        con.close()


@pytest.mark.parametrize("sql", READS)
def test_one_read_only_statement_passes(sql: str) -> None:
    con = duckdb.connect()
    try:
        check_statement(con, sql)
    finally:
        con.close()


def test_the_engine_cannot_write_or_read_outside_even_past_the_parser(
        root: Path, datasets: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = files(root)
    con = locked_connection(datasets)
    try:
        for sql in (f"copy (select * from snapshots) to '{tmp_path}/leak.csv'",
                    f"copy (select * from snapshots) to '{root}/leak.csv'",
                    f"attach '{tmp_path}/leak.duckdb' as leak",
                    "export database 'leak'",
                    "install httpfs",
                    "load httpfs",
                    "select * from read_csv('/etc/passwd')",
                    f"select * from read_parquet('{root}/snapshots/**/*.parquet')",
                    "select * from glob('/etc/*')",
                    "set enable_external_access = true",
                    "set lock_configuration = false"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        assert con.execute("select count(*) from snapshots").fetchone() == (9,)
    finally:
        con.close()
    assert files(root) == before
    assert list(tmp_path.iterdir()) == []


def test_the_views_are_those_of_query(root: Path, datasets: dict[str, Any]) -> None:
    """Same columns, types and rows as `tagarchive query`'s views over the same root."""
    locked = locked_connection(datasets)
    try:
        with open_archive(root) as archive:
            for name in DATASETS:
                # the partition columns' place differs between query's own roots (a glob puts
                # them in another order than an empty view): the names and types are the contract
                ours = {r[:2] for r in locked.execute(f"describe {name}").fetchall()}
                assert ours == {r[:2] for r in archive.con.execute(f"describe {name}").fetchall()}
                columns = ", ".join(f'"{column}"' for column, _type in sorted(ours))
                sql = f"select {columns} from {name} order by all"
                assert locked.execute(sql).fetchall() == archive.con.execute(sql).fetchall()
    finally:
        locked.close()


def test_results_are_capped_and_say_so(datasets: dict[str, Any]) -> None:
    box = SqlBox(timeout=30)
    capped = box.run(datasets, "select range as n from range(10)", limit=3)
    assert capped.rows == [(0,), (1,), (2,)]
    assert capped.truncated
    assert capped.columns == ["n"]
    whole = box.run(datasets, "select range as n from range(10)", limit=10)
    assert len(whole.rows) == 10
    assert not whole.truncated


def test_a_slow_query_is_interrupted(datasets: dict[str, Any]) -> None:
    box = SqlBox(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SqlTimeout, match="stopped after 0.5 s"):
        box.run(datasets, "select sum(a.range * b.range) from range(1000000000) a, "
                "range(100000) b", limit=10)
    # a hang guard, generous: without the interrupt this runs for hours
    assert time.monotonic() - started < 60
    assert box.run(datasets, "select 42", limit=1).rows == [(42,)]


def test_memory_is_capped_and_nothing_spills_to_disk(
        datasets: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # DuckDB's default spill directory is ./.tmp
    box = SqlBox(timeout=60, memory="64MB")
    with pytest.raises(SqlError, match="Out of Memory"):
        box.run(datasets, "select count(*) from (select range::varchar as s "
                "from range(20000000) order by s)", limit=1)
    assert list(tmp_path.iterdir()) == []


def test_refused_and_wrong_sql_are_one_line(datasets: dict[str, Any]) -> None:
    box = SqlBox(timeout=30)
    with pytest.raises(SqlRefused, match="not INSERT"):
        box.run(datasets, "insert into snapshots (tag) values ('x')", 5)
    with pytest.raises(SqlRefused, match="one statement at a time, got 2"):
        box.run(datasets, "select 1; select 2", 5)
    with pytest.raises(SqlError) as wrong:
        box.run(datasets, "select nope from snapshots", 5)
    assert "\n" not in str(wrong.value)
    assert "nope" in str(wrong.value)


def test_csv_shows_null_empty_and_nested_values_as_json() -> None:
    moment = datetime(2025, 1, 14, 12, tzinfo=UTC)
    text = to_csv(["a", "b", "c", "d"], [(1, None, ["x", "y"], moment), (2, "t,u", {"k": 1}, None)])
    assert list(csv.reader(io.StringIO(text))) == [
        ["a", "b", "c", "d"],
        ["1", "", '["x", "y"]', "2025-01-14T12:00:00+00:00"],
        ["2", "t,u", '{"k": 1}', ""],
    ]
