"""DatasetWriter: layout, appends across runs, flush triggers, atomicity and write failures."""

from __future__ import annotations

import errno
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import (
    DATASETS,
    SCHEMA_VERSION,
    DatasetWriter,
    OutputNotWritableError,
    SchemaError,
    StorageError,
    UnsafePathError,
    WrittenFile,
    new_run_id,
    open_dataset,
    utc_day,
)

T0 = datetime(2026, 1, 23, 14, 5, 1, 123456, tzinfo=UTC)
RUN_A = "20260123T140501Z-aaaaaaaa"
RUN_B = "20260123T150501Z-bbbbbbbb"


def snapshot(platform: str, day: int, tag: str, views: int | None, **fields: Any) -> dict:
    observed = T0 + timedelta(days=day, minutes=len(tag))
    row = {"platform": platform, "date": utc_day(observed), "tag": tag, "observed_at": observed}
    row |= {"views": views, "source": "api", **fields}
    return row


def tree(root: Path) -> set[str]:
    """Every file under root, hidden ones included, as posix paths relative to root."""
    return {
        Path(current, name).relative_to(root).as_posix()
        for current, _, names in os.walk(root)
        for name in names
    }


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ROWS = [
    snapshot("tiktok", 0, "tiktokrefugee", 9_876_543_210, views_text="98.8亿",
             views_semantics="rounded"),
    snapshot("tiktok", 0, "rednote", 120_000_000, posts=2_812_000),
    snapshot("xiaohongshu", 0, "tiktok难民", 120_000_000, views_text="1.2亿",
             views_semantics="rounded"),
    snapshot("tiktok", 1, "tiktokrefugee", 9_876_543_999),
    snapshot("xiaohongshu", 1, "tiktok难民", 130_000_000, discussions=2_812_000),
    snapshot("xiaohongshu", 1, "apple", None, participants=5),
]


def test_round_trip_layout_and_four_readers(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add_many("snapshots", ROWS[:3])
        for row in ROWS[3:]:
            writer.add("snapshots", row)
    part = f"part-{RUN_A}"
    expected = {
        f"snapshots/platform=tiktok/date=2026-01-23/{part}-0001.parquet",
        f"snapshots/platform=xiaohongshu/date=2026-01-23/{part}-0002.parquet",
        f"snapshots/platform=tiktok/date=2026-01-24/{part}-0003.parquet",
        f"snapshots/platform=xiaohongshu/date=2026-01-24/{part}-0004.parquet",
    }
    assert tree(tmp_path) == expected  # no temp files, nothing else
    assert {f.path.relative_to(tmp_path).as_posix() for f in writer.files} == expected
    assert [f.rows for f in writer.files] == [2, 1, 1, 2]
    assert all(f.bytes == f.path.stat().st_size for f in writer.files)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "platform=tiktok",
        "platform=xiaohongshu",
    ]

    def key(row: dict) -> tuple:
        return (row["platform"], str(row["date"]), row["tag"])

    want = sorted(
        (
            {
                "platform": r["platform"],
                "date": r["date"],
                "tag": r["tag"],
                "observed_at": r["observed_at"],
                "views": r["views"],
            }
            for r in ROWS
        ),
        key=key,
    )
    columns = ["platform", "date", "tag", "observed_at", "views"]

    # pyarrow, through open_dataset (explicit schema and partitioning)
    table = open_dataset(tmp_path, "snapshots").to_table()
    assert table.schema.field("views").type == pa.int64()
    assert table.schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    got = sorted(table.select(columns).to_pylist(), key=key)
    assert got == want
    full = {r["tag"] + r["date"]: r for r in table.to_pylist()}
    assert full["tiktokrefugee2026-01-23"]["views_text"] == "98.8亿"
    assert full["rednote2026-01-23"]["posts"] == 2_812_000
    assert full["rednote2026-01-23"]["run_id"] == RUN_A

    glob = f"{tmp_path}/snapshots/**/*.parquet"
    # DuckDB (casts date= to DATE by itself)
    duck = duckdb.sql(
        f"SELECT {', '.join(columns)} FROM read_parquet('{glob}', hive_partitioning = true)"
    ).to_arrow_table()
    assert duck.schema.field("views").type == pa.int64()
    assert duck.schema.field("observed_at").type.tz in ("UTC", "Etc/UTC")
    got = sorted(duck.to_pylist(), key=key)
    assert [r["views"] for r in got] == [r["views"] for r in want]
    assert [r["observed_at"] for r in got] == [r["observed_at"] for r in want]
    assert [str(r["date"]) for r in got] == [r["date"] for r in want]

    # Polars
    frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert frame.schema["views"] == pl.Int64
    assert frame.schema["observed_at"] == pl.Datetime("us", "UTC")
    got = sorted(frame.select(columns).to_dicts(), key=key)
    assert [r["views"] for r in got] == [r["views"] for r in want]
    assert [r["observed_at"] for r in got] == [r["observed_at"] for r in want]

    # pandas: by default a nullable int64 column comes back as float64 (exact only below 2**53),
    # so analysts should ask for nullable dtypes.
    frame = pd.read_parquet(tmp_path / "snapshots", dtype_backend="numpy_nullable")
    assert str(frame["observed_at"].dt.tz) == "UTC"
    assert frame["views"].dtype == "Int64"
    frame = frame.sort_values(["platform", "date", "tag"])
    assert frame["views"].tolist() == [pd.NA if r["views"] is None else r["views"] for r in want]
    assert frame["observed_at"].tolist() == [r["observed_at"] for r in want]


