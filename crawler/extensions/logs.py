"""Logging pieces: JSON lines for log shippers, a Scrapy formatter without per-item noise, and
URL credentials kept out of every log line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from scrapy.logformatter import LogFormatter

from crawler.extensions.runrecord import redact_url_credentials

_url_redaction_installed = False


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
    creation, so every handler, Scrapy's included, sees it without. Base URLs carrying
    credentials are refused up front (crawler/cli/main.py); this covers the URLs a crawl meets
    on its way, such as a redirect's Location. Secrets the user registered are redacted by
    crawler/downloader/signin.py's factory."""
    global _url_redaction_installed
    if _url_redaction_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to complain
            return record
        clean = redact_url_credentials(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # formatted once here; handlers reuse exc_text instead of formatting it again
            record.exc_text = redact_url_credentials(
                logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _url_redaction_installed = True
