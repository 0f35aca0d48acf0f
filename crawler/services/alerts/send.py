"""Sending through Apprise: targets whose secrets come from the environment, never written.

A target is an Apprise URL as configured, with `${VAR}` references (or the whole URL one
reference). They are expanded only here, just before sending; every expanded value is handed to
crawler/logredact.py, so no log record carries it (Apprise's own debug lines included). What is
stored and logged of a target is its redacted form: scheme and host, and the host only when it
is a host name (many Apprise URLs carry a token where the host would be).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from crawler.logredact import MIN_SECRET_CHARS, REDACTED, redact, register_secrets

logger = logging.getLogger("tagarchive.alerts")

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# query parameters that carry credentials in Apprise URLs (token=, apikey=, pass=, secret=, ...)
_SECRET_PARAMS = re.compile(r"token|key|pass|secret|auth|pwd|webhook", re.IGNORECASE)
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\"()]+")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_URL_PATH = re.compile(r"(\burl: )\S+")  # urllib3's "Max retries exceeded with url: /path"
_ERROR_CHARS = 300  # a delivery error as stored: the first lines Apprise gave
_SEND = threading.Lock()  # Apprise's log is captured per send: one send at a time


class MissingVariable(ValueError):
    """A target names an environment variable that is not set (or is empty)."""


@dataclass(frozen=True)
class Delivery:
    """How one target took one message: ok, or the (redacted) error."""

    target: str
    ok: bool
    error: str | None = None

    def as_row(self) -> dict[str, object]:
        return {"target": self.target, "ok": self.ok, "error": self.error}


def check_target(template: str) -> None:
    """ValueError unless `template` is an Apprise URL (or one `${VAR}`) with no literal secret
    that can be told apart: a password in `user:password@`, or a token-like query value."""
    rest = _REFERENCE.sub("", template)
    if "${" in rest or "$(" in rest:
        raise ValueError("a `${` without a closing `}` or a variable name (write ${NAME})")
    if _REFERENCE.fullmatch(template):
        return  # the whole URL from the environment
    match = _SCHEME.match(template)
    if match is None:
        raise ValueError(f"{_shown(template)!r} is not an Apprise URL (scheme://..., e.g. "
                         "json://host/path, mailto://..., slack://..., ntfy://...), nor ${NAME}")
    netloc = template[match.end():].split("/", 1)[0].split("?", 1)[0]
    userinfo, at, _host = netloc.rpartition("@")
    if at and ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        if not _REFERENCE.fullmatch(password):
            raise ValueError("carries a password: write it as ${NAME} and set NAME in the "
                             "service's environment (the config is not a place for secrets)")
    query = template.split("?", 1)[1] if "?" in template else ""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _SECRET_PARAMS.search(name) and value and not _REFERENCE.fullmatch(value):
            raise ValueError(f"its {name}= looks like a secret: write it as ${{NAME}} and set "
                             "NAME in the service's environment")


def _shown(template: str) -> str:
    """A malformed target as an error line may show it: without anything after the host."""
    return template.split("/", 1)[0][:40]


def expand(template: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The URL with every `${VAR}` replaced, and the secret values in it (for redaction)."""
    secrets: list[str] = []

    def value(match: re.Match[str]) -> str:
        text = environ.get(match[1], "")
        if not text:
            raise MissingVariable(f"${{{match[1]}}} is not set in the environment")
        secrets.append(text)
        return text

    url = _REFERENCE.sub(value, template)
    for text in list(secrets):
        if "://" in text:  # a whole URL from a variable: its parts are secret too
            secrets.extend(_url_parts(text))
    return url, [s for s in secrets if len(s) >= MIN_SECRET_CHARS]


def _url_parts(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password or "", parts.username or "", parts.fragment]
    found += [p for p in parts.path.split("/") if p]
    found += [v for _k, v in parse_qsl(parts.query)]
    return [p for p in found if p]


