"""A crawler stand-in for driving the pipelines in a test, without a Scrapy engine."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from scrapy.settings import Settings
from scrapy.signalmanager import SignalManager
from scrapy.statscollectors import MemoryStatsCollector

from crawler.signals import run_started, tag_outcome


def offline_crawler(run: Any, settings: dict[str, Any] | None = None) -> Any:
    """What the pipelines read from a crawler: settings, stats and signals, with the run
    receiving every `tag_outcome` as the run record extension passes it on. No `spider`: no
    component may reach the run through it."""
    crawler = SimpleNamespace(settings=Settings({"STATS_DUMP": False, **(settings or {})}),
                              spider=None, run=run)
    # its own sender, as a Crawler is its SignalManager's: SignalManager() alone sends to every
    # receiver connected the same way in this process, other tests' pipelines included
    crawler.signals = SignalManager(crawler)
    crawler.stats = MemoryStatsCollector(crawler)  # type: ignore[arg-type]
    crawler.signals.connect(run.set_outcome, signal=tag_outcome)
    return crawler


def pipeline_chain(crawler: Any) -> list[Any]:
    """normalize -> validate -> dedupe -> store on `crawler`, its run started as a spider
    starts it when it opens (`run_started`). The last stage owns the run's writer: its
    `close_run()` writes every row."""
    from pipelines.dedupe import DedupePipeline
    from pipelines.normalize import NormalizePipeline
    from pipelines.store import StorePipeline
    from pipelines.validate import ValidatePipeline

    stages = [cls(crawler) for cls in (NormalizePipeline, ValidatePipeline, DedupePipeline,
                                       StorePipeline)]
    start_run(crawler)
    return stages


def start_run(crawler: Any) -> None:
    """Announce the stand-in's run to the components connected so far."""
    crawler.signals.send_catch_log(run_started, run=crawler.run)


def pipeline_push(run: Any) -> Any:
    """A callable that pushes one item through the whole chain on an offline crawler for
    `run`: True if stored, False if a stage dropped it; `.run` and `.stats` ride along, and
    `.close()` writes every row (the store pipeline closing the run's writer)."""
    from scrapy.exceptions import DropItem

    crawler = offline_crawler(run)
    stages = pipeline_chain(crawler)

    def push(item: object) -> bool:
        try:
            for stage in stages:
                item = stage.process_item(item)
        except DropItem:
            return False
        return True

    push.run = run  # type: ignore[attr-defined]
    push.stats = crawler.stats  # type: ignore[attr-defined]
    push.close = stages[-1].close_run  # type: ignore[attr-defined]
    return push