def test_files_are_sorted_and_carry_their_partition(tmp_path: Path) -> None:
    rows = [snapshot("tiktok", 0, tag, 1) for tag in ("c", "a", "b")]
    with DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add_many("snapshots", rows)
    (written,) = writer.files
    table = pq.read_table(written.path)
    assert table["tag"].to_pylist() == ["a", "b", "c"]
    assert "platform" not in table.column_names
    assert "date" not in table.column_names
    metadata = pq.read_schema(written.path).metadata
    assert metadata[b"tagarchive.dataset"] == b"snapshots"
    assert metadata[b"tagarchive.schema_version"] == str(SCHEMA_VERSION).encode()
    assert metadata[b"tagarchive.partition"] == b"platform=tiktok/date=2026-01-23"
    assert metadata[b"tagarchive.run_id"] == RUN_A.encode()


def test_two_runs_append_never_overwrite(tmp_path: Path) -> None:
    for run_id, views in ((RUN_A, 1), (RUN_B, 2)):
        with DatasetWriter(tmp_path, run_id) as writer:
            writer.add("snapshots", snapshot("tiktok", 0, "t", views))
    directory = "snapshots/platform=tiktok/date=2026-01-23"
    assert tree(tmp_path) == {
        f"{directory}/part-{RUN_A}-0001.parquet",
        f"{directory}/part-{RUN_B}-0001.parquet",
    }
    table = open_dataset(tmp_path, "snapshots").to_table()
    pairs = zip(table["run_id"].to_pylist(), table["views"].to_pylist(), strict=True)
    assert sorted(pairs) == [
        (RUN_A, 1),
        (RUN_B, 2),
    ]


def test_sequence_numbers_never_repeat_within_a_run(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, RUN_A)
    for n in range(4):
        writer.add("snapshots", snapshot("tiktok", 0, "t", n))
        writer.flush()
    writer.close()
    names = [f.path.name for f in writer.files]
    assert names == [f"part-{RUN_A}-{seq:04d}.parquet" for seq in range(1, 5)]
    assert open_dataset(tmp_path, "snapshots").count_rows() == 4


def test_a_reused_run_id_cannot_overwrite(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add("snapshots", snapshot("tiktok", 0, "t", 1))
    before = writer.files[0].path.read_bytes()
    again = DatasetWriter(tmp_path, RUN_A)
    again.add("snapshots", snapshot("tiktok", 0, "t", 2))
    with pytest.raises(StorageError, match="refusing to overwrite"):
        again.flush()
    assert writer.files[0].path.read_bytes() == before
    assert again.pending() == 1


def test_flush_by_rows_is_per_dataset(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, RUN_A, flush_rows=3, clock=FakeClock())
    assert writer.add("snapshots", snapshot("tiktok", 0, "a", 1)) == []
    writer.add("snapshots", snapshot("xiaohongshu", 0, "b", 1))
    post = {"platform": "tiktok", "date": "2026-01-23", "post_id": "1", "tag": "a"}
    writer.add("posts", post | {"observed_at": T0, "source": "api"})
    assert writer.files == []
    assert writer.pending() == 3
    written = writer.add("snapshots", snapshot("tiktok", 0, "c", 1))
    # The third snapshot row flushes all snapshot partitions (one file each), not the post.
    assert [(f.dataset, f.rows) for f in written] == [("snapshots", 2), ("snapshots", 1)]
    assert writer.pending("snapshots") == 0
    assert writer.pending("posts") == 1
    files = writer.close()
    assert [f.dataset for f in files] == ["snapshots", "snapshots", "posts"]


def test_flush_by_time_with_an_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = DatasetWriter(tmp_path, RUN_A, flush_seconds=30, clock=clock)
    writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
    clock.now += 29.9
    assert writer.maybe_flush() == []
    writer.add("snapshots", snapshot("tiktok", 0, "b", 1))
    assert writer.files == []
    clock.now += 0.1  # the first row is now 30 s old
    written = writer.maybe_flush()
    assert [f.rows for f in written] == [2]
    # Triggered from add() too, counting from the oldest buffered row.
    clock.now += 100
    assert writer.add("snapshots", snapshot("tiktok", 0, "c", 1)) == []
    clock.now += 30
    assert [f.rows for f in writer.add("snapshots", snapshot("tiktok", 0, "d", 1))] == [2]
    assert writer.pending() == 0


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, RUN_A)
    writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
    first = writer.close()
    assert writer.closed
    assert len(first) == 1
    assert isinstance(first[0], WrittenFile)
    assert writer.close() == first == writer.files
    with pytest.raises(StorageError, match="closed"):
        writer.add("snapshots", snapshot("tiktok", 0, "b", 1))
    assert DatasetWriter(tmp_path, RUN_B).close() == []  # nothing buffered, nothing written
    assert tree(tmp_path) == {first[0].path.relative_to(tmp_path).as_posix()}


def test_context_manager_keeps_rows_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError), DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
        raise KeyError("crawl failed")
    assert writer.closed
    assert [f.rows for f in writer.files] == [1]


def test_rows_must_carry_safe_partition_keys(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, RUN_A)
    good = snapshot("tiktok", 0, "a", 1)
    with pytest.raises(SchemaError, match="missing 'date'"):
        writer.add_many("snapshots", [good, {k: v for k, v in good.items() if k != "date"}])
    with pytest.raises(UnsafePathError):
        writer.add_many("snapshots", [good, good | {"platform": "../../etc"}])
    with pytest.raises(UnsafePathError):
        writer.add("snapshots", good | {"date": "2026-02-30"})
    with pytest.raises(UnsafePathError):
        writer.add("snapshots", good | {"platform": ["tiktok"]})
    with pytest.raises(SchemaError, match="unknown dataset"):
        writer.add("tweets", good)
    assert writer.pending() == 0  # a rejected batch is not buffered at all
    with pytest.raises(UnsafePathError):
        DatasetWriter(tmp_path, "../run")


