"""The commands on an s3:// root: crawls against the replica stored in moto, read back exactly."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawler.cli.main import main
from replica.server import ReplicaServer
from storage import DatasetWriter, open_archive, open_dataset
from tests.backfill_helpers import UNTIL, stored_days, truth
from tests.compact_helpers import DAY, run_id, snapshot
from tests.crawl_helpers import CrawlResult, run_cli
from tests.s3_helpers import FAIL_WRITES, PASS, S3Bucket, free_port

TAGS = ("cats", "dogs", "rust")


def _crawl(replica: ReplicaServer, bucket: S3Bucket, *extra: str) -> CrawlResult:
    return run_cli("crawl", "bilibili", *TAGS, "--out", bucket.url, "--replica", replica.url,
                   "--delay", "0", "--concurrency", "4", *extra, env=bucket.env)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> CrawlResult:
    """A command in this process (the s3_server fixture set the environment): no start-up cost."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return CrawlResult(code, out, err)


def _query(capsys: pytest.CaptureFixture[str], bucket: S3Bucket, sql: str) -> list[dict[str, str]]:
    result = _cli(capsys, "query", "--root", bucket.url, "--format", "csv", sql)
    assert result.code == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_crawl_query_and_compact_on_s3(replica: ReplicaServer, s3_server: S3Bucket,
                                       capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    first = _crawl(replica, s3_server)
    assert first.code == 0, first.stderr
    assert f"under {s3_server.url}" in first.stdout
    second = _crawl(replica, s3_server)
    assert second.code == 0, second.stderr
    keys = s3_server.objects()
    assert len(keys) == len(set(keys))
    assert not [k for k in keys if ".tmp" in k or k.rsplit("/", 1)[1].startswith(".")]
    runs = [k for k in keys if k.startswith("runs/")]
    assert len(runs) == 2  # one record per crawl, each under its own run id
    snapshot_keys = [k for k in keys if k.startswith("snapshots/")]
    assert len(snapshot_keys) == 2

    # exact numbers, through pyarrow (our listing) and through DuckDB (registered datasets)
    truth = {tag: replica.world.topic("bilibili", tag) for tag in TAGS}
    table = open_dataset(s3_server.url, "snapshots").to_table()
    assert table.num_rows == 6
    for row in table.to_pylist():
        assert (row["views"], row["posts"], row["discussions"]) == (
            truth[row["tag"]].views, truth[row["tag"]].posts, truth[row["tag"]].discussions)
    with open_archive(s3_server.url) as archive:
        by_tag = dict(archive.sql("select tag, max(views) from snapshots group by tag")
                      .fetchall())
    assert by_tag == {tag: truth[tag].views for tag in TAGS}
    # each row's archive pointer names an uploaded WARC file
    assert {r["archive_file"] for r in table.to_pylist()} <= set(keys)
    # and a plain Parquet reader gets the same rows from the objects
    raw = sum(pq.read_table(io.BytesIO(s3_server.get(k))).num_rows for k in snapshot_keys)
    assert raw == 6
    sql = "select tag, count(*) as n, sum(views) as views from snapshots group by tag order by tag"
    before = _query(capsys, s3_server, sql)
    assert [(r["tag"], int(r["n"]), int(r["views"])) for r in before] == [
        (tag, 2, 2 * truth[tag].views) for tag in sorted(TAGS)]

    compacted = _cli(capsys, "compact", "--out", s3_server.url, "--include-today")
    assert compacted.code == 0, compacted.stderr
    keys = s3_server.objects()
    assert len([k for k in keys if k.startswith("snapshots/")
                and k.endswith("-compact.parquet")]) == 1
    assert len([k for k in keys if k.startswith("snapshots/") and "/_commit-" in k]) == 1
    assert _query(capsys, s3_server, sql) == before
    html = tmp_path / "cats.html"
    reported = _cli(capsys, "report", "cats", "--root", s3_server.url, "--out", str(html))
    assert reported.code == 0, reported.stderr
    assert f"{truth['cats'].views:,}" in html.read_text()
    # the second crawl's health checks read the first one's rows from S3
    health = _query(capsys, s3_server, "select health from runs")
    assert [r["health"] for r in health] == ["healthy", "healthy"]

    # no secret anywhere: not in the output, the run records or any stored object
    secret = s3_server.env["AWS_SECRET_ACCESS_KEY"].encode()
    assert secret.decode() not in first.stdout + first.stderr + compacted.stdout
    assert not [k for k in keys if secret in s3_server.get(k)]
    settings = _query(capsys, s3_server, "select settings, argv from runs")
    assert all(secret.decode() not in json.dumps(r) for r in settings)


def test_s3_refusing_writes_fails_the_run_by_name_and_loses_nothing(
        replica: ReplicaServer, s3_server: S3Bucket, capsys: pytest.CaptureFixture[str]) -> None:
    with DatasetWriter(s3_server.url, run_id(1)) as writer:  # an earlier run's file
        writer.add("snapshots", snapshot("cats", DAY, views=5))
    earlier = {k: s3_server.get(k) for k in s3_server.objects()}
    sql = "select tag, views, run_id from snapshots order by tag"
    numbers = _query(capsys, s3_server, sql)
    assert [r["views"] for r in numbers] == ["5"]
    s3_server.proxy.mode = FAIL_WRITES  # listing and reading work, every upload fails
    failed = _crawl(replica, s3_server)
    s3_server.proxy.mode = PASS
    assert failed.code == 3, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("tagarchive: ")]
    assert errors
    assert errors[-1].startswith("tagarchive: storage error: S3 upload failed for s3://")
    # nothing new (not even a partial object), nothing lost
    assert {k: s3_server.get(k) for k in s3_server.objects()} == earlier
    assert _query(capsys, s3_server, sql) == numbers


@pytest.mark.parametrize(("args", "code", "said"), [
    (("crawl", "bilibili", "cats", "--out", "s3://Not_A_Bucket/x"), 2, "not an S3 bucket name"),
    (("crawl", "bilibili", "cats", "--out", "s3://key:secret123@bucket/x"), 2,
     "must not hold credentials"),
    (("crawl", "bilibili", "cats", "--out", "s3://no-such-bucket/x"), 3, "S3 bucket not found"),
    (("query", "--root", "s3://bucket/a//b", "select 1"), 2, "unusable S3 prefix"),
    (("query", "--root", "s3://no-such-bucket/x", "select 1"), 3, "S3 bucket not found"),
    (("compact", "--out", "s3://x"), 2, "not an S3 bucket name"),
    (("reparse", "--root", "s3://no-such-bucket"), 3, "S3 bucket not found"),
    (("archive", "prune", "--root", "s3://no-such-bucket", "--max-age", "9d"), 3,
     "S3 bucket not found"),
    (("demo", "--out", "s3://bucket/x"), 2, "demo writes a local directory only"),
])
def test_bad_or_missing_s3_roots_get_one_line(s3_server: S3Bucket, args: tuple[str, ...],
                                              code: int, said: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    result = _cli(capsys, *args)
    assert result.code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert said in lines[0], result.stderr
    assert "secret123" not in result.stderr


def test_an_unreachable_endpoint_is_named(s3_server: S3Bucket, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TAGARCHIVE_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    result = _cli(capsys, "query", "--root", s3_server.url, "select 1")
    assert result.code == 3
    assert result.stderr.startswith("tagarchive: error: S3 bucket check failed for s3://")
    assert len(result.stderr.strip().splitlines()) == 1


def test_reparse_and_prune_read_the_warc_files_on_s3(replica: ReplicaServer,
                                                     s3_server: S3Bucket,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _crawl(replica, s3_server).code == 0
    warcs = s3_server.objects("archive")
    assert warcs
    again = _cli(capsys, "reparse", "--root", s3_server.url)
    assert again.code == 0, again.stderr
    assert "-> 3 snapshots" in again.stdout
    # compaction after reparse keeps one row per observation: the re-parsed one
    rows = _query(capsys, s3_server, "select tag, views, run_id from snapshots order by tag")
    assert len(rows) == 3
    assert {r["run_id"] for r in rows} == {again.stdout.split()[1].rstrip(":")}
    pruned = _cli(capsys, "archive", "prune", "--root", s3_server.url, "--max-size", "0")
    assert pruned.code == 0, pruned.stderr
    assert f"removed {len(warcs)} WARC files" in pruned.stdout
    assert s3_server.objects("archive") == []


def test_backfill_to_s3_keeps_its_walk_state_locally(replica: ReplicaServer, s3_server: S3Bucket,
                                                     tmp_path: Path) -> None:
    env = {**s3_server.env, "TAGARCHIVE_STATE_DIR": str(tmp_path / "state")}
    since = UNTIL - timedelta(days=2)  # three days: a few pages
    result = run_cli("backfill", "mastodon", "rust", "--since", since.isoformat(), "--until",
                     UNTIL.isoformat(), "--out", s3_server.url, "--replica", replica.url,
                     "--delay", "0", env=env)
    assert result.code == 0, result.stderr
    expected = truth(replica, "mastodon", "rust", since, UNTIL)
    assert sum(posts for posts, _ in expected.values()) > 40  # more than one page of 40
    assert stored_days(s3_server.url) == {  # type: ignore[arg-type]
        day: (*counts, "complete") for day, counts in expected.items()}
    state = list((tmp_path / "state" / "s3" / s3_server.name).rglob("state.json"))
    assert len(state) == 1
    assert json.loads(state[0].read_text())["done"]
    assert not [k for k in s3_server.objects() if k.startswith(".tagarchive")]


def test_status_and_the_schedulers_record_lookup_read_s3(s3_server: S3Bucket, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from datetime import UTC, datetime

    from crawler.services.fires import find_record
    from crawler.services.watchconfig import load_config

    now = datetime.now(UTC).replace(microsecond=0)
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'out = "{s3_server.url}/"\nstate_dir = "state"\n'
                    '[watches.pets]\nplatforms = ["bilibili"]\ntags = ["cats"]\nevery = "1h"\n')
    config = load_config(path)
    assert config.out == s3_server.url  # kept as a URL, not folded into a local path
    with DatasetWriter(config.out, "r-pets") as writer:
        writer.add("snapshots", snapshot("cats", now - timedelta(minutes=10), platform="bilibili",
                                         views=9))
        started = now - timedelta(minutes=11)  # its own day, not now's: just after midnight
        writer.add("runs", {"run_id": "r-pets", "date": started.strftime("%Y-%m-%d"),
                            "started_at": started, "watch": "pets",
                            "verdict": "ok", "trigger": "schedule", "health": "healthy"})
    assert main(["status", "--json", "--config", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    watch = data["watches"][0]
    assert watch["last_run"]["run_id"] == "r-pets"
    assert [(t["tag"], t["state"]) for t in watch["tags"]] == [("cats", "fresh")]
    assert find_record(config.out, "r-pets")["verdict"] == "ok"  # type: ignore[arg-type,index]
    assert find_record(config.out, "r-other") is None  # type: ignore[arg-type]
    bad = tmp_path / "bad.toml"
    bad.write_text('out = "s3://Bad_Bucket"\n[watches.x]\nplatforms = ["bilibili"]\n'
                   'tags = ["a"]\nevery = "1h"\n')
    assert main(["status", "--config", str(bad)]) == 2
    assert "not an S3 bucket name" in capsys.readouterr().err
