"""Logging pieces: JSON lines for log shippers, and a Scrapy formatter without per-item noise."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from scrapy.logformatter import LogFormatter


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; a record's `fields` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class QuietLogFormatter(LogFormatter):
    """Scrapy's formatter without the DEBUG "Scraped from" record built for every item."""

    def scraped(self, item: Any, response: Any, spider: Any) -> None:  # type: ignore[override]
        return None