def test_rows_that_do_not_fit_go_to_rejects(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add_many(
            "snapshots",
            [
                snapshot("tiktok", 0, "good", 1),
                snapshot("tiktok", 0, "float", 1.5),  # type: ignore[arg-type]
                snapshot("tiktok", 0, "good2", 2),
                # observed on the 23rd, filed under the 24th
                snapshot("tiktok", 0, "wrongday", 3) | {"date": "2026-01-24"},
            ],
        )
    assert writer.diverted_rows == 2
    snapshots = open_dataset(tmp_path, "snapshots").to_table()
    assert sorted(snapshots["tag"].to_pylist()) == ["good", "good2"]
    rejects = open_dataset(tmp_path, "rejects").to_table().to_pylist()
    reasons = {r["tag"]: r["reasons"][0] for r in rejects}
    assert "snapshots.views: expected int64, got float" in reasons["float"]
    assert "is not in partition date=2026-01-24" in reasons["wrongday"]
    assert all(r["item_type"] == "snapshots" and r["platform"] == "tiktok" for r in rejects)
    assert '"views": 1.5' in next(r["raw"] for r in rejects if r["tag"] == "float")


# --- atomicity and failures ---------------------------------------------------------------


def _breaking_write(exc: BaseException) -> Any:
    """A pq.write_table that writes half a file, then fails."""

    def write_table(table: pa.Table, where: Any, **kwargs: Any) -> None:
        with open(where, "wb") as handle:
            handle.write(b"PAR1" + b"\0" * 100)
        raise exc

    return write_table


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("boom mid-write"), StorageError),
        (OSError(errno.EIO, "Input/output error"), StorageError),
        (OSError(errno.ENOSPC, "Error writing bytes. Detail: [errno 28]"), OutputNotWritableError),
        (PermissionError(errno.EACCES, "Permission denied"), OutputNotWritableError),
        (OSError(errno.EROFS, "Read-only file system"), OutputNotWritableError),
    ],
)
def test_failed_write_publishes_nothing_and_keeps_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, expected: type
) -> None:
    writer = DatasetWriter(tmp_path, RUN_A)
    writer.add("snapshots", snapshot("tiktok", 0, "first", 1))
    (earlier,) = writer.flush()
    before = {name: (tmp_path / name).read_bytes() for name in tree(tmp_path)}

    writer.add_many("snapshots", [snapshot("tiktok", 0, "second", 2)] * 3)
    monkeypatch.setattr(pq, "write_table", _breaking_write(exc))
    with pytest.raises(expected) as info:
        writer.flush()
    message = str(info.value)
    assert "\n" not in message
    assert "platform=tiktok/date=2026-01-23/part-" in message  # names the path
    if expected is OutputNotWritableError:
        assert isinstance(info.value, OSError)
        assert info.value.errno == exc.errno
        assert "output not writable" in message
    # Nothing new on disk, no temp file, the earlier file untouched, the rows still buffered.
    assert {name: (tmp_path / name).read_bytes() for name in tree(tmp_path)} == before
    assert writer.pending("snapshots") == 3
    assert writer.files == [earlier]

    # Automatic flushes back off after a failure; an explicit one retries at once.
    monkeypatch.undo()
    files = writer.close()
    assert [f.rows for f in files] == [1, 3]
    assert open_dataset(tmp_path, "snapshots").count_rows() == 4


def test_rows_added_during_a_failed_flush_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    writer = DatasetWriter(tmp_path, RUN_A, flush_rows=2, flush_seconds=60, clock=clock)
    monkeypatch.setattr(pq, "write_table", _breaking_write(OSError(errno.ENOSPC, "full")))
    writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
    with pytest.raises(OutputNotWritableError):
        writer.add("snapshots", snapshot("tiktok", 0, "b", 1))  # triggers the flush
    # The add itself succeeded; for a while further adds do not retry the write.
    writer.add("snapshots", snapshot("tiktok", 0, "c", 1))
    assert writer.pending() == 3
    assert tree(tmp_path) == set()
    monkeypatch.undo()
    clock.now += 60
    assert [f.rows for f in writer.add("snapshots", snapshot("tiktok", 0, "d", 1))] == [4]


def test_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "out"
    root.mkdir()
    root.chmod(0o500)
    try:
        probe = root / "probe"
        try:
            probe.mkdir()
        except PermissionError:
            simulated = False
        else:
            # Running as root: chmod does not stop writes, so simulate what the kernel would do.
            probe.rmdir()
            simulated = True

            def refuse(*args: Any, **kwargs: Any) -> None:
                raise PermissionError(errno.EACCES, "Permission denied")

            monkeypatch.setattr(os, "mkdir", refuse)
        writer = DatasetWriter(root, RUN_A)
        writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
        with pytest.raises(OutputNotWritableError, match=r"output not writable: .*out/snapshots"):
            writer.close()
        assert writer.pending() == 1
        assert not writer.closed
        monkeypatch.undo()
        assert tree(root) == set(), f"simulated={simulated}"
    finally:
        root.chmod(0o700)
    assert [f.rows for f in writer.close()] == [1]  # writable again: the retry succeeds


