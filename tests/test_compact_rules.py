"""Compaction: exact files before and after, each dataset's duplicate rule, what is skipped, CLI."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.cli.main import main
from storage import get_spec
from storage.compact import COMPACTED_KEY, DEDUP_RULES, RULES_VERSION, compact
from storage.locks import exclusive
from tests.compact_helpers import (
    DAY,
    NOW,
    checksum,
    data_files,
    hours,
    per_partition,
    publish,
    rows,
    run_id,
    snapshot,
    tree,
)

COMPACTED_NAME = re.compile(r"part-\d{8}T\d{6}Z-[0-9a-f]{8}-compacted\.parquet")


def inodes(root: Path) -> dict[str, int]:
    return {path: os.stat(root / path).st_ino for path in data_files(root)}


def compacted_file(root: Path, partition: str) -> Path:
    (name,) = os.listdir(root / partition)
    assert COMPACTED_NAME.fullmatch(name), name
    return root / partition / name


def test_snapshots_exact_files_rows_and_checksum(tmp_path: Path) -> None:
    for run in (1, 2, 3):
        moment = DAY + timedelta(hours=run)
        batch = [snapshot(tag, moment, views=run * 100) for tag in "abc"]
        batch += [snapshot(tag, moment, platform="xiaohongshu", views=run) for tag in "cba"]
        if run == 2:  # the same observation stored twice in one file
            batch.append(snapshot("a", moment, platform="xiaohongshu", views=run))
        publish(tmp_path, run, "snapshots", batch)
    # A replayed file (a sync tool's copy under another name): all three rows are duplicates.
    tiktok = tmp_path / "snapshots/platform=tiktok/date=2026-01-10"
    first = tiktok / f"part-{run_id(1)}-0001.parquet"
    shutil.copy(first, tiktok / f"part-{run_id(1)}-0099.parquet")
    publish(tmp_path, 4, "snapshots", [snapshot(t, DAY + timedelta(days=1)) for t in "ab"])
    for run in (5, 6):  # today's: crawls still write there
        publish(tmp_path, run, "snapshots", [snapshot("a", NOW - timedelta(minutes=run))])

    before_files = data_files(tmp_path)
    before_inodes = inodes(tmp_path)
    before = rows(tmp_path, "snapshots")
    keyed = {(r["platform"], r["tag"], r["observed_at"], r["run_id"]): r for r in before}
    assert len(before) == 26
    assert len(keyed) == 22

    report = compact(tmp_path, now=NOW)

    result = report.datasets["snapshots"]
    assert (result.partitions, result.compacted, result.already_compact) == (3, 2, 1)
    assert result.out_of_range == 1
    assert (result.files_before, result.files_after) == (8, 3)
    assert (result.rows_before, result.rows_kept, result.rows_dropped) == (24, 20, 4)
    assert result.bytes_after < result.bytes_before
    assert not result.errors
    assert report.errors == []
    assert report.exchange

    untouched = {p for p in before_files if "date=2026-01-11" in p or "date=2026-02-01" in p}
    assert len(untouched) == 3
    new = data_files(tmp_path) - untouched
    assert {str(Path(p).parent) for p in new} == {
        "snapshots/platform=tiktok/date=2026-01-10",
        "snapshots/platform=xiaohongshu/date=2026-01-10",
    }
    assert all(COMPACTED_NAME.fullmatch(Path(p).name) for p in new)
    assert len(new) == 2
    assert tree(tmp_path) == untouched | new  # no scratch or temp file left anywhere
    assert {p: before_inodes[p] for p in untouched} == {
        p: i for p, i in inodes(tmp_path).items() if p in untouched
    }

    after = rows(tmp_path, "snapshots")
    assert len(before) == len(after) + result.rows_dropped
    assert checksum(after) == checksum(keyed.values())
    assert per_partition(after)[("tiktok", "2026-01-10")] == 9

    path = compacted_file(tmp_path, "snapshots/platform=xiaohongshu/date=2026-01-10")
    table = pq.read_table(path)
    order = list(zip(table["tag"].to_pylist(), table["observed_at"].to_pylist(), strict=True))
    assert order == sorted(order)
    assert order[0][0] == "a"
    metadata = pq.read_schema(path).metadata
    assert metadata[COMPACTED_KEY] == RULES_VERSION.encode()
    assert metadata[b"tagarchive.partition"] == b"platform=xiaohongshu/date=2026-01-10"
    assert pq.read_schema(path).equals(get_spec("snapshots").schema, check_metadata=False)


def expected_latest(records: list[dict], key: tuple[str, ...], newest: str) -> list[dict]:
    """The rule, written out: rows in file order; a later row wins when as new or newer."""
    kept: dict[tuple, dict] = {}
    for row in records:
        k = tuple(row[c] for c in ("platform", "date", *key))
        if k not in kept or row[newest] >= kept[k][newest]:
            kept[k] = row
    return list(kept.values())


def test_posts_keep_the_latest_observation_per_post_per_day(tmp_path: Path) -> None:
    def post(post_id: str, tag: str, hour: int, likes: int, day: int = 0) -> dict:
        at = DAY + timedelta(days=day, hours=hour)
        return {"platform": "tiktok", "date": str(at.date()), "tag": tag, "post_id": post_id,
                "observed_at": at, "likes": likes, "source": "api"}

    runs = {
        1: [post("p1", "a", 0, 10), post("p2", "a", 0, 5), post("p1", "b", 0, 10)],
        2: [post("p1", "a", 1, 20), post("p2", "a", 1, 6)],
        3: [post("p1", "a", 2, 30), post("p1", "b", 2, 31), post("p1", "a", 0, 99, day=1)],
        4: [post("p2", "a", 3, 7), post("p1", "a", 1, 100, day=1)],
        # the same moment as run 4's p2 seen again by a later run: the later file wins the tie
        5: [post("p2", "a", 3, 8), post("p3", "a", 2, 1)],
        # a late file (a slow crawl, a backfill) with an older observation does not win
        6: [post("p1", "a", 1, 1), post("p3", "a", 1, 0)],
    }
    written = []
    for run, batch in runs.items():
        publish(tmp_path, run, "posts", batch)
        written += [{**r, "run_id": run_id(run)} for r in batch]

    report = compact(tmp_path, ["posts"], now=NOW)

    got = {(r["date"], r["tag"], r["post_id"]): (r["likes"], r["run_id"])
           for r in rows(tmp_path, "posts")}
    assert got == {
        ("2026-01-10", "a", "p1"): (30, run_id(3)),
        ("2026-01-10", "a", "p2"): (8, run_id(5)),
        ("2026-01-10", "a", "p3"): (1, run_id(5)),
        ("2026-01-10", "b", "p1"): (31, run_id(3)),
        ("2026-01-11", "a", "p1"): (100, run_id(4)),
    }
    want = expected_latest(written, ("tag", "post_id"), "observed_at")
    assert len(rows(tmp_path, "posts")) == len(want) == 5
    result = report.datasets["posts"]
    assert (result.rows_before, result.rows_kept, result.rows_dropped) == (14, 5, 9)
    assert (result.files_before, result.files_after) == (8, 2)
    assert set(report.datasets) == {"posts"}


def test_activity_a_rerun_backfill_replaces_the_window(tmp_path: Path) -> None:
    def day_row(tag: str, day: int, posts: int, observed_hour: int) -> dict:
        moment = DAY + timedelta(days=day)
        return {"platform": "mastodon", "date": str(moment.date()), "tag": tag,
                "day": moment.date(), "posts": posts, "participants": posts // 2,
                "coverage": "complete", "source": "api",
                "observed_at": NOW - timedelta(hours=observed_hour)}

    publish(tmp_path, 1, "activity", [day_row(t, d, 10 + d, 5) for t in "ab" for d in range(3)])
    publish(tmp_path, 2, "activity", [day_row("a", d, 20 + d, 1) for d in range(1, 4)])
    # published later but observed earlier than run 2 (a stale worker): loses to run 2
    publish(tmp_path, 3, "activity", [day_row("a", 2, 99, 3)])
    before = rows(tmp_path, "activity")

    report = compact(tmp_path, ["activity"], now=NOW)

    got = {(str(r["day"]), r["tag"]): r["posts"] for r in rows(tmp_path, "activity")}
    assert got == {
        ("2026-01-10", "a"): 10, ("2026-01-10", "b"): 10,
        ("2026-01-11", "a"): 21, ("2026-01-11", "b"): 11,
        ("2026-01-12", "a"): 22, ("2026-01-12", "b"): 12,
        ("2026-01-13", "a"): 23,
    }
    result = report.datasets["activity"]
    assert (result.compacted, result.already_compact, result.rows_dropped) == (2, 2, 3)
    assert len(before) == len(got) + result.rows_dropped
    assert DEDUP_RULES["activity"].key == ("tag", "day")


def test_rejects_and_runs_drop_exact_duplicates_only(tmp_path: Path) -> None:
    at = DAY + timedelta(hours=3)
    reject = {"date": "2026-01-10", "rejected_at": at, "platform": "tiktok", "item_type": "post",
              "tag": "a", "reasons": ["views: negative (-5)"], "raw": '{"views": -5}'}
    other = {**reject, "tag": "b"}
    publish(tmp_path, 1, "rejects", [reject, other])
    directory = tmp_path / "rejects/date=2026-01-10"
    shutil.copy(directory / f"part-{run_id(1)}-0001.parquet", directory / "part-copy-0001.parquet")
    # Same moment and run, one more reason: not an exact duplicate, kept.
    publish(tmp_path, 1_000, "rejects", [{**reject, "run_id": run_id(1),
                                         "reasons": ["views: negative (-5)", "text: mojibake"]}])
    outcome = {"platform": "tiktok", "tag": "a", "status": "stored", "detail": ""}
    run_row = {"date": "2026-01-10", "run_id": run_id(7), "started_at": at, "argv": ["crawl"],
               "outcomes": [outcome], "verdict": "ok", "duration_s": 1.5}
    publish(tmp_path, 7, "runs", [run_row])
    runs_dir = tmp_path / "runs/date=2026-01-10"
    shutil.copy(runs_dir / f"part-{run_id(7)}-0001.parquet", runs_dir / "part-copy-0001.parquet")
    publish(tmp_path, 8, "runs", [{**run_row, "outcomes": [{**outcome, "status": "blocked"}]}])
    before_rejects, before_runs = rows(tmp_path, "rejects"), rows(tmp_path, "runs")

    report = compact(tmp_path, ["rejects", "runs"], now=NOW)

    after_rejects, after_runs = rows(tmp_path, "rejects"), rows(tmp_path, "runs")
    assert (len(before_rejects), len(after_rejects)) == (5, 3)
    assert checksum(after_rejects) == checksum(
        {repr(sorted(r.items())): r for r in before_rejects}.values())
    assert sorted(len(r["reasons"]) for r in after_rejects) == [1, 1, 2]
    assert (len(before_runs), len(after_runs)) == (3, 2)
    assert sorted(r["outcomes"][0]["status"] for r in after_runs) == ["blocked", "stored"]
    assert report.datasets["runs"].rows_dropped == 1
    assert report.datasets["rejects"].rows_dropped == 2


def test_skips_single_files_today_and_after_before_then_is_idempotent(tmp_path: Path) -> None:
    for run, moment in enumerate(hours(3) + hours(2, DAY + timedelta(days=1)), start=1):
        publish(tmp_path, run, "snapshots", [snapshot("a", moment)])
    publish(tmp_path, 9, "snapshots", [snapshot("a", DAY + timedelta(days=2))])  # one file
    today = [snapshot("a", NOW - timedelta(hours=h)) for h in (1, 2)]
    publish(tmp_path, 10, "snapshots", today[:1])
    publish(tmp_path, 11, "snapshots", today[1:])
    files = data_files(tmp_path)

    first = compact(tmp_path, ["snapshots"], before=(DAY + timedelta(days=1)).date(), now=NOW)
    result = first.datasets["snapshots"]
    assert (result.compacted, result.already_compact, result.out_of_range) == (1, 0, 3)
    changed = files ^ data_files(tmp_path)
    assert {str(Path(p).parent) for p in changed} == {"snapshots/platform=tiktok/date=2026-01-10"}

    second = compact(tmp_path, ["snapshots"], now=NOW).datasets["snapshots"]
    assert (second.compacted, second.already_compact, second.out_of_range) == (1, 2, 1)
    settled = inodes(tmp_path)
    third = compact(tmp_path, ["snapshots"], now=NOW).datasets["snapshots"]
    assert (third.compacted, third.already_compact) == (0, 3)
    assert (third.rows_before, third.rows_kept, third.files_before) == (6, 6, 3)
    assert inodes(tmp_path) == settled  # nothing rewritten
    assert len(os.listdir(tmp_path / "snapshots/platform=tiktok/date=2026-02-01")) == 2

    last = compact(tmp_path, ["snapshots"], now=NOW, include_today=True).datasets["snapshots"]
    assert last.compacted == 1
    assert last.out_of_range == 0
    assert len(rows(tmp_path, "snapshots")) == 8


def test_older_files_without_a_newer_nullable_column_read_as_null(tmp_path: Path) -> None:
    spec = get_spec("snapshots")
    publish(tmp_path, 1, "snapshots", [snapshot("a", DAY, views=1)])
    column = next(f.name for f in reversed(spec.schema) if f.nullable)
    directory = tmp_path / "snapshots/platform=tiktok/date=2026-01-10"
    table = pq.read_table(directory / f"part-{run_id(1)}-0001.parquet")
    table = table.set_column(0, "tag", pa.array(["b"])).drop_columns([column])
    pq.write_table(table, directory / "part-older-0001.parquet")

    report = compact(tmp_path, ["snapshots"], now=NOW)

    assert report.errors == []
    got = sorted(rows(tmp_path, "snapshots"), key=lambda r: r["tag"])
    assert [(r["tag"], r["views"], r[column]) for r in got] == [("a", 1, None), ("b", 1, None)]


def test_a_file_that_fits_no_schema_leaves_its_partition_alone_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (Damaged files are moved to the quarantine instead: tests/test_storage_unreadable.py.)
    for run, moment in enumerate(hours(2) + hours(2, DAY + timedelta(days=1)), start=1):
        publish(tmp_path, run, "snapshots", [snapshot("a", moment)])
    broken = tmp_path / "snapshots/platform=tiktok/date=2026-01-11/part-broken-0001.parquet"
    pq.write_table(pa.table({"not_a_column": [1]}), broken)
    files = data_files(tmp_path)

    code = main(["compact", "--root", str(tmp_path), "--dataset", "snapshots,posts"])

    out, err = capsys.readouterr()
    assert code == 3
    (line,) = err.splitlines()
    assert line.startswith("tagarchive: error: snapshots platform=tiktok/date=2026-01-11: ")
    assert "part-broken-0001.parquet" in line
    assert {p for p in files if "2026-01-11" in p} <= data_files(tmp_path)
    assert len(os.listdir(tmp_path / "snapshots/platform=tiktok/date=2026-01-10")) == 1
    assert re.search(r"^snapshots\s+1\s+1\s+2\s+1\s", out, re.M), out
    assert [ln.split()[0] for ln in out.splitlines()[1:3]] == ["snapshots", "posts"]


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publish(tmp_path, 1, "snapshots", [snapshot("a", DAY)])
    publish(tmp_path, 2, "snapshots", [snapshot("b", DAY)])
    assert main(["compact", "--root", str(tmp_path), "--before", "2026-01-10"]) == 0
    assert "1 partition(s) left for later" in capsys.readouterr().out
    assert len(data_files(tmp_path)) == 2
    assert main(["compact", "--root", str(tmp_path)]) == 0
    assert len(data_files(tmp_path)) == 1
    capsys.readouterr()

    assert main(["compact", "--root", str(tmp_path / "missing")]) == 3
    assert capsys.readouterr().err == f"tagarchive: error: no archive at {tmp_path / 'missing'}\n"
    assert main(["compact", "--root", str(tmp_path), "--dataset", "snapshot"]) == 2
    assert capsys.readouterr().err.startswith("tagarchive: error: unknown dataset 'snapshot'")
    assert main(["compact", "--root", str(tmp_path), "--before", "yesterday"]) == 2
    assert "not a YYYY-MM-DD day" in capsys.readouterr().err
    with exclusive(tmp_path / "snapshots", busy="test"):  # what a running compaction holds
        assert main(["compact", "--root", str(tmp_path), "--dataset", "snapshots"]) == 3
    assert capsys.readouterr().err == (
        f"tagarchive: error: another compaction of snapshots is running in {tmp_path}\n")


def test_a_compacted_file_says_so_with_its_rules_version() -> None:
    # local and S3 compaction stamp their outputs through this one function
    from storage.compact.common import compacted_metadata

    spec = get_spec("snapshots")
    metadata = compacted_metadata(spec, "platform=tiktok/date=2026-01-10", 3)
    assert metadata[COMPACTED_KEY] == RULES_VERSION.encode()
    assert metadata[b"tagarchive.partition"] == b"platform=tiktok/date=2026-01-10"
    assert metadata[b"tagarchive.compacted_files"] == b"3"
    assert all(metadata[k] == v for k, v in (spec.schema.metadata or {}).items())


def test_the_readers_load_without_compaction() -> None:
    # the readers share the commit markers with S3 compaction, never compaction itself
    import subprocess
    import sys

    code = ("import sys, storage.reading, storage.markers, storage.analysis; "
            "print([m for m in sys.modules if m.startswith('storage.compact')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_page_parsed_again_by_a_later_run_replaces_that_pages_rows(tmp_path: Path) -> None:
    """reparse under a privacy mode that renames posts (an author hashed inside a Bluesky id):
    its rows replace the page's rows of the crawl, and nothing else is dropped."""
    from datetime import UTC, datetime

    from storage import table_from_rows
    from storage.compact import deduplicate

    at = datetime(2025, 1, 14, 12, tzinfo=UTC)

    def row(post_id: str, run: str, record: str | None) -> dict:
        return {"post_id": post_id, "tag": "t", "observed_at": at, "source": "api",
                "run_id": run, "archive_file": "archive/f.warc.gz" if record else None,
                "archive_record": record}

    crawl, later = "20250114T120000Z-aaaaaaaa", "20250115T000000Z-bbbbbbbb"
    first = [row("at://did:plc:x/p/1", crawl, "<urn:1>"),
             row("at://did:plc:y/p/2", crawl, "<urn:1>"),
             row("kept-other-page", crawl, "<urn:2>"), row("no-archive", crawl, None)]
    split = [row("same-run-split", crawl, "<urn:1>")]  # the crawl's own page, another flush
    again = [row("at://u_1/p/1", later, "<urn:1>"), row("at://u_2/p/2", later, "<urn:1>")]
    tables = [table_from_rows("posts", rows) for rows in (first, split, again)]
    kept = sorted(r["post_id"] for r in deduplicate("posts", tables).to_pylist())
    assert kept == sorted(["at://u_1/p/1", "at://u_2/p/2", "kept-other-page", "no-archive"])
    # without a later parse, rows of one run over two files all stay
    kept = sorted(r["post_id"] for r in deduplicate("posts", tables[:2]).to_pylist())
    assert kept == sorted(r["post_id"] for r in first + split)