def redact_target(url: str) -> str:
    """`scheme://host[:port]`, the host only when it is a host name; else `scheme://…`.
    A target still holding a reference shows as the reference (`${SLACK_URL}`)."""
    if _REFERENCE.fullmatch(url):
        return url
    match = _SCHEME.match(url)
    if match is None:
        return "…"
    scheme = match[1].lower()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a token where the port would be (tgram://123:ABC/...)
        return f"{scheme}://…"
    if "${" in host or not _is_host_name(host):
        return f"{scheme}://…"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port else "")


def _is_host_name(host: str) -> bool:
    return host == "localhost" or "." in host or ":" in host  # a dotted name, IPv4 or IPv6


def deliver(template: str, title: str, body: str, notify_type: str,
            environ: Mapping[str, str]) -> Delivery:
    """Send one message to one target; never raises: a failure is the Delivery's error."""
    try:
        url, secrets = expand(template, environ)
    except MissingVariable as exc:
        return Delivery(redact_target(template), False, str(exc))
    register_secrets(secrets)  # from here on no log record can carry them
    target = redact_target(url)
    try:
        ok, said = _notify(url, title, body, notify_type)
    except Exception as exc:  # noqa: BLE001 - a plugin's own bug must not stop the others
        ok, said = False, [f"{type(exc).__name__}: {exc}"]
    if ok:
        return Delivery(target, True)
    return Delivery(target, False, _clean(_reason(said), secrets))


def accepts(template: str, environ: Mapping[str, str]) -> Delivery:
    """Whether Apprise would take this target (its variables set, its URL understood); sends
    nothing (`tagarchive alerts check`)."""
    try:
        url, secrets = expand(template, environ)
    except MissingVariable as exc:
        return Delivery(redact_target(template), False, str(exc))
    register_secrets(secrets)
    import apprise

    with _SEND, _captured():
        ok = apprise.Apprise().add(url)
    if ok:
        return Delivery(redact_target(url), True)
    return Delivery(redact_target(url), False, _UNKNOWN)


_UNKNOWN = "Apprise does not understand this URL (an unknown scheme, or a part missing)"


def _notify(url: str, title: str, body: str, notify_type: str) -> tuple[bool, list[str]]:
    import apprise

    with _SEND, _captured() as said:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return False, [_UNKNOWN]
        ok = bool(notifier.notify(body=body, title=title, notify_type=notify_type))
    return ok, said


def _reason(said: list[str]) -> str:
    """Apprise's warnings, with the OS's reason from its socket line (`[Errno 111] Connection
    refused`) rather than the whole exception, which repeats the URL."""
    text = "; ".join(m for m in said if not m.startswith("Socket Exception"))
    for line in (m for m in said if m.startswith("Socket Exception")):
        errno = _ERRNO.search(line)
        text += f" ({errno[0].strip()})" if errno else f" ({line})"
    return text.strip() or "Apprise reported a failure and said nothing more"


def _clean(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL.sub(lambda m: redact_target(m[0]), text)  # no path, query or userinfo
    text = _URL_PATH.sub(r"\1…", text)
    return redact(text)[:_ERROR_CHARS]


class _Collect(logging.Handler):
    """Apprise's warnings, and the one debug line that says why a connection failed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING or message.startswith("Socket Exception"):
            self.messages.append(message)


@contextmanager
def _captured() -> Iterator[list[str]]:
    """Apprise's warnings during one send, as the delivery's error, instead of in the log: the
    one warning line is ours (it names the alert and the redacted target)."""
    apprise_log = logging.getLogger("apprise")
    handler = _Collect()
    propagate, level = apprise_log.propagate, apprise_log.level
    apprise_log.addHandler(handler)
    apprise_log.propagate = False
    apprise_log.setLevel(logging.DEBUG)
    try:
        yield handler.messages
    finally:
        apprise_log.removeHandler(handler)
        apprise_log.propagate = propagate
        apprise_log.setLevel(level)
