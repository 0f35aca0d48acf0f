"""A run is announced with `run_started`, and each piece of its state has one owner: the store
pipeline its dataset writer, the archive extension its WARC writer, the run record extension
how it went. None reaches another, or the run, through `crawler.spider`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse
from scrapy.settings import Settings
from scrapy.signalmanager import SignalManager
from scrapy.statscollectors import MemoryStatsCollector

from crawler.downloader.middlewares import SessionMiddleware
from crawler.downloader.pages import page_from_response
from crawler.extensions.archive import ArchiveExtension
from crawler.extensions.runrecord import EXIT_ENVIRONMENT, RunRecord, RunState, TagJob
from crawler.items import SnapshotItem
from crawler.signals import (
    flush_rows,
    item_rejected,
    publish_archive,
    run_ended,
    run_ending,
    run_started,
    send_checked,
    storage_failed,
)
from crawler.text.tags import TagRef
from pipelines.store import StorePipeline
from storage import StorageError, open_dataset
from tests.pipeline_helpers import offline_crawler, start_run

NOW = datetime.now(UTC)


def _run(out: Path, *tags: str) -> RunState:
    return RunState(out=str(out), jobs=[TagJob("tiktok", TagRef(t, None)) for t in tags])


def _crawler(settings: dict[str, Any] | None = None) -> Any:
    """Settings, stats and signals (its own, as offline_crawler's), and no spider to reach
    into."""
    crawler = SimpleNamespace(settings=Settings({"STATS_DUMP": False, **(settings or {})}),
                              spider=None)
    crawler.signals = SignalManager(crawler)
    crawler.stats = MemoryStatsCollector(crawler)  # type: ignore[arg-type]
    return crawler


def _job(tag: str) -> dict[str, Any]:
    return {"platform": "tiktok", "name": tag, "id": None, "step": "tag_page", "state": {}}


def _reached(signals: SignalManager, tag: str) -> None:
    request = Request(f"https://www.tiktok.com/tag/{tag}", meta={"tagarchive_job": _job(tag)})
    signals.send_catch_log(scrapy_signals.request_reached_downloader, request=request)


def _snapshot(tag: str, views: int = 5) -> SnapshotItem:
    return SnapshotItem(platform="tiktok", tag=tag, views=views, job_key=tag, source="api",
                        observed_at=NOW)


def _files(root: Path, dataset: str) -> list[str]:
    return sorted(p.name for p in root.glob(f"{dataset}/**/*.parquet"))


def test_requested_tags_are_marked_in_the_run_last_started(tmp_path: Path) -> None:
    crawler = _crawler()
    record = RunRecord.from_crawler(crawler)
    _reached(crawler.signals, "early")  # before any run: nothing to mark, nothing raised
    first, second = _run(tmp_path, "a"), _run(tmp_path, "b")
    crawler.signals.send_catch_log(run_started, run=first)
    _reached(crawler.signals, "a")
    crawler.signals.send_catch_log(run_started, run=second)  # a worker's next batch
    _reached(crawler.signals, "b")
    assert record.run is second
    assert first.requested == {("tiktok", "a")}
    assert second.requested == {("tiktok", "b")}


def test_the_store_pipeline_owns_one_writer_per_run(tmp_path: Path) -> None:
    first = _run(tmp_path, "a")
    crawler = offline_crawler(first)
    store = StorePipeline(crawler)
    with pytest.raises(RuntimeError, match="no run started"):
        store.process_item(_snapshot("a"))
    start_run(crawler)
    assert store.run_id == first.run_id
    store.process_item(_snapshot("a"))
    assert _files(tmp_path, "snapshots") == []  # buffered
    second = _run(tmp_path, "b")
    crawler.signals.send_catch_log(run_ending, reason="finished")  # a worker's batch ends
    assert _files(tmp_path, "snapshots") == [f"part-{first.run_id}-0001.parquet"]
    crawler.signals.send_catch_log(run_started, run=second)  # and the next begins
    store.process_item(_snapshot("b"))
    store.close_spider()
    assert _files(tmp_path, "snapshots") == sorted([f"part-{first.run_id}-0001.parquet",
                                                    f"part-{second.run_id}-0001.parquet"])
    rows = {r["tag"]: r["run_id"] for r in open_dataset(tmp_path, "snapshots").to_table()
            .to_pylist()}
    assert rows == {"a": first.run_id, "b": second.run_id}


def test_others_reach_the_store_pipelines_writer_only_by_signal(tmp_path: Path) -> None:
    run = _run(tmp_path, "a")
    crawler = offline_crawler(run)
    store = StorePipeline(crawler)  # kept: signals hold their receivers weakly
    start_run(crawler)
    row = {"date": NOW.date().isoformat(), "rejected_at": NOW, "platform": "tiktok",
           "item_type": "post", "tag": "a", "reasons": ["likes: negative"], "raw": "{}",
           "run_id": run.run_id}
    send_checked(crawler.signals, item_rejected, row=row)
    assert _files(tmp_path, "rejects") == []
    send_checked(crawler.signals, flush_rows)  # a backfill commit asks for the rows on disk
    assert _files(tmp_path, "rejects") == [f"part-{run.run_id}-0001.parquet"]
    assert store.writer.pending() == 0


def test_rows_wait_for_the_archive_they_point_into(tmp_path: Path) -> None:
    """The store pipeline asks the archive to publish before each flush; a refusal is raised
    to whoever asked for the flush, and the rows stay buffered for the next one."""
    run = _run(tmp_path, "a")
    crawler = offline_crawler(run)
    store = StorePipeline(crawler)
    publishing: list[str] = []

    def publish() -> None:
        publishing.append("asked")
        if len(publishing) == 1:
            raise StorageError("archive not writable")

    crawler.signals.connect(publish, signal=publish_archive, weak=False)
    start_run(crawler)
    store.process_item(_snapshot("a"))
    with pytest.raises(StorageError, match="archive not writable"):
        send_checked(crawler.signals, flush_rows)
    assert _files(tmp_path, "snapshots") == []
    send_checked(crawler.signals, flush_rows)
    assert publishing == ["asked", "asked"]
    assert len(_files(tmp_path, "snapshots")) == 1


def test_the_archive_keeps_each_page_a_spider_asked_for_and_says_where(tmp_path: Path) -> None:
    crawler = _crawler()
    archive = ArchiveExtension.from_crawler(crawler)
    run = _run(tmp_path, "a")
    crawler.signals.send_catch_log(run_started, run=run)
    request = Request("https://www.tiktok.com/tag/a", meta={"tagarchive_job": _job("a")})
    response = HtmlResponse(url=request.url, body=b"<html>a</html>", encoding="utf-8",
                            request=request)
    robots = HtmlResponse(url="https://www.tiktok.com/robots.txt", body=b"",
                          request=Request("https://www.tiktok.com/robots.txt"))
    for one in (response, robots):
        crawler.signals.send_catch_log(scrapy_signals.response_received, response=one,
                                       request=one.request)
    file, record_id = response.meta["tagarchive_record"]
    assert file.startswith("archive/platform=tiktok/date=")
    assert record_id.startswith("<urn:uuid:")
    assert "tagarchive_record" not in robots.meta
    # the rows the page gives carry the record's own time
    assert page_from_response(response).observed_at == response.meta["tagarchive_observed_at"]
    assert not list(tmp_path.glob("archive/**/*.warc.gz"))  # still open
    crawler.signals.send_catch_log(run_ending, reason="finished")
    assert (tmp_path / file).is_file()
    assert archive.writer is not None


def test_the_archive_is_off_when_the_settings_say_so() -> None:
    with pytest.raises(NotConfigured):
        ArchiveExtension.from_crawler(_crawler({"TAGARCHIVE_ARCHIVE_ENABLED": False}))


def test_the_run_record_writes_the_runs_row_once_with_the_first_storage_error(
        tmp_path: Path) -> None:
    crawler = _crawler({"TAGARCHIVE_HEALTH_ENABLED": "false"})
    record = RunRecord.from_crawler(crawler)  # kept: signals hold their receivers weakly
    run = _run(tmp_path, "a")
    crawler.signals.send_catch_log(run_started, run=run)
    crawler.signals.send_catch_log(storage_failed, error="first")
    crawler.signals.send_catch_log(storage_failed, error="second")
    crawler.signals.send_catch_log(run_ended, reason="finished")  # a worker's batch
    crawler.signals.send_catch_log(scrapy_signals.spider_closed, reason="finished")
    assert record.run is None
    assert run.storage_error == "first"
    assert run.exit_code == EXIT_ENVIRONMENT
    [row] = open_dataset(tmp_path, "runs").to_table().to_pylist()
    assert (row["run_id"], row["verdict"], row["exit_code"]) == (run.run_id, "error", 3)
    assert [(o["tag"], o["status"]) for o in row["outcomes"]] == [("a", "not_attempted")]


def test_the_session_middleware_signs_in_with_the_run_last_started(tmp_path: Path) -> None:
    crawler = _crawler()
    middleware = SessionMiddleware.from_crawler(crawler)
    assert middleware.run is None
    run = _run(tmp_path, "a")
    crawler.signals.send_catch_log(run_started, run=run)
    assert middleware.run is run