def test_symlinked_dataset_directory_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "snapshots").symlink_to(outside, target_is_directory=True)
    writer = DatasetWriter(root, RUN_A)
    writer.add("snapshots", snapshot("tiktok", 0, "a", 1))
    with pytest.raises(UnsafePathError):
        writer.flush()
    assert list(outside.iterdir()) == []
    assert writer.pending() == 1


def test_timer_thread_flushes_while_adding(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, new_run_id(), flush_rows=10**9, flush_seconds=0.001)
    stop = threading.Event()
    errors: list[BaseException] = []

    def timer() -> None:
        try:
            while not stop.is_set():
                writer.maybe_flush()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=timer)
    thread.start()
    try:
        for n in range(3000):
            writer.add("snapshots", snapshot(("tiktok", "xiaohongshu")[n % 2], n % 2, f"t{n}", n))
    finally:
        stop.set()
        thread.join()
    writer.close()
    assert errors == []
    table = open_dataset(tmp_path, "snapshots").to_table()
    assert sorted(table["views"].to_pylist()) == list(range(3000))
    assert sum(f.rows for f in writer.files) == 3000
    assert len({f.path for f in writer.files}) == len(writer.files)


def test_all_datasets_round_trip(tmp_path: Path) -> None:
    rows = {
        "posts": {"post_id": "p1", "tag": "t", "observed_at": T0, "source": "api", "likes": 7},
        "activity": {"tag": "t", "day": T0.date(), "coverage": "lower_bound", "source": "api"}
        | {"observed_at": T0, "posts": 3},
        "rejects": {"rejected_at": T0, "platform": "tiktok", "reasons": ["bad"], "raw": "{}"},
        "runs": {"started_at": T0, "argv": ["crawl", "tiktok"], "verdict": "ok", "exit_code": 0}
        | {"outcomes": [{"platform": "tiktok", "tag": "t", "status": "ok", "detail": None}]},
    }
    with DatasetWriter(tmp_path, RUN_A) as writer:
        for name, row in rows.items():
            partitions = {"date": "2026-01-23"}
            if "platform" in DATASETS[name].partition_by:
                partitions["platform"] = "tiktok"
            writer.add(name, row | partitions)
    assert {f.path.parent.relative_to(tmp_path).as_posix() for f in writer.files} == {
        "posts/platform=tiktok/date=2026-01-23",
        "activity/platform=tiktok/date=2026-01-23",
        "rejects/date=2026-01-23",
        "runs/date=2026-01-23",
    }
    for name, row in rows.items():
        (got,) = open_dataset(tmp_path, name).to_table().to_pylist()
        assert {k: got[k] for k in row} == row
        assert got["run_id"] == RUN_A
        assert got["date"] == "2026-01-23"


def test_a_failed_write_does_not_duplicate_diverted_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = DatasetWriter(tmp_path, RUN_A)
    writer.add_many(
        "snapshots", [snapshot("tiktok", 0, "good", 1), snapshot("tiktok", 0, "bad", -0.5)]
    )
    monkeypatch.setattr(pq, "write_table", _breaking_write(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OutputNotWritableError):
        writer.flush()
    monkeypatch.undo()
    writer.close()
    assert writer.diverted_rows == 1
    assert open_dataset(tmp_path, "rejects").to_table()["tag"].to_pylist() == ["bad"]
    assert open_dataset(tmp_path, "snapshots").to_table()["tag"].to_pylist() == ["good"]


def test_a_bad_reject_row_becomes_a_valid_reject(tmp_path: Path) -> None:
    bad = {"date": "2026-01-23", "rejected_at": T0, "reasons": "not a list", "tag": "t"}
    with DatasetWriter(tmp_path, RUN_A) as writer:
        writer.add("rejects", bad)
    (row,) = open_dataset(tmp_path, "rejects").to_table().to_pylist()
    assert row["item_type"] == "rejects"
    assert row["tag"] == "t"
    assert row["reasons"][0].startswith("storage: rejects.reasons: expected list")
    assert '"reasons": "not a list"' in row["raw"]
