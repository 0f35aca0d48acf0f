"""Logging pieces: JSON lines for log shippers, a Scrapy formatter without per-item noise, and
URL credentials kept out of every log line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from scrapy.logformatter import LogFormatter

from crawler.logredact import add_log_redactor, redact_url_credentials


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


def install_url_redaction() -> None:
    """Replace the user:password@ of any URL in a log record (message and traceback) at its
    creation. Base URLs carrying credentials are refused up front (crawler/cli/main.py); this
    covers the URLs a crawl meets on its way, such as a redirect's Location. Secrets the user
    registered go through the same hook (crawler/logredact.py, downloader/signin.py)."""
    add_log_redactor(redact_url_credentials)
