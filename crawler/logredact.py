"""What must never be written: the secrets sign-in registered and the user:password@ of URLs,
taken out of outcome details, run records and archived bodies, and out of every log record
through one hook (secrets and URL credentials leave a record when it is created, so every
handler, Scrapy's included, sees clean text)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

REDACTED = "[redacted]"
# values shorter than this are not treated as secrets: redacting "1" would mangle every log line
MIN_SECRET_CHARS = 6

Redactor = Callable[[str], str]
_redactors: list[Redactor] = []

# --- registered secrets (crawler/downloader/signin.py registers the user's) -------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: list[str]) -> None:
    """Values that must never be written anywhere; installs log redaction on first use."""
    with _secrets_lock:
        _secrets.update(v for v in values if len(v) >= MIN_SECRET_CHARS)
    add_log_redactor(redact)  # at record creation, so every handler sees clean text


def redact(text: str) -> str:
    """The text with every registered secret replaced."""
    if not _secrets or not text:
        return text
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# --- URL credentials --------------------------------------------------------------------------

# scheme://user:password@host: the userinfo runs to the last "@" before the path, query or
# fragment, as urlsplit reads it
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#]*@")


def display_url(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def redact_url_credentials(text: str) -> str:
    """`text` with the user:password@ of every URL in it replaced by `[redacted]@`."""
    if "@" not in text:  # the common case, checked before the regex: log lines pass here
        return text
    return _URL_USERINFO.sub(lambda m: f"{m[1]}{REDACTED}@", text)


# --- the log-record hook ----------------------------------------------------------------------


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
