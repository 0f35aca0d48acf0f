"""The storage layer on an s3:// root (moto): writing, reading, compaction markers, S3 failures."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import storage.compact.s3 as s3compact
import storage.markers as markers
from storage import DatasetWriter, StorageError, duckdb_connect, open_archive, open_dataset
from storage.archive import ArchiveWriter
from storage.compact import compact
from storage.fs import BadRootError, S3Error, parse_s3_url, s3_filesystem
from tests.compact_helpers import DAY, NOW, checksum, run_id, snapshot
from tests.s3_helpers import CUT, DOWN, FAIL_WRITES, LOSE_ANSWER, PASS, S3Bucket


def _publish(url: str, run: int, rows: list[dict]) -> list[str]:
    with DatasetWriter(url, run_id(run)) as writer:
        writer.add_many("snapshots", rows)
    return [f.path.as_posix() for f in writer.files]


def _views(url: str) -> tuple[int, int]:
    con = duckdb_connect(url)
    try:
        count, total = con.sql("select count(*), sum(views) from snapshots").fetchall()[0]
    finally:
        con.close()
    return count, total


def test_bad_s3_urls_are_refused_in_one_line_without_echoing_secrets() -> None:
    assert parse_s3_url("s3://my-bucket/a/b/").base == "my-bucket/a/b"
    assert parse_s3_url("s3://my-bucket").base == "my-bucket"
    for bad in ("s3://", "s3://B/x", "s3://bucket/../x", "s3://bucket/a//b", "s3://bu",
                "s3://bucket/x?versionId=1"):
        with pytest.raises(BadRootError) as caught:
            parse_s3_url(bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(BadRootError) as caught:
        parse_s3_url("s3://AKIAKEY:hunter2secret@bucket/x")
    assert "hunter2secret" not in str(caught.value)


def test_files_are_written_once_under_unique_keys_and_read_back_exactly(
        s3_server: S3Bucket) -> None:
    rows = [snapshot(f"t{i}", DAY + timedelta(minutes=i), views=10 * i) for i in range(6)]
    paths = _publish(s3_server.url, 1, rows[:3]) + _publish(s3_server.url, 2, rows[3:])
    keys = s3_server.objects("snapshots")
    assert keys == sorted([
        f"snapshots/platform=tiktok/date=2026-01-10/part-{run_id(1)}-0001.parquet",
        f"snapshots/platform=tiktok/date=2026-01-10/part-{run_id(2)}-0001.parquet",
    ])
    assert [p.split("/", 2)[2] for p in paths] == keys
    table = open_dataset(s3_server.url, "snapshots").to_table()
    assert sorted(table["views"].to_pylist()) == [0, 10, 20, 30, 40, 50]
    assert set(table["date"].to_pylist()) == {"2026-01-10"}
    assert _views(s3_server.url) == (6, 150)
    # and pyarrow alone, from the object bytes
    raw = pq.read_table(io.BytesIO(s3_server.get(keys[0])))
    assert raw.num_rows == 3


def test_an_existing_key_is_never_overwritten(s3_server: S3Bucket) -> None:
    key = f"snapshots/platform=tiktok/date=2026-01-10/part-{run_id(1)}-0001.parquet"
    s3_server.put(key, b"someone else's object")
    with pytest.raises(StorageError, match="refusing to overwrite"):
        _publish(s3_server.url, 1, [snapshot("a", DAY, views=1)])
    assert s3_server.get(key) == b"someone else's object"


def test_warc_files_are_uploaded_on_rotate_and_rows_point_into_them(s3_server: S3Bucket) -> None:
    archive = ArchiveWriter(s3_server.url, run_id(1))
    ref = archive.write_response("tiktok", url="https://example.test/t", status=200,
                                 headers={"Content-Type": "text/plain"}, body=b"views: 42",
                                 observed_at=DAY, meta={"Step": "tag"})
    assert s3_server.objects("archive") == []  # still open: nothing visible yet
    writer = DatasetWriter(s3_server.url, run_id(1), before_flush=archive.rotate)
    writer.add("snapshots", snapshot("a", DAY, views=42, archive_file=ref.file))
    writer.close()
    archive.close()
    assert ref.file.startswith("archive/platform=tiktok/date=2026-01-10/")
    assert s3_server.objects("archive") == [ref.file]
    assert not Path(archive.root).exists()  # the local scratch copy is gone
    from warcio.archiveiterator import ArchiveIterator

    records = list(ArchiveIterator(io.BytesIO(s3_server.get(ref.file))))
    assert records[0].rec_headers.get_header("WARC-Record-ID") == ref.record_id


def test_compaction_commits_with_a_marker_and_numbers_do_not_change(s3_server: S3Bucket) -> None:
    first = [snapshot(f"t{i}", DAY + timedelta(minutes=i), views=i) for i in range(4)]
    _publish(s3_server.url, 1, first)
    _publish(s3_server.url, 2, first[:2])  # the same observations stored twice
    _publish(s3_server.url, 3, [snapshot("t9", DAY + timedelta(hours=1), views=100)])
    before = _views(s3_server.url)
    assert before == (7, 1 + 0 + 1 + 2 + 3 + 100)  # duplicates visible until compacted
    expected = checksum(r for r in {(r["tag"], r["observed_at"]): r for r in
                                    open_dataset(s3_server.url, "snapshots").to_table()
                                    .to_pylist()}.values())
    report = compact(s3_server.url, ["snapshots"], now=NOW)
    assert report.errors == []
    result = report.datasets["snapshots"]
    assert (result.compacted, result.files_before, result.rows_before, result.rows_kept) == (
        1, 3, 7, 5)
    keys = s3_server.objects("snapshots")
    assert len(keys) == 2
    output = next(k for k in keys if k.endswith("-compact.parquet"))
    marker = json.loads(s3_server.get(next(k for k in keys if "/_commit-" in k)))
    assert marker["output"] == output.rsplit("/", 1)[1]
    assert len(marker["inputs"]) == 3
    assert _views(s3_server.url) == (5, 106)
    assert checksum(open_dataset(s3_server.url, "snapshots").to_table().to_pylist()) == expected
    # a second compaction finds nothing to do and leaves the keys alone
    again = compact(s3_server.url, ["snapshots"], now=NOW).datasets["snapshots"]
    assert (again.compacted, again.already_compact) == (0, 1)
    assert s3_server.objects("snapshots") == keys


def test_compaction_of_a_compacted_partition_retires_the_old_marker(s3_server: S3Bucket) -> None:
    _publish(s3_server.url, 1, [snapshot("a", DAY, views=1), snapshot("b", DAY, views=2)])
    _publish(s3_server.url, 2, [snapshot("a", DAY, views=1)])
    compact(s3_server.url, ["snapshots"], now=NOW)
    _publish(s3_server.url, 3, [snapshot("c", DAY, views=4)])
    assert _views(s3_server.url) == (3, 7)
    compact(s3_server.url, ["snapshots"], now=NOW)
    assert _views(s3_server.url) == (3, 7)
    compact(s3_server.url, ["snapshots"], now=NOW)  # cleans up the first marker
    keys = s3_server.objects("snapshots")
    assert len([k for k in keys if "/_commit-" in k]) == 1
    assert len([k for k in keys if k.endswith(".parquet")]) == 1
    assert _views(s3_server.url) == (3, 7)


def test_compaction_stopped_before_its_marker_leaves_readers_on_the_original_data(
        s3_server: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(s3_server.url, 1, [snapshot("a", DAY, views=1), snapshot("b", DAY, views=2)])
    _publish(s3_server.url, 2, [snapshot("a", DAY, views=1)])
    original = sorted(open_dataset(s3_server.url, "snapshots").to_table()["views"].to_pylist())

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # as if the process died between the two PUTs

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(s3compact, "_put_marker", killed)
        compact(s3_server.url, ["snapshots"], now=NOW)
    keys = s3_server.objects("snapshots")
    assert len(keys) == 3
    assert any(k.endswith("-compact.parquet") for k in keys)
    assert sorted(open_dataset(s3_server.url, "snapshots").to_table()["views"]
                  .to_pylist()) == original
    assert _views(s3_server.url) == (3, 4)
    # a later run an hour on deletes the orphan output and compacts for real
    report = compact(s3_server.url, ["snapshots"], now=NOW + timedelta(days=40))
    assert report.recovered_jobs == 1
    assert _views(s3_server.url) == (2, 3)
    assert len([k for k in s3_server.objects("snapshots") if k.endswith(".parquet")]) == 1


def test_inputs_left_behind_by_a_crash_after_the_marker_are_not_read(s3_server: S3Bucket) -> None:
    _publish(s3_server.url, 1, [snapshot("a", DAY, views=1)])
    _publish(s3_server.url, 2, [snapshot("a", DAY, views=1), snapshot("b", DAY, views=5)])
    keys = s3_server.objects("snapshots")
    saved = {k: s3_server.get(k) for k in keys}
    compact(s3_server.url, ["snapshots"], now=NOW)
    for key, data in saved.items():  # the deletions of step 3 never happened
        s3_server.put(key, data)
    assert _views(s3_server.url) == (2, 6)
    # a reader that ignores the markers (every *.parquet object) counts those rows twice
    plain = [pq.read_table(io.BytesIO(s3_server.get(k))).num_rows
             for k in s3_server.objects("snapshots") if k.endswith(".parquet")]
    assert sum(plain) == 3 + 2
    assert compact(s3_server.url, ["snapshots"], now=NOW).recovered_jobs == 2
    assert not set(saved) & set(s3_server.objects("snapshots"))
    assert _views(s3_server.url) == (2, 6)


def test_racing_compactions_never_count_twice() -> None:
    a = markers.Marker("20260201T120000Z-aaaa-00001", "part-x-compact.parquet", ("p1", "p2"))
    b = markers.Marker("20260201T120001Z-bbbb-00001", "part-y-compact.parquet", ("p1", "p2"))
    visible, honoured, ignored = markers.resolve(
        ["p1", "p2", "p3", a.output, b.output, "part-z-compact.parquet"], [b, a])
    assert visible == ["p3", a.output]
    assert honoured == [a]
    assert ignored == [b]
    # a marker whose output vanished (and was not replaced) hides nothing
    visible, honoured, ignored = markers.resolve(["p1", "p2"], [a])
    assert visible == ["p1", "p2"]
    assert ignored == [a]
    # ... but one whose output a later compaction replaced still hides its inputs
    c = markers.Marker("20260201T130000Z-cccc-00001", "part-c-compact.parquet", (a.output,))
    visible, honoured, ignored = markers.resolve(["p1", c.output], [a, c])
    assert visible == [c.output]
    assert honoured == [a, c]


@pytest.mark.parametrize("mode", [FAIL_WRITES, DOWN, CUT])
def test_s3_failure_keeps_rows_buffered_and_nothing_partial_is_visible(
        s3_server: S3Bucket, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    _publish(s3_server.url, 1, [snapshot("a", DAY, views=1)])
    earlier = s3_server.objects()
    writer = DatasetWriter(s3_server.url, run_id(2), flush_rows=10_000)
    writer.add_many("snapshots", [snapshot("b", DAY, views=2), snapshot("c", DAY, views=3)])
    s3_server.proxy.mode = mode
    s3_server.proxy.requests.clear()
    with pytest.raises(S3Error) as caught:
        writer.flush()
    # TAGARCHIVE_S3_RETRIES=2: the failing upload was sent twice, then given up (the SDK does
    # not always retry a 503 to the HEAD that checks the key is free: the flush is, later)
    attempts = Counter((method, path) for _mode, method, path in s3_server.proxy.requests)
    assert max(attempts.values()) in ((1, 2) if mode == DOWN else (2,))
    message = str(caught.value)
    assert message.startswith("S3 ")
    assert "\n" not in message
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in message + caplog.text
    assert writer.pending("snapshots") == 2
    s3_server.proxy.mode = PASS
    assert s3_server.objects() == earlier  # nothing partial, nothing lost
    writer.close()
    assert _views(s3_server.url) == (3, 6)


def test_an_upload_stored_but_unanswered_is_not_counted_twice(
        s3_server: S3Bucket, caplog: pytest.LogCaptureFixture) -> None:
    writer = DatasetWriter(s3_server.url, run_id(1), flush_rows=10_000)
    writer.add_many("snapshots", [snapshot("a", DAY, views=1), snapshot("b", DAY, views=2)])
    s3_server.proxy.mode = LOSE_ANSWER
    with caplog.at_level(logging.WARNING), pytest.raises(S3Error):
        writer.flush()
    assert len(s3_server.objects("snapshots")) == 1  # moto stored it; we could not know
    s3_server.proxy.mode = PASS
    writer.close()
    assert len(s3_server.objects("snapshots")) == 1
    assert _views(s3_server.url) == (2, 3)


def test_a_warc_upload_that_fails_is_retried_by_the_next_rotate(s3_server: S3Bucket) -> None:
    archive = ArchiveWriter(s3_server.url, run_id(1))
    ref = archive.write_response("tiktok", url="https://example.test/t", status=200, headers={},
                                 body=b"x", observed_at=DAY, meta={"Step": "tag"})
    writer = DatasetWriter(s3_server.url, run_id(1), before_flush=archive.rotate)
    writer.add("snapshots", snapshot("a", DAY, views=1, archive_file=ref.file))
    s3_server.proxy.mode = FAIL_WRITES
    with pytest.raises(S3Error, match="S3 upload failed"):
        writer.flush()
    assert s3_server.objects() == []  # neither the WARC nor a row pointing into it
    s3_server.proxy.mode = PASS
    writer.close()
    archive.close()
    assert s3_server.objects() == sorted([ref.file, writer.files[0].path.as_posix()
                                       .split("/", 2)[2]])


def test_open_archive_reads_s3_and_names_a_missing_bucket(s3_server: S3Bucket) -> None:
    _publish(s3_server.url, 1, [snapshot("a", DAY, views=7)])
    with open_archive(s3_server.url + "/") as archive:
        assert archive.root == s3_server.url
        assert archive.sql("select views, date from snapshots").fetchall()[0][0] == 7
        assert str(archive.sql("select date from snapshots").types[0]) == "DATE"
        assert archive.sql("select count(*) from posts").fetchall() == [(0,)]
    with pytest.raises(S3Error, match="S3 bucket not found"):
        open_archive("s3://no-such-bucket-here/x")


def test_the_filesystem_repr_holds_no_secret(s3_server: S3Bucket) -> None:
    fs = s3_filesystem()
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in repr(fs) + str(fs)
    assert s3_server.env["AWS_ACCESS_KEY_ID"] not in repr(fs) + str(fs)


def test_the_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.fs import endpoint

    for name in ("TAGARCHIVE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert endpoint() == (None, None)  # AWS S3 itself
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.test")
    assert endpoint() == ("s3.example.test", "https")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio.test:9000/")
    assert endpoint() == ("minio.test:9000", "http")
    monkeypatch.setenv("TAGARCHIVE_S3_ENDPOINT", "localhost:9000")
    assert endpoint() == ("localhost:9000", "https")
    monkeypatch.setenv("TAGARCHIVE_S3_ENDPOINT", "ftp://localhost:9000")
    with pytest.raises(BadRootError, match="TAGARCHIVE_S3_ENDPOINT must be http"):
        endpoint()
