"""The run is announced with `run_started`: no component reaches it through `crawler.spider`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.settings import Settings
from scrapy.signalmanager import SignalManager

from crawler.downloader.middlewares import SessionMiddleware
from crawler.extensions.runrecord import RequestedTags, RunState, TagJob
from crawler.signals import run_started
from crawler.text.tags import TagRef
from pipelines.store import StorePipeline
from tests.pipeline_helpers import offline_crawler, start_run


def _run(out: Path, *tags: str) -> RunState:
    return RunState(out=str(out), jobs=[TagJob("tiktok", TagRef(t, None)) for t in tags],
                    archive_enabled=False)


def _reached(signals: SignalManager, tag: str) -> None:
    job = {"platform": "tiktok", "name": tag, "id": None, "step": "tag_page", "state": {}}
    request = Request(f"https://www.tiktok.com/tag/{tag}", meta={"tagarchive_job": job})
    signals.send_catch_log(scrapy_signals.request_reached_downloader, request=request)


def test_requested_tags_are_marked_in_the_run_last_started(tmp_path: Path) -> None:
    signals = SignalManager()
    crawler = SimpleNamespace(signals=signals, spider=None)  # no spider to reach into
    extension = RequestedTags.from_crawler(crawler)
    _reached(signals, "early")  # before any run: nothing to mark, nothing raised
    first, second = _run(tmp_path, "a"), _run(tmp_path, "b")
    signals.send_catch_log(run_started, run=first)
    _reached(signals, "a")
    signals.send_catch_log(run_started, run=second)  # a worker's next batch
    _reached(signals, "b")
    assert extension.run is second
    assert first.requested == {("tiktok", "a")}
    assert second.requested == {("tiktok", "b")}


def test_a_pipeline_writes_for_the_run_last_started(tmp_path: Path) -> None:
    first = _run(tmp_path, "a")
    crawler = offline_crawler(first)
    store = StorePipeline(crawler)
    with pytest.raises(RuntimeError, match="no run started"):
        _ = store.run
    start_run(crawler)
    assert store.run is first
    second = _run(tmp_path, "b")
    crawler.signals.send_catch_log(run_started, run=second)
    assert store.run is second


def test_the_session_middleware_signs_in_with_the_run_last_started(tmp_path: Path) -> None:
    signals = SignalManager()
    crawler = SimpleNamespace(signals=signals, settings=Settings(), spider=None)
    middleware = SessionMiddleware.from_crawler(crawler)
    assert middleware.run is None
    run = _run(tmp_path, "a")
    signals.send_catch_log(run_started, run=run)
    assert middleware.run is run
