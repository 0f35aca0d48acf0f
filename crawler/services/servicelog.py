"""The schedule service's log: text lines or JSON objects on stderr, one line per run."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

from crawler.extensions.logs import JsonFormatter


class _DropDuplicates(logging.Filter):
    """APScheduler's own skip/miss warnings: the scheduler logs and stores those itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith('Execution of job "%s" skipped')
                    or text.startswith('Run time of job "%s" was missed'))


def setup_logging(log_format: str = "text", level: int = logging.INFO,
                  stream: IO[str] | None = None) -> logging.Handler:
    """Log to stderr as text lines or JSON objects; returns the installed handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                      "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(_DropDuplicates())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # its INFO lines ("Added job", "Running job") repeat what the one line per run says
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler


