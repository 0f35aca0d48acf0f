"""Outcomes through one door: every component reports a tag's outcome with `tag_outcome`, and
the run record extension is the one that keeps it."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from crawler.extensions.runrecord import RunRecord, RunState, TagJob
from crawler.platforms.base import Fetch, Outcome
from crawler.signals import run_started, send_outcome, tag_outcome
from crawler.spiders.snapshot import SnapshotSpider
from crawler.text.tags import TagRef


def _recorded(run: RunState) -> tuple[SnapshotSpider, RunRecord]:
    """A snapshot spider for `run` and the run record keeping it, as a crawl has them once the
    spider opened (it announces its run with `run_started`)."""
    crawler = get_crawler(SnapshotSpider)
    spider = SnapshotSpider.from_crawler(crawler, run=run)
    record = RunRecord.from_crawler(crawler)
    crawler.signals.send_catch_log(run_started, run=run)
    return spider, record


def test_the_run_record_receives_every_outcome() -> None:
    run = RunState(out="unused", jobs=[TagJob("tiktok", TagRef("cats", None))])
    spider, record = _recorded(run)
    assert record.run is run
    assert run.outcomes[("tiktok", "cats")] == ("pending", "")
    signals = spider.crawler.signals
    send_outcome(signals, "tiktok", "cats", Outcome.BLOCKED, "a captcha")
    assert run.outcomes[("tiktok", "cats")] == ("blocked", "a captcha")
    send_outcome(signals, "tiktok", "cats", Outcome.STORED)
    send_outcome(signals, "tiktok", "cats", Outcome.ERROR, "too late")  # stored is final
    assert spider.run.outcomes[("tiktok", "cats")] == ("stored", "")


def test_a_pipeline_reports_a_rejected_snapshot_through_the_signal(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from crawler.items import SnapshotItem
    from pipelines.validate import ValidatePipeline
    from tests.pipeline_helpers import offline_crawler, start_run

    run = RunState(out=str(tmp_path), jobs=[TagJob("tiktok", TagRef("cats", None))])
    received: list[dict[str, object]] = []
    crawler = offline_crawler(run)
    crawler.signals.connect(lambda **kw: received.append(kw), signal=tag_outcome, weak=False)
    item = SnapshotItem(platform="tiktok", tag="cats", views=-1, job_key="cats",
                        observed_at=datetime.now(UTC), source="api")
    with pytest.raises(DropItem):
        pipeline = ValidatePipeline(crawler)
        start_run(crawler)
        pipeline.process_item(item)
    assert [(r["platform"], r["key"], r["outcome"]) for r in received] == [
        ("tiktok", "cats", Outcome.REJECTED)]
    assert run.outcomes[("tiktok", "cats")][0] == "rejected"


def test_an_errback_names_the_failed_request_from_scrapys_failure() -> None:
    import scrapy
    from scrapy.exceptions import IgnoreRequest
    from twisted.python.failure import Failure

    from crawler.downloader.pages import failed_request

    run = RunState(out="unused", jobs=[TagJob("tiktok", TagRef("cats", None))])
    spider, _record = _recorded(run)
    request = spider._request(Fetch(url="https://www.tiktok.com/tag/cats", step="tag_page"),
                              TagJob("tiktok", TagRef("cats", None)))
    assert isinstance(request, scrapy.Request)
    failure = Failure(IgnoreRequest("Forbidden by robots.txt"))
    failure.request = request  # type: ignore[attr-defined]  # as Scrapy's errback call sets it
    assert failed_request(failure) is request
    spider.on_error(failure)
    assert run.outcomes[("tiktok", "cats")] == (
        "robots_disallowed", "https://www.tiktok.com/tag/cats is disallowed by robots.txt")


def test_the_snapshot_spiders_run_is_made_in_from_crawler_when_none_is_given() -> None:
    spider = SnapshotSpider()
    with pytest.raises(AttributeError, match="made in from_crawler"):
        _ = spider.run
    crawler = get_crawler(SnapshotSpider, {"TAGARCHIVE_OUT": "elsewhere"})
    made = SnapshotSpider.from_crawler(crawler, platforms="tiktok", tags="cats,dogs")
    assert made.run.out == "elsewhere"
    assert made.run.command == "scrapy crawl"
    assert [job.key for job in made.run.jobs] == ["cats", "dogs"]
