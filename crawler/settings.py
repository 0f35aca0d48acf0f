"""Scrapy settings for tagarchive: every setting the project relies on, in one flat place.

`scrapy crawl snapshot -a platforms=tiktok -a tags=tiktokrefugee` uses these as they are; the
`tagarchive` CLI starts from them and overrides what its options say. Our own settings are
`TAGARCHIVE_*`; each can also come from the environment variable of the same name.
"""

from __future__ import annotations

import os

from scrapy.settings import default_settings as _scrapy_defaults

from crawler.downloader.chromium import (
    BrowserNotFoundError,
    find_chromium,
    launch_options,
    signing_launch_options,
)

BOT_NAME = "tagarchive"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# --- tagarchive ------------------------------------------------------------------------------
# Output root of the Parquet datasets (snapshots/, posts/, rejects/, runs/).
TAGARCHIVE_OUT = os.environ.get("TAGARCHIVE_OUT", "data")
# Per-platform base URL overrides {platform: url}; the real hosts are replaced, paths kept.
# The CLI fills this from --base-url/--replica and TAGARCHIVE_BASE_URL_<PLATFORM>.
TAGARCHIVE_BASE_URLS: dict[str, str] = {}
# Buffered rows are written when a dataset reaches this many rows, or this many seconds pass
# (the store pipeline's timer); the archive publishes its open WARC files as often.
TAGARCHIVE_FLUSH_ROWS = 50_000
TAGARCHIVE_FLUSH_SECONDS = 30.0
# Keep every page received as WARC under archive/ (crawler/extensions/archive.py); the CLI's
# --no-archive turns it off.
TAGARCHIVE_ARCHIVE_ENABLED = True
# What is kept about the people behind the posts (crawler/rules/privacy.py, docs/privacy.md):
# pseudonymize (keyed hashes; the default), redact, or keep (recorded in runs.privacy)
TAGARCHIVE_PRIVACY = "pseudonymize"
# a file holding the pseudonymisation key; default $TAGARCHIVE_PSEUDONYM_KEY, else
# <out>/.tagarchive/pseudonym.key, created on first use (storage/pseudonymkey.py)
TAGARCHIVE_PSEUDONYM_KEY_FILE = None
# Counters above this are rejected as implausible (TikTok's largest tags are ~10^13 views).
TAGARCHIVE_MAX_COUNT = 10**15
# Tolerated clock skew (s) before a timestamp counts as "in the future".
TAGARCHIVE_CLOCK_SKEW = 300
# Rendering: off disables the browser entirely (tags that need it then fail, named).
TAGARCHIVE_BROWSER_ENABLED = True
# Browser contexts are replaced after this many pages (bounds Chromium's memory growth).
TAGARCHIVE_CONTEXT_PAGES = 100
# Signing sessions (crawler/downloader/signing.py, docs/access.md "Signing sessions"): API
# calls an adapter marks signable are signed by the platform's own script in a few live pages
# per platform and sent over HTTP, instead of rendering a page per tag; off renders them all.
# A platform whose signing failed TAGARCHIVE_SIGNING_FAILURES times in a row is rendered for
# the rest of the run; a page must show its signer within TAGARCHIVE_SIGNING_READY_MS.
TAGARCHIVE_SIGNING_ENABLED = os.environ.get("TAGARCHIVE_SIGNING_ENABLED", "1").lower() not in (
    "0", "false", "no", "off")
# live pages per platform: one signs far faster than a crawl sends, and each more is another
# renderer process (~50 MB); more only spread what a crashed page costs
TAGARCHIVE_SIGNING_PAGES = 1
TAGARCHIVE_SIGNING_FAILURES = 3
TAGARCHIVE_SIGNING_READY_MS = 5_000
# Backoff between retries: base * 2^attempt seconds with jitter, capped; a Retry-After above
# TAGARCHIVE_RETRY_AFTER_MAX is not waited out (the tag is reported rate_limited instead).
TAGARCHIVE_BACKOFF_BASE = 1.0
TAGARCHIVE_BACKOFF_MAX = 30.0
TAGARCHIVE_RETRY_AFTER_MAX = 120.0
# The per-platform circuit breaker (crawler/downloader/breaker.py, docs/access.md "Backing off
# a platform"): a tag ending captcha, blocked or rate_limited cools its whole platform, in this
# run and the next ones (<out>/.tagarchive/breaker.json); its tags end `cooling_off`. Cool-offs
# in seconds; a repeat trip within the window of the previous cool-off's end doubles, up to MAX.
# A rate limit cools for the platform's Retry-After when it gave one.
TAGARCHIVE_BREAKER_ENABLED = True
TAGARCHIVE_COOLOFF_CAPTCHA = 1800.0
TAGARCHIVE_COOLOFF_BLOCKED = 7200.0
TAGARCHIVE_COOLOFF_RATE_LIMITED = 900.0
TAGARCHIVE_COOLOFF_MAX = 86400.0
TAGARCHIVE_COOLOFF_WINDOW = 86400.0
# --ignore-cooloff: send a cooling platform's requests anyway (logged as a warning)
TAGARCHIVE_IGNORE_COOLOFF = False
# the breaker's "now", standing still at this ISO time (tests, replays); None: the clock
TAGARCHIVE_BREAKER_NOW = None
# how long a half-open platform's other tags wait for its probe's outcome (seconds)
TAGARCHIVE_BREAKER_PROBE_WAIT = 600.0

