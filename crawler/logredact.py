"""One log-record hook for every redactor: secrets and URL credentials leave a record when it is
created, so every handler (Scrapy's included) sees clean text."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

Redactor = Callable[[str], str]
_redactors: list[Redactor] = []


def add_log_redactor(redactor: Redactor) -> None:
    """Pass every later log message and traceback through `redactor` (once, however often
    asked); the hook itself is installed with the first redactor."""
    if redactor in _redactors:
        return
    if not _redactors:
        _install(logging.getLogRecordFactory())
    _redactors.append(redactor)


def redact_all(text: str) -> str:
    """`text` through every registered redactor, in the order they were added."""
    for redactor in _redactors:
        text = redactor(text)
    return text


def _install(previous: Callable[..., logging.LogRecord]) -> None:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to complain
            return record
        clean = redact_all(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # formatted once here; handlers reuse exc_text instead of formatting it again
            record.exc_text = redact_all(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
