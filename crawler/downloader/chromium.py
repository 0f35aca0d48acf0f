"""Chromium for the pages that need their own JavaScript: discovery, launch options, capture.

The browser is used only for requests an adapter marks with a `RenderSpec`. While such a page
loads, the JSON responses it fetches for itself are captured (that is where exact counters live);
images, media and fonts are never downloaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import regex

logger = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BLOCKED_RESOURCE_TYPES = frozenset({"image", "media", "font"})
# JSON bodies bigger than this are not kept: counters live in small API answers
MAX_CAPTURE_BYTES = 5 * 1024 * 1024
CAPTURE_MATCH_SECONDS = 1.0  # per response URL: bounds a pathological capture pattern

INSTALL_HINT = (
    "no Chromium found: install Debian's package (apt-get install -y chromium), "
    "or run 'playwright install chromium', or set TAGARCHIVE_CHROMIUM=/path/to/chrome"
)


class BrowserNotFoundError(RuntimeError):
    """No usable Chromium on this machine."""


def find_chromium(env: Mapping[str, str] | None = None) -> str | None:
    """Path of the Chromium to drive, in order: TAGARCHIVE_CHROMIUM, PATH, Playwright's own.

    Returns None when only Playwright's bundled browser might exist and it is not downloaded.
    """
    env = os.environ if env is None else env
    explicit = env.get("TAGARCHIVE_CHROMIUM")
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise BrowserNotFoundError(f"TAGARCHIVE_CHROMIUM={explicit} is not an executable file")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    bundled = playwright_bundled_chromium()
    return bundled


# Chrome's headless shell: the old headless mode, now a separate and smaller build of Chromium
# (developer.chrome.com/docs/automation-and-testing/headless). Puppeteer's docs: it "does not
# match the behavior of the regular Chrome completely but it is currently more performant for
# automation tasks where the complete Chrome feature set is not needed"; Playwright launches it
# for headless work by default since 1.49. A signing page only runs the site's own script, so
# signing sessions live in it when it is installed; pages rendered for their content stay in
# the full Chromium, whose layout and scrolling are the browser users have.
HEADLESS_SHELL_NAMES = ("chromium-headless-shell", "chrome-headless-shell")


def find_headless_shell(env: Mapping[str, str] | None = None) -> str | None:
    """Path of a headless shell for signing pages, in order: TAGARCHIVE_HEADLESS_SHELL (a path,
    or `off` to sign in the crawl's Chromium), PATH, Playwright's own download; None: none."""
    env = os.environ if env is None else env
    explicit = env.get("TAGARCHIVE_HEADLESS_SHELL")
    if explicit and explicit.lower() in ("off", "0", "no", "false"):
        return None
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise BrowserNotFoundError(f"TAGARCHIVE_HEADLESS_SHELL={explicit} is not an executable "
                                   f"file")
    for name in HEADLESS_SHELL_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    return _playwright_download("chromium_headless_shell-*/chrome-headless-shell-linux*/"
                                "chrome-headless-shell")


def playwright_bundled_chromium() -> str | None:
    """Playwright's downloaded Chromium, if `playwright install chromium` was run."""
    return _playwright_download("chromium-*/chrome-linux*/chrome")


def _playwright_download(pattern: str) -> str | None:
    """The newest executable under Playwright's browser cache matching `pattern`."""
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache/ms-playwright")
    if not cache.is_dir():
        return None
    for candidate in sorted(cache.glob(pattern), reverse=True):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


# Blink never asks for an image at all. Aborting each one in PLAYWRIGHT_ABORT_REQUEST costs a
# trip from Chromium through the Playwright driver to Python and back per image (a Xiaohongshu
# topic page has 41), and the browser still creates, routes and fails every request; with this
# switch a rendered page took ~40% less CPU (docs/performance.md). Fonts and media have no such
# switch and are still aborted by `should_abort_request`.
IMAGES_OFF = "--blink-settings=imagesEnabled=false"


def launch_options(executable: str | None, *, images: bool = True) -> dict[str, Any]:
    """Keyword arguments for `BrowserType.launch`; a crawl passes images=False (IMAGES_OFF)."""
    args = [
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # without these Chromium keeps dialling Google services, which fails offline
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--mute-audio",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start sandboxed as root
    if not images:
        args.append(IMAGES_OFF)
    options: dict[str, Any] = {"headless": True, "args": args}
    if executable:
        options["executable_path"] = executable
    return options


def signing_launch_options(attached: bool = False) -> dict[str, Any]:
    """TAGARCHIVE_SIGNING_LAUNCH_OPTIONS: how to launch the headless shell signing pages live
    in, or {} to sign in the crawl's own browser (none installed, or the crawl attached to the
    user's browser over CDP, whose session signing uses)."""
    shell = None if attached else find_headless_shell()
    return launch_options(shell, images=False) if shell else {}


def should_abort_request(request: Any) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: never fetch images, media or fonts."""
    return request.resource_type in BLOCKED_RESOURCE_TYPES


class _Capture:
    """The JSON responses one page fetched, collected while it loads.

    Only the document this request navigates to is listened to: the capture arms on the page's
    main-frame navigation request, and a response counts only if its request was issued after
    that. A reused page still holds the previous request's document until the navigation
    commits (RenderMiddleware stops it rather than navigating it away), and whatever that
    document fetched belongs to the previous request.
    """

    def __init__(self, patterns: list[str]) -> None:
        # `regex` for its timeout: a user's [[source]] capture pattern meets every response URL
        self.patterns = [regex.compile(p) for p in patterns]
        self.items: list[dict[str, Any]] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.armed = False
        self.requests: set[Any] = set()  # Playwright Request objects issued since arming

    def wants(self, url: str) -> bool:
        try:
            return any(p.search(url, timeout=CAPTURE_MATCH_SECONDS) for p in self.patterns)
        except TimeoutError:
            logger.warning("a capture pattern took over %s s on a response URL; not captured",
                           CAPTURE_MATCH_SECONDS)
            return False

    async def read(self, response: Any) -> None:
        try:
            body = await response.body()
        except Exception as exc:  # page closed or body evicted: record what we know
            logger.debug("capture of %s failed: %s", response.url, exc)
            body = b""
        if len(body) > MAX_CAPTURE_BYTES:
            body = b""
        headers = {k.lower(): v for k, v in (await response.all_headers()).items()}
        for secret in ("set-cookie", "authorization", "cookie"):
            headers.pop(secret, None)
        self.items.append({
            "url": response.url,
            "status": response.status,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
        })


async def install_capture(page: Any, request: Any) -> None:
    """playwright_page_init_callback: start recording matching responses before navigation.

    Runs before every navigation, also of a reused page: each request gets a fresh capture, and
    the page's one listener feeds whichever capture is current (none while the page is idle).
    """
    spec = request.meta.get("tagarchive_render") or {}
    page._tagarchive_capture = _Capture(spec.get("capture") or [])
    if getattr(page, "_tagarchive_listening", False):
        return
    page._tagarchive_listening = True
    page._tagarchive_stirred = False

    def on_request(sent: Any) -> None:
        capture: _Capture | None = getattr(page, "_tagarchive_capture", None)
        if capture is None:
            page._tagarchive_stirred = True  # a parked document is still fetching
            return
        if not capture.armed:
            if not (sent.is_navigation_request() and sent.frame is page.main_frame):
                return  # the previous document's, before this request's navigation began
            capture.armed = True
        capture.requests.add(sent)

    def on_response(response: Any) -> None:
        capture: _Capture | None = getattr(page, "_tagarchive_capture", None)
        if (capture is not None and response.request in capture.requests
                and capture.wants(response.url)):
            task = asyncio.ensure_future(capture.read(response))
            capture.pending.add(task)
            task.add_done_callback(capture.pending.discard)

    page.on("request", on_request)
    page.on("response", on_response)


def stirred(page: Any) -> bool:
    """Whether a parked page's document fetched anything since it was parked."""
    return bool(getattr(page, "_tagarchive_stirred", False))


async def park(page: Any) -> None:
    """Stop a finished page's document: what it still fetches is aborted, and it stays put.

    Navigating it to about:blank instead costs a navigation per render (Chromium builds and
    tears down a document): ~20% of a rendered crawl's CPU (docs/performance.md). The stopped
    document is replaced when the next request navigates; a page whose document fetches
    again while parked is `stirred`, and RenderMiddleware blanks it before reusing it.
    """
    page._tagarchive_capture = None  # nothing it still receives belongs to a request
    await page.evaluate("window.stop()")
    page._tagarchive_stirred = False  # what was in flight was aborted by the stop


async def collect_captures(page: Any, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Last page method: wait (bounded) for every expected capture and the DOM marker."""
    capture: _Capture | None = getattr(page, "_tagarchive_capture", None)
    if capture is None:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.get("timeout_ms", 15_000) / 1000
    marker = spec.get("wait_for")
    quiet_since = loop.time()
    last_count = -1
    # Done when every pattern has an answer, or when the page shows its end state (the marker,
    # which also lists error markers) and no capture arrived for a short quiet period.
    while loop.time() < deadline:
        if len(capture.items) != last_count:
            last_count, quiet_since = len(capture.items), loop.time()
        if not capture.pending:
            seen = sum(1 for p in capture.patterns
                       if any(p.search(i["url"]) for i in capture.items))
            if seen >= len(capture.patterns):
                break
            if (marker and loop.time() - quiet_since >= QUIET_SECONDS
                    and await page.query_selector(marker)):
                break
        await asyncio.sleep(0.05)
    if capture.pending:
        await asyncio.wait(capture.pending, timeout=max(0.1, deadline - loop.time()))
    return list(capture.items)


QUIET_SECONDS = 0.3


# --- download handler -----------------------------------------------------------------------

# Registered for http/https by the CLI and settings.py instead of scrapy-playwright's handler.
BROWSER_DOWNLOAD_HANDLER = "crawler.downloader.chromium.LazyBrowserDownloadHandler"


class _SharedBrowser:
    """One scrapy-playwright handler per crawler, shared by the schemes that render, and the
    headless shell the signing pages live in (`signing_browser`)."""

    def __init__(self) -> None:
        self.handler: Any = None
        self.lock = asyncio.Lock()
        self.users = 0
        self.shell: Any = None  # the signing pages' browser, launched on first use
        self.shell_lock = asyncio.Lock()

    async def close_shell(self) -> None:
        shell, self.shell = self.shell, None
        if shell is not None:
            try:
                await shell.close()
            except Exception as exc:  # gone already (crashed, or with its driver)
                logger.debug("closing the signing browser: %s", exc)


def _http11() -> type:
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

    return HTTP11DownloadHandler


async def browser_handler(crawler: Any) -> Any:
    """The crawl's scrapy-playwright handler, built and started on first use: one per crawler,
    shared by rendering (LazyBrowserDownloadHandler) and the signing sessions
    (crawler/downloader/signing.py), so both use the same Chromium."""
    shared = getattr(crawler, "_tagarchive_browser", None)
    if shared is None:
        shared = crawler._tagarchive_browser = _SharedBrowser()
    if shared.handler is None:
        async with shared.lock:
            if shared.handler is None:
                from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

                handler = ScrapyPlaywrightDownloadHandler(crawler)
                await handler._maybe_launch_in_thread()  # what engine_started would do
                shared.handler = handler
                crawler.stats.inc_value("tagarchive/browser_started")
    return shared.handler


async def signing_browser(crawler: Any) -> Any:
    """The browser signing pages live in: a headless shell launched through the crawl's own
    Playwright driver (TAGARCHIVE_SIGNING_LAUNCH_OPTIONS), started on first use and again if
    it died; or the crawl's Chromium when there is no shell or the crawl is attached over CDP.
    A signed crawl that renders nothing never starts the full Chromium."""
    handler = await browser_handler(crawler)
    options = crawler.settings.getdict("TAGARCHIVE_SIGNING_LAUNCH_OPTIONS")
    if not options or crawler.settings.get("PLAYWRIGHT_CDP_URL"):
        await handler._maybe_launch_browser()
        return handler.browser
    shared: _SharedBrowser = crawler._tagarchive_browser
    async with shared.shell_lock:
        if shared.shell is None or not shared.shell.is_connected():
            browser_type = handler.browser_provider.browser_type
            shared.shell = await browser_type.launch(**options)
            crawler.stats.inc_value("tagarchive/signing/browser_started")
            logger.info("signing pages live in %s", options.get("executable_path"))
    return shared.shell


class LazyBrowserDownloadHandler(_http11()):  # type: ignore[misc]
    """Plain HTTP unless a request renders; the browser starts on the first request that does.

    scrapy-playwright's own handler starts the Playwright driver (0.7-0.9 s, ~120 MB) when the
    engine starts, even in a crawl that never renders. This handler downloads plain requests
    itself, and builds scrapy-playwright's handler (once per crawler, shared between schemes)
    on the first request whose meta has `playwright`. Closing the last user closes the browser.
    """

    lazy = False

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        shared = getattr(crawler, "_tagarchive_browser", None)
        if shared is None:
            shared = crawler._tagarchive_browser = _SharedBrowser()
        shared.users += 1
        self._shared: _SharedBrowser = shared

    @classmethod
    def from_crawler(cls, crawler: Any) -> LazyBrowserDownloadHandler:
        return cls(crawler)

    async def _browser(self) -> Any:
        return await browser_handler(self._crawler)

    async def download_request(self, request: Any) -> Any:
        in_page = request.meta.get("tagarchive_in_page_fetch")
        if in_page is not None:  # fetched in a live signing page (crawler/downloader/signing.py)
            return await in_page(request)
        if request.meta.get("playwright"):
            return await (await self._browser()).download_request(request)
        return await super().download_request(request)

    async def close(self) -> None:
        await super().close()
        shared = self._shared
        shared.users -= 1
        if shared.users == 0:
            await shared.close_shell()
            if shared.handler is not None:
                handler, shared.handler = shared.handler, None
                await handler.close()
