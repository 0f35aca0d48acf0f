"""Item pipelines, one concern each: normalize -> validate -> dedupe -> store."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler


class RunPipeline:
    """Base: gives a pipeline the crawl's `RunState` (held by the spider)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(crawler)

    @property
    def run(self) -> Any:
        return self.crawler.spider.run
