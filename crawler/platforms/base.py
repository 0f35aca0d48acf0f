"""The contract between the generic spider and one platform adapter.

An adapter is pure: it turns a tag into the first `Fetch`, and each fetched `Page` into either
the next `Fetch` or a `TagResult`. It never does I/O, never reads a clock or a setting; the spider
does the navigating and hands it the observation time. A failure the platform shows (not found,
login wall, captcha, a changed layout) is raised as a `PlatformError` subclass so the run record
can name it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from crawler.text.tags import TagRef


class Outcome(StrEnum):
    """How one (platform, tag) ended in a run; stored in `runs.outcomes`."""

    STORED = "stored"
    NOT_FOUND = "not_found"
    LOGIN_WALL = "login_wall"
    CAPTCHA = "captcha"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    LAYOUT_CHANGED = "layout_changed"
    REJECTED = "rejected"
    UNSUPPORTED = "unsupported"
    ROBOTS_DISALLOWED = "robots_disallowed"
    ERROR = "error"
    NOT_ATTEMPTED = "not_attempted"  # the run stopped before the tag was requested
    # not requested: its platform's breaker is open after a captcha, block or rate limit
    # (crawler/downloader/breaker.py); the detail says why and until when
    COOLING_OFF = "cooling_off"


# A failure's detail is printed on stderr and stored in `runs.outcomes`; it often quotes the
# page, and a hostile page can put a megabyte where a short code belongs.
MAX_DETAIL = 300


class PlatformError(Exception):
    """A platform answered, but not with the tag's data; `outcome` names why."""

    outcome: ClassVar[Outcome] = Outcome.ERROR

    def __init__(self, detail: str) -> None:
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL - 1] + "…"
        super().__init__(detail)
        self.detail = detail


class NotFound(PlatformError):
    outcome = Outcome.NOT_FOUND


class LoginWall(PlatformError):
    outcome = Outcome.LOGIN_WALL


class Captcha(PlatformError):
    outcome = Outcome.CAPTCHA


class Blocked(PlatformError):
    outcome = Outcome.BLOCKED


class RateLimited(PlatformError):
    outcome = Outcome.RATE_LIMITED


class LayoutChanged(PlatformError):
    outcome = Outcome.LAYOUT_CHANGED


class Unsupported(PlatformError):
    outcome = Outcome.UNSUPPORTED


class UnreadableJSON(LayoutChanged):
    """Well-formed JSON this process cannot read: nested deeper than the recursion limit, or a
    number longer than `int()` converts (4,300 digits). No platform answers that; a malformed
    body stays a `json.JSONDecodeError`, which each adapter reads in its own way."""


class AdapterFailed(LayoutChanged):
    """A step raised something other than a PlatformError: the page is not one the adapter was
    written for. `guarded_handle` raises it; the detail names the exception's type."""

    def __init__(self, detail: str, *, where: str = "") -> None:
        super().__init__(detail)
        self.where = where  # "crawler/platforms/x.py:123 in parse_y", for the log line


class UnknownStep(LookupError):
    """A step no method of the adapter reads (a request or archive from another version)."""


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """What a rendered fetch must collect: the page's own JSON responses and a DOM marker."""

    capture: tuple[str, ...] = ()  # regexes matched against response URLs the page fetches
    wait_for: str | None = None  # CSS selector that marks a rendered page (best effort)
    timeout_ms: int = 15_000

    def to_meta(self) -> dict[str, Any]:
        # plain dict: request meta must stay picklable (JOBDIR, Redis queues)
        return {"capture": list(self.capture), "wait_for": self.wait_for,
                "timeout_ms": self.timeout_ms}


@dataclass(frozen=True, slots=True)
class SignSpec:
    """A request that a live page on the platform's origin makes acceptable (docs/access.md).

    `signer` names how (crawler/downloader/signing_sites.py): the site's own signing function
    called in the page, or the request run as a fetch inside it. `uri` is what the site's
    signer is given (the API path and query as the site's own script passes them). `fallback`
    is the rendered fetch that reads the same data; the downloader takes it when signing is
    unavailable (no signer in the page, signatures refused by a fresh page).
    """

    signer: str
    uri: str = ""
    fallback: Fetch | None = None

    def to_meta(self) -> dict[str, Any]:
        # plain dict, picklable; the spider adds the fallback as the request it would send
        return {"signer": self.signer, "uri": self.uri}


