"""Unreadable files under a dataset: every read skips and names them, compaction quarantines them.

The rule (docs/compaction.md): a `*.parquet` file that is empty, truncated or not Parquet, or one
outside a `k=v` partition folder, is left out of `query`, `report`, `status` and the API, with one
warning line on stderr naming it; `tagarchive compact` moves it to `.tagarchive/quarantine/`. And
the hidden `.warc.gz.tmp` files of killed crawls are removed once stale, never a live crawl's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.cli.main import main
from storage import duckdb_connect, open_dataset
from storage.archive import ArchiveWriter
from storage.compact import compact
from tests.compact_helpers import (
    DAY,
    NOW,
    checksum,
    data_files,
    hours,
    publish,
    rows,
    run_id,
    snapshot,
    tree,
)
from tests.crawl_helpers import run_cli
from tests.s3_helpers import S3Bucket

PARTITION = "snapshots/platform=tiktok/date=2026-01-10"
CONFIG = '''
out = "{out}"
state_dir = "{state}"
[watches.cats]
platforms = ["tiktok"]
tags = ["a"]
every = "1h"
'''


def good_archive(root: Path) -> str:
    """Snapshots over two days and a run: returns the checksum of every good row."""
    for run, moment in enumerate(hours(3) + hours(2, DAY + timedelta(days=1)), start=1):
        publish(root, run, "snapshots", [snapshot("a", moment, views=run * 10)])
    return checksum(rows(root, "snapshots"))


def a_good_file(root: Path) -> bytes:
    return next((root / PARTITION).glob("part-*.parquet")).read_bytes()


def zero_bytes(root: Path) -> Path:
    path = root / PARTITION / "part-zero.parquet"
    path.write_bytes(b"")
    return path


def truncated(root: Path) -> Path:
    data = a_good_file(root)
    path = root / PARTITION / "part-truncated.parquet"
    path.write_bytes(data[: len(data) // 2])
    return path


def not_parquet(root: Path) -> Path:
    path = root / PARTITION / "part-page.parquet"
    path.write_bytes(b"<html><body>403 Forbidden</body></html>\n")
    return path


def keyless_folder(root: Path) -> Path:
    path = root / "snapshots/copied-by-hand/part-stray.parquet"
    path.parent.mkdir()
    path.write_bytes(a_good_file(root))
    return path


DAMAGE: dict[str, Callable[[Path], Path]] = {
    "zero-byte": zero_bytes,
    "truncated": truncated,
    "not-parquet": not_parquet,
    "keyless-folder": keyless_folder,
}


def warnings_in(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_reads_skip_and_name_the_file_and_compact_quarantines_it(tmp_path: Path,
                                                                 kind: str) -> None:
    root = tmp_path / "data"
    expected = good_archive(root)
    bad = DAMAGE[kind](root)
    config = tmp_path / "tagarchive.toml"
    config.write_text(CONFIG.format(out=root.as_posix(), state=(tmp_path / "state").as_posix()))

    both = "select (select count(*) from posts) as posts, (select count(*) from snapshots) as s"
    result = run_cli("query", both, "--root", str(root), "--format", "csv")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == ["posts,s", "0,5"]
    (line,) = warnings_in(result.stderr)
    assert str(bad) in line
    assert "skipping unreadable file" in line

    report = tmp_path / "report.html"
    result = run_cli("report", "a", "--root", str(root), "--out", str(report))
    assert result.code == 0, result.stderr
    assert report.is_file()
    assert [str(bad) in line for line in warnings_in(result.stderr)] == [True]

    result = run_cli("status", "--config", str(config), "--json")
    assert result.code == 0, result.stderr
    assert '"a"' in result.stdout
    assert [str(bad) in line for line in warnings_in(result.stderr)] == [True]

    result = run_cli("compact", "--root", str(root))
    assert result.code == 0, result.stderr
    (line,) = warnings_in(result.stderr)
    assert line.startswith(f"tagarchive: warning: moved unreadable {bad} to ")
    moved = root / ".tagarchive/quarantine" / bad.relative_to(root)
    assert not bad.exists()
    assert moved.is_file()
    assert "moved 1 unreadable file(s)" in result.stdout
    assert not (root / "snapshots/copied-by-hand").exists()

    # every good row is still there, and reads are quiet again
    assert checksum(rows(root, "snapshots")) == expected
    result = run_cli("query", both, "--root", str(root), "--format", "csv")
    assert (result.code, result.stdout.splitlines()) == (0, ["posts,s", "0,5"])
    assert warnings_in(result.stderr) == []


def test_the_api_skips_with_a_warning_once(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    expected = good_archive(root)
    bad = [zero_bytes(root), not_parquet(root), keyless_folder(root)]
    with caplog.at_level(logging.WARNING, logger="storage.reading"):
        assert checksum(rows(root, "snapshots")) == expected
        con = duckdb_connect(root)
        assert con.sql("select count(*) from snapshots").fetchall() == [(5,)]
        open_dataset(root, "snapshots")
    named = [r.getMessage() for r in caplog.records]
    assert len(named) == 3  # once per file and process, however often it is read
    for path in bad:
        assert sum(str(path) in message for message in named) == 1


def test_a_footer_damaged_inside_is_skipped_by_sql_and_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "data"
    expected = good_archive(root)
    data = bytearray(a_good_file(root))
    footer = int.from_bytes(data[-8:-4], "little")
    data[-8 - footer:-8] = b"\xff" * footer  # magic marks and length intact, footer garbage
    bad = root / PARTITION / "part-garbled.parquet"
    bad.write_bytes(bytes(data))

    con = duckdb_connect(root)  # its glob fails on the footer; the slow path names the file
    assert con.sql("select count(*) from snapshots").fetchall() == [(5,)]

    report = compact(root, now=NOW)
    assert report.errors == []
    assert [q.source for q in report.quarantined] == [str(bad)]
    assert checksum(rows(root, "snapshots")) == expected


def test_a_damaged_file_in_a_partition_left_for_later_is_quarantined_too(tmp_path: Path) -> None:
    root = tmp_path / "data"
    expected = good_archive(root)
    bad = zero_bytes(root)
    report = compact(root, now=datetime(2026, 1, 10, 12, tzinfo=UTC))  # its day is today
    assert [q.source for q in report.quarantined] == [str(bad)]
    assert report.datasets["snapshots"].compacted == 0
    assert checksum(rows(root, "snapshots")) == expected


def test_a_damaged_file_already_in_the_quarantine_keeps_both(tmp_path: Path) -> None:
    root = tmp_path / "data"
    good_archive(root)
    zero_bytes(root)
    compact(root, now=NOW)
    zero_bytes(root)
    report = compact(root, now=NOW)
    assert len(report.quarantined) == 1
    names = sorted(p.name for p in (root / ".tagarchive/quarantine" / PARTITION).iterdir())
    assert names[0] == "part-zero.parquet"
    assert names[1].startswith("part-zero.parquet.")


def test_a_file_that_fits_no_schema_is_not_quarantined(tmp_path: Path) -> None:
    # readable Parquet written by something else: an error to look at, not damage
    root = tmp_path / "data"
    good_archive(root)
    foreign = root / PARTITION / "part-foreign.parquet"
    pq.write_table(pa.table({"something": [1]}), foreign)
    report = compact(root, now=NOW)
    assert report.quarantined == []
    assert foreign.exists()
    assert len(report.errors) == 1
    assert "part-foreign.parquet" in report.errors[0]


# --- S3 -----------------------------------------------------------------------------------------


def test_s3_reads_skip_and_compaction_quarantines(s3_server: S3Bucket,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from storage import DatasetWriter

    for run, moment in enumerate(hours(3), start=1):
        with DatasetWriter(s3_server.url, run_id(run)) as writer:
            writer.add("snapshots", snapshot("a", moment, views=run))
    expected = checksum(open_dataset(s3_server.url, "snapshots").to_table().to_pylist())
    good = s3_server.get(s3_server.objects(PARTITION)[0])
    bad = {f"{PARTITION}/part-zero.parquet": b"",
           f"{PARTITION}/part-page.parquet": b"<html>403 Forbidden</html>",
           f"{PARTITION}/part-truncated.parquet": good[: len(good) // 2],
           "snapshots/copied-by-hand/part-stray.parquet": good}
    for key, data in bad.items():
        s3_server.put(key, data)

    with caplog.at_level(logging.WARNING, logger="storage.reading"):
        table = open_dataset(s3_server.url, "snapshots").to_table()
        con = duckdb_connect(s3_server.url)
        assert con.sql("select count(*) from snapshots").fetchall() == [(3,)]
    assert checksum(table.to_pylist()) == expected
    for key in bad:
        assert sum(key in r.getMessage() for r in caplog.records) == 1

    result = run_cli("query", "select count(*) as n from snapshots", "--root", s3_server.url,
                     "--format", "csv", env=s3_server.env)
    assert (result.code, result.stdout.splitlines()) == (0, ["n", "3"])
    assert len(warnings_in(result.stderr)) == len(bad)

    report = compact(s3_server.url, ["snapshots"], now=NOW)
    assert report.errors == []
    assert len(report.quarantined) == len(bad)
    objects = set(s3_server.objects())
    for key, data in bad.items():
        assert key not in objects
        assert s3_server.get(f".tagarchive/quarantine/{key}") == data
    assert checksum(open_dataset(s3_server.url, "snapshots").to_table().to_pylist()) == expected


# --- stale .warc.gz.tmp files -------------------------------------------------------------------


def test_stale_warc_temp_files_are_removed_and_a_live_one_is_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    good_archive(root)
    day = root / "archive/platform=tiktok/date=2026-01-10"
    day.mkdir(parents=True)
    published = day / "20260110T000000Z-00000001-0001.warc.gz"
    published.write_bytes(b"a published file")
    stale = day / ".20260110T010000Z-00000002-0001.warc.gz.tmp"  # its crawl was killed
    stale.write_bytes(b"half a record")
    young = day / ".20260110T020000Z-00000003-0001.warc.gz.tmp"  # written a moment ago
    young.write_bytes(b"half a record")
    long_ago = time.time() - 3 * 3600
    os.utime(stale, (long_ago, long_ago))

    # a live crawl that has not written for hours: its lock says it is alive
    writer = ArchiveWriter(root, "20260110T030000Z-00000004")
    writer.write_response("tiktok", url="https://example.org/tag/a", status=200, headers={},
                          body=b"<html>a</html>", observed_at=DAY + timedelta(hours=3),
                          meta={"tag": "a"})
    (live,) = day.glob(".20260110T030000Z-00000004-*.warc.gz.tmp")
    os.utime(live, (long_ago, long_ago))

    assert main(["archive", "prune", "--root", str(root), "--max-age", "100000d",
                 "--dry-run"]) == 0
    assert "would remove 1 unfinished .warc.gz.tmp" in capsys.readouterr().out
    assert stale.exists()
    assert main(["archive", "prune", "--root", str(root), "--max-age", "100000d"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 unfinished .warc.gz.tmp" in out
    assert str(stale) in out
    assert not stale.exists()
    assert young.exists()
    assert live.exists()
    assert published.exists()

    # a daily compaction does the same
    os.utime(young, (long_ago, long_ago))
    assert main(["compact", "--root", str(root)]) == 0
    assert "removed 1 unfinished .warc.gz.tmp" in capsys.readouterr().out
    assert not young.exists()
    assert live.exists()

    (final,) = writer.close()  # the live file is published as if nothing happened
    assert final.is_file()
    assert not live.exists()
    assert {p for p in tree(root) if p.endswith(".tmp")} == set()
    assert len(data_files(root)) == 2