# --- politeness -----------------------------------------------------------------------------
# robots.txt is obeyed unless the user passes --ignore-robots (which is logged).
ROBOTSTXT_OBEY = True
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36 tagarchive/0.1 (+https://github.com/tagarchive)"
)
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
DOWNLOAD_DELAY_JITTER = 0.5  # ±50% so requests do not tick like a metronome
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 60
# A tag page is a few MB at most; a larger answer is refused by name (`error:
# DownloadCancelledError`) rather than held: parsing and archiving it costs about 7x its size in
# memory (a 50 MB page: +330 MiB, docs/reliability.md). Scrapy's own default is 1 GiB.
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
# Scrapy starts CONCURRENT_ITEMS (default 100) asyncio tasks for every callback's output. A
# tagarchive callback yields one item (PageItems) or one follow-up request, and the pipelines
# are synchronous, so a single worker loses nothing; 100 tasks per page cost ~10% of an HTTP
# crawl's CPU (docs/performance.md)
CONCURRENT_ITEMS = 1
# A <meta http-equiv=refresh> is not followed: the page that carries one (an interstitial, a
# sign-in or verification hop) reaches its adapter, which names what it is instead of quietly
# reading another page; and Scrapy's regex scan of every HTML body cost ~3% of an HTTP crawl.
# HTTP redirects (3xx) are still followed.
METAREFRESH_ENABLED = False
COOKIES_ENABLED = True
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19's remote control runs code sent to a local port; a crawler never needs it
REMOTE_CONTROL_ENABLED = False

# --- retries --------------------------------------------------------------------------------
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
RETRY_EXCEPTIONS = [
    *_scrapy_defaults.RETRY_EXCEPTIONS,
    # Scrapy does not retry Playwright timeouts by default (scrapy-playwright #159)
    "playwright._impl._errors.TimeoutError",
    "playwright._impl._errors.TargetClosedError",
]

DOWNLOADER_MIDDLEWARES = {
    # before robots.txt (100): a cooling platform is sent nothing, not even that
    "crawler.downloader.breaker.PlatformBreakerMiddleware": 60,
    # after the breaker's wait: a platform whose login was lost mid-crawl is sent nothing more
    "crawler.downloader.signedin.LoginGateMiddleware": 65,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.downloader.middlewares.BackoffRetryMiddleware": 550,
    # after CookiesMiddleware (700): adds the user's sign-in, strips it again on the way back
    "crawler.downloader.middlewares.SessionMiddleware": 750,
    # after retry on the way in, before it on the way out: see RenderMiddleware
    # after the session's cookies (750): signs a request in a live page just before it is sent,
    # or sends it on as its rendered fallback (to RenderMiddleware)
    "crawler.downloader.signing.SigningMiddleware": 800,
    "crawler.downloader.middlewares.RenderMiddleware": 950,
}

ITEM_PIPELINES = {
    "pipelines.normalize.NormalizePipeline": 100,
    "pipelines.privacy.PrivacyPipeline": 150,
    "pipelines.validate.ValidatePipeline": 200,
    "pipelines.dedupe.DedupePipeline": 300,
    "pipelines.store.StorePipeline": 900,
}

# The run's WARC archive, then its record (outcomes, health, the `runs` row, the exit code):
# without them a crawl keeps no raw pages and writes no `runs` row. The archive closes first on
# spider_closed, so a failure to publish its last files is in the record.
EXTENSIONS = {
    "crawler.extensions.archive.ArchiveExtension": 100,
    "crawler.extensions.runrecord.RunRecord": 200,
}

# --- browser (scrapy-playwright) ------------------------------------------------------------
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# plain HTTP until a request renders: the browser starts on first use
# (crawler/downloader/chromium.py)
DOWNLOAD_HANDLERS = {
    "http": "crawler.downloader.chromium.LazyBrowserDownloadHandler",
    "https": "crawler.downloader.chromium.LazyBrowserDownloadHandler",
}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
try:
    PLAYWRIGHT_LAUNCH_OPTIONS = launch_options(find_chromium(), images=False)
except BrowserNotFoundError:
    PLAYWRIGHT_LAUNCH_OPTIONS = launch_options(None, images=False)
# the headless shell signing pages live in, when one is installed ({}: the crawl's Chromium;
# crawler/downloader/chromium.py `signing_browser`, docs/access.md "Which browser signs")
try:
    TAGARCHIVE_SIGNING_LAUNCH_OPTIONS = signing_launch_options()
except BrowserNotFoundError:
    TAGARCHIVE_SIGNING_LAUNCH_OPTIONS = {}
PLAYWRIGHT_ABORT_REQUEST = "crawler.downloader.chromium.should_abort_request"
PLAYWRIGHT_MAX_CONTEXTS = 2
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000
PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER = True

# --- logging and housekeeping ---------------------------------------------------------------
LOG_LEVEL = "INFO"
# no per-item "Scraped from" record: Scrapy builds it even when the level filters it out, and it
# cost ~11% of an HTTP crawl's main loop (benchmarks/README.md)
LOG_FORMATTER = "crawler.extensions.logs.QuietLogFormatter"
FEED_EXPORT_ENCODING = "utf-8"
MEMUSAGE_ENABLED = True
MEMUSAGE_LIMIT_MB = 0