@dataclass(frozen=True, slots=True)
class Fetch:
    """One request an adapter asks for; `step` names the adapter method that reads the answer."""

    url: str
    step: str
    method: str = "GET"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    render: RenderSpec | None = None
    state: dict[str, Any] = field(default_factory=dict)  # carried to the next step; picklable
    sign: SignSpec | None = None  # signed in a live page (crawler/downloader/signing.py)


@dataclass(frozen=True, slots=True)
class Captured:
    """One response the rendered page fetched for itself (captured XHR)."""

    url: str
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        """The body as JSON; None when empty or malformed (adapters name what that means),
        UnreadableJSON when it is hostile."""
        try:
            return load_json(self.body) if self.body.strip() else None
        except json.JSONDecodeError:
            return None


@dataclass(frozen=True, slots=True)
class Page:
    """What the spider saw for one `Fetch`: plain data, so parsers are testable from files."""

    url: str
    status: int
    headers: dict[str, str]  # lower-cased names
    text: str
    observed_at: datetime
    rendered: bool = False
    captured: tuple[Captured, ...] = ()

    def captured_matching(self, pattern: str) -> list[Captured]:
        rx = re.compile(pattern)
        return [c for c in self.captured if rx.search(c.url)]


@dataclass(slots=True)
class TagResult:
    """A tag's snapshot, the posts shown with it, and any per-day activity the platform reports,
    as plain dicts shaped like the items."""

    snapshot: dict[str, Any]
    posts: list[dict[str, Any]] = field(default_factory=list)
    activity: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # the posts seen under the tag, stored beside the reported totals; an adapter that saw
        # more than it returns (a walk over several pages) sets posts_seen itself
        self.snapshot.setdefault("posts_seen", len(self.posts))


class Platform:
    """Base class of a platform adapter; subclasses set the class attributes and the steps."""

    name: ClassVar[str]
    title: ClassVar[str]
    # the real origin(s): a base-URL override replaces scheme+host and keeps the real path
    default_base_url: ClassVar[str]
    hosts: ClassVar[tuple[str, ...]] = ()
    # "never", "fallback" (only when plain HTTP lacks the data) or "always"
    browser: ClassVar[str] = "never"
    counters: ClassVar[dict[str, str]] = {}  # counter -> where it comes from, for `platforms`
    # "none", "optional" (deeper pages) or "required"; see crawler/downloader/signin.py
    signin: ClassVar[str] = "none"
    # (handle variable, password variable) for a sign-in exchanged for a token, else None
    login_variables: ClassVar[tuple[str, str] | None] = None
    # the platform's known cap on posts visible under one tag (docs/data.md), None if unknown
    visibility_cap: ClassVar[int | None] = None
    # the page a signing session keeps open on the platform's origin (a path), for adapters
    # whose fetches carry a SignSpec (crawler/downloader/signing.py)
    signing_page: ClassVar[str] = "/"
    # the report's line colour; None takes the next one from the report's shared palette
    color: ClassVar[str | None] = None
    # what a backfill can use, for `platforms` ("none" until a timeline is implemented)
    backfill: ClassVar[str] = "none"

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")

    def url(self, path: str) -> str:
        """Absolute URL for a real path on this platform, under the (possibly overridden) base."""
        return self.base_url + path

    def rebase(self, real_url: str) -> str:
        """Map a link the platform printed (real host) onto the configured base URL."""
        parts = urlsplit(real_url)
        if parts.hostname and parts.hostname not in self.hosts:
            return real_url
        base = urlsplit(self.base_url)
        return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path,
                           parts.query, ""))

    def first_fetch(self, tag: TagRef) -> Fetch:
        raise NotImplementedError

    def login_fetch(self, login: dict[str, str]) -> Fetch | None:
        """For token sign-in (handle + password): the request that exchanges them for a token.

        The spider's session middleware sends it once per run, inside the downloader, so the
        password never enters request meta or a queue.
        """
        return None

    def login_headers(self, page: Page) -> dict[str, str]:
        """Headers to send on every request after `login_fetch` answered `page`."""
        raise NotImplementedError

    def handle(self, step: str, page: Page, tag: TagRef,
               state: dict[str, Any]) -> Fetch | TagResult:
        """Dispatch a fetched page to the adapter method named by the step."""
        method: Callable[[Page, TagRef, dict[str, Any]], Fetch | TagResult] | None = getattr(
            self, f"on_{step}", None)
        if method is None:
            raise UnknownStep(f"{self.name}: no step {step!r}")
        return method(page, tag, state)


