"""Logging pieces: a log formatter that skips the per-item record nobody reads."""

from __future__ import annotations

from typing import Any

from scrapy.logformatter import LogFormatter


class QuietLogFormatter(LogFormatter):
    """Scrapy's formatter without the DEBUG "Scraped from" record built for every item."""

    def scraped(self, item: Any, response: Any, spider: Any) -> None:  # type: ignore[override]
        return None
