"""A crawler stand-in for driving the pipelines in a test, without a Scrapy engine."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from scrapy.settings import Settings
from scrapy.signalmanager import SignalManager
from scrapy.statscollectors import MemoryStatsCollector

from crawler.signals import tag_outcome


def offline_crawler(run: Any, settings: dict[str, Any] | None = None) -> Any:
    """What the pipelines read from a crawler: settings, stats, signals and the run (on
    `spider`), with the run receiving every `tag_outcome` as a spider connects it."""
    crawler = SimpleNamespace(settings=Settings({"STATS_DUMP": False, **(settings or {})}),
                              signals=SignalManager(), spider=SimpleNamespace(run=run))
    crawler.stats = MemoryStatsCollector(crawler)  # type: ignore[arg-type]
    crawler.signals.connect(run.set_outcome, signal=tag_outcome)
    return crawler