def mapping(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: reads an optional nested object."""
    return value if isinstance(value, dict) else {}


def load_json(text: str) -> Any:
    """`json.loads`; a malformed text raises `json.JSONDecodeError` (a ValueError) as usual, and
    hostile but well-formed JSON raises UnreadableJSON naming why, never RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UnreadableJSON("unreadable JSON: nesting too deep") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # the only other: a number beyond sys.get_int_max_str_digits()
        raise UnreadableJSON(f"unreadable JSON: {_digits_reason(exc)}") from None


def decode_json_at(text: str, start: int) -> Any:
    """The one JSON value that starts at `text[start]` (what follows it is ignored), read as
    `load_json` reads a whole text."""
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except RecursionError:
        raise UnreadableJSON("unreadable JSON: nesting too deep") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise UnreadableJSON(f"unreadable JSON: {_digits_reason(exc)}") from None


def _digits_reason(exc: ValueError) -> str:
    if "digits" in str(exc):
        return f"a number longer than {sys.get_int_max_str_digits()} digits"
    return str(exc)[:120]


def shown(value: object, limit: int = 40) -> str:
    """`repr(value)` cut to `limit` characters, for a failure's detail: a page can put a
    megabyte where a counter belongs, and the detail is printed and stored."""
    try:
        text = repr(value)
    except ValueError:  # an int past the int-to-str digit limit
        return "a number too long to print"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def guarded_handle(adapter: Platform, step: str, page: Page, tag: TagRef,
                   state: dict[str, Any]) -> Any:
    """`adapter.handle(...)`, with any exception other than a PlatformError (or UnknownStep)
    raised as AdapterFailed, i.e. `layout_changed` naming the exception's type.

    An adapter names every failure it knows; anything else it raised met a page it was not
    written for (hostile JSON, a shape no one has seen), and that is one page's outcome, not a
    reason to lose the traceback-free report or the other tags. The adapters' own tests call
    `handle` directly, so a new kind of exception still fails them there.
    """
    try:
        return adapter.handle(step, page, tag, state)
    except (PlatformError, UnknownStep):
        raise
    except Exception as exc:
        try:
            message = " ".join(str(exc).split())
        except Exception:  # noqa: BLE001 - a message that cannot be printed is no message
            message = ""
        detail = f"the adapter could not read the page: {type(exc).__name__}"
        if message:
            detail += f": {message[:120]}" + ("…" if len(message) > 120 else "")
        raise AdapterFailed(detail, where=_innermost(exc)) from exc


def _innermost(exc: BaseException) -> str:
    """"file:line in function" of the frame that raised, for a log line without a traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    code = tb.tb_frame.f_code
    name = code.co_filename
    for marker in ("/crawler/", "/site-packages/"):
        if marker in name:
            name = name[name.rindex(marker) + 1:]
            break
    return f"{name}:{tb.tb_lineno} in {code.co_name}"


LOGIN_PATHS = ("/login", "/accounts/login")


def check_status(page: Page, *, login_paths: tuple[str, ...] = LOGIN_PATHS) -> None:
    """Raise the named failure for HTTP answers every platform gives the same way."""
    location = page.headers.get("location", "")
    if page.status in (301, 302, 303, 307, 308) and any(p in location for p in login_paths):
        raise LoginWall(f"redirected to sign-in ({urlsplit(location).path})")
    if page.status == 429:
        raise RateLimited(f"HTTP 429, Retry-After {page.headers.get('retry-after', '-')}")
    if page.status in (401, 403):
        raise Blocked(f"HTTP {page.status}")
    if page.status == 404:
        raise NotFound("HTTP 404")
    if page.status >= 500:
        raise PlatformError(f"HTTP {page.status} after retries")
