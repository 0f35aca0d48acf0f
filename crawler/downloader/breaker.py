"""Back off the platform, not just the request: a per-platform circuit breaker.

The retry middleware backs off one request; this one stops a whole platform. When a tag ends
`captcha`, `blocked` or `rate_limited` (the adapter's word, reported with `tag_outcome`), its
platform's breaker opens for a cool-off (crawler/downloader/breakerstate.py, persisted under
the output root's state directory): its requests still queued in this run, and every request of
a later run before the cool-off ends, are not sent. Each such tag ends `cooling_off`, its detail
saying why and until when. Other platforms go on. After the cool-off the breaker is half-open:
the first tag requested probes the platform while that platform's other tags wait; a probe that
ends any other way closes it, a probe that trips again opens it for twice as long.

It runs before robots.txt among the downloader middlewares, so a cooling platform is sent
nothing at all, not even a robots.txt request. `--ignore-cooloff` (TAGARCHIVE_IGNORE_COOLOFF)
sends them anyway; trips are still recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler.downloader.breakerstate import (
    CLOSED,
    COOLING,
    HALF_OPEN,
    TRIP_KINDS,
    BreakerStore,
    CoolOff,
    PlatformBreaker,
    probe_passed,
    stamp,
    trip,
)
from crawler.downloader.middlewares import rate_limit_reset_seconds, retry_after_seconds
from crawler.platforms.base import MAX_DETAIL
from crawler.signals import run_started, tag_outcome
from crawler.text.tags import normalize_tag
from storage.backends import backend_for
from storage.errors import StorageError

logger = logging.getLogger(__name__)

TICKET = "_tagarchive_breaker_ticket"  # request meta: the request holds room past the check
# request meta: a middleware further down reads this request's answer before the platform's
# next request may go (SigningMiddleware, for a captcha), so its room is not given up when it
# leaves the downloader, only once its answer came back through here
READ_FIRST = "_tagarchive_breaker_read_first"


class PlatformCooling(IgnoreRequest):
    """A request not sent because its platform is cooling off; the spider's errback names the
    tag `cooling_off` with `detail`."""

    def __init__(self, platform: str, detail: str) -> None:
        super().__init__(detail)
        self.platform = platform
        self.detail = detail


class RunRoot(Protocol):
    """What the breaker reads of a run: its output root (RunState, a sibling layer)."""

    @property
    def out(self) -> str: ...


def tag_key(job: dict[str, Any]) -> str:
    """The key a tag's outcome is reported under (TagJob.key): normalized name or id:<id>."""
    name = job.get("name")
    return f"id:{job.get('id')}" if name is None else normalize_tag(name)


def clock_from(setting: str | None) -> Callable[[], datetime]:
    """The wall clock, or a clock standing still at TAGARCHIVE_BREAKER_NOW (an ISO time with
    its zone): tests and replays choose the breaker's "now" instead of waiting for it."""
    if not setting:
        return lambda: datetime.now(UTC)
    moment = datetime.fromisoformat(setting.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"TAGARCHIVE_BREAKER_NOW must name its time zone: {setting!r}")
    return lambda: moment


class PlatformBreakerMiddleware:
    """A downloader middleware (DOWNLOADER_MIDDLEWARES, before robots.txt): skips the requests
    of a cooling platform, holds a half-open platform's requests behind its probe, and opens a
    platform's breaker when one of its tags ends captcha, blocked or rate limited.

    Scrapy lets every request through the middlewares as soon as it leaves the scheduler, then
    queues it per host: a check here alone would pass a whole queue before the first captcha
    is read. So at most `limit` (CONCURRENT_REQUESTS_PER_DOMAIN) requests of a platform are past
    this middleware at once; the next one is checked when one of those has left the downloader.
    A trip leaves at most `limit` of the platform's requests on their way.

    A request past the check holds a ticket (in its meta, so a retry or a re-signed copy carries
    it) until it is done with, whichever way that shows first: it left the downloader, its
    response reached the engine or came back through here, it failed, or another request took
    its place in the scheduler (a retry; a middleware's answer in place of a download).
    """

    def __init__(self, crawler: Crawler, cooloff: CoolOff, *, ignore: bool = False,
                 clock: Callable[[], datetime] | None = None, probe_wait: float = 600.0,
                 limit: int = 2) -> None:
        self.crawler = crawler
        self.cooloff = cooloff
        self.ignore = ignore
        self.now = clock or (lambda: datetime.now(UTC))
        self.probe_wait = probe_wait
        self.limit = max(1, limit)
        self.store: BreakerStore | None = None
        self.entries: dict[str, PlatformBreaker] = {}
        self.probes: dict[str, str] = {}  # platform -> key of the tag probing it
        self.settled: dict[str, asyncio.Event] = {}  # set when that probe ends
        self.retry_after: dict[str, float] = {}  # the platform's last Retry-After, seconds
        self.held: dict[str, set[int]] = {}  # tickets of the requests past the check, by platform
        self.tickets = itertools.count(1)
        self.waiting: dict[str, list[asyncio.Event]] = {}  # requests waiting for room

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PlatformBreakerMiddleware:
        settings = crawler.settings
        if not settings.getbool("TAGARCHIVE_BREAKER_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_BREAKER_ENABLED is off")
        middleware = cls(crawler, CoolOff.from_settings(settings.get),
                         ignore=settings.getbool("TAGARCHIVE_IGNORE_COOLOFF", False),
                         clock=clock_from(settings.get("TAGARCHIVE_BREAKER_NOW")),
                         probe_wait=settings.getfloat("TAGARCHIVE_BREAKER_PROBE_WAIT", 600.0),
                         limit=settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN", 2))
        crawler.signals.connect(middleware.start_run, signal=run_started)
        crawler.signals.connect(middleware.record_outcome, signal=tag_outcome)
        for done in (scrapy_signals.response_received, scrapy_signals.request_scheduled):
            crawler.signals.connect(middleware.release, signal=done)
        crawler.signals.connect(middleware.left_downloader,
                                signal=scrapy_signals.request_left_downloader)
        return middleware

    # --- a run begins: read what earlier runs left ---

    def start_run(self, run: RunRoot | None) -> None:
        """The receiver of `run_started`: load the breakers of the run's output root."""
        for event in self.settled.values():
            event.set()  # a worker's previous batch: nothing waits across runs
        self.store, self.entries, self.probes, self.settled = None, {}, {}, {}
        if run is None:
            return
        try:
            self.store = BreakerStore(backend_for(run.out).state_root(run.out))
        except (StorageError, OSError) as exc:
            logger.error("breaker state unavailable, no platform is backed off across runs: %s",
                         exc)
            return
        self.entries, problem = self.store.load()
        if problem:
            logger.warning(problem)
        now = self.now()
        for name, entry in sorted(self.entries.items()):
            if entry.phase(now) == COOLING:
                what = ("requested anyway (--ignore-cooloff)" if self.ignore
                        else "its tags are not requested")
                logger.warning("%s is cooling off: %s; %s", name, entry.line(), what)

    # --- requests ---

    async def process_request(self, request: Request) -> None:
        job = request.meta.get("tagarchive_job")
        if not job or self.ignore:  # robots.txt and sign-in requests carry no job
            return None
        platform: str = job["platform"]
        while True:
            entry = self.entries.get(platform)
            phase = CLOSED if entry is None else entry.phase(self.now())
            if phase == COOLING:
                assert entry is not None
                self.crawler.stats.inc_value(f"tagarchive/breaker/skipped/{platform}")
                raise PlatformCooling(platform, cooling_detail(entry))
            key = tag_key(job)
            if phase == HALF_OPEN and platform not in self.probes:  # one tag probes
                self._hold(platform, key)
                self.crawler.stats.inc_value(f"tagarchive/breaker/probes/{platform}")
                logger.info("%s: cool-off over, %s probes the platform", platform, key)
            probe = self.probes.get(platform)
            if probe is not None and probe != key:  # the platform's other tags wait for it
                await self._await_probe(platform, probe)
                continue
            held = self.held.setdefault(platform, set())
            if len(held) < self.limit:
                ticket = next(self.tickets)
                held.add(ticket)
                request.meta[TICKET] = ticket
                return None
            room = asyncio.Event()
            self.waiting.setdefault(platform, []).append(room)
            await room.wait()  # then checked again: the platform may have tripped meanwhile

    def _hold(self, platform: str, key: str) -> None:
        """The platform's other tags wait for the outcome of `key`'s tag (`_settle`)."""
        self.probes[platform] = key
        self.settled[platform] = asyncio.Event()

    def suspect(self, platform: str, key: str) -> None:
        """A captcha seen on the wire (SigningMiddleware), before the adapter named it: the
        platform's other tags wait at the check for that tag's outcome, as behind a probe,
        so none is sent in the moment between the answer and the trip."""
        if not self.ignore and platform not in self.probes:
            self._hold(platform, key)

    def holding(self, platform: str, key: str) -> bool:
        """Whether the platform's requests other than `key`'s wait for a tag's outcome."""
        return self.probes.get(platform, key) != key

    async def _await_probe(self, platform: str, probe: str) -> None:
        try:
            await asyncio.wait_for(self.settled[platform].wait(), self.probe_wait)
        except TimeoutError:
            logger.warning("%s: the probe %s had no outcome after %g s; closing", platform,
                           probe, self.probe_wait)
            self._settle(platform, passed=True)

    def release(self, request: Request, **_signal: Any) -> None:
        """Room for the platform's next request: the receiver of `request_left_downloader`,
        `response_received` and `request_scheduled`, and called on the way back. Once per
        ticket; a request without one (robots.txt, sign-in, a spider's next step) is not
        counted."""
        ticket = request.meta.get(TICKET)
        job = request.meta.get("tagarchive_job")
        if ticket is None or not job:
            return
        held = self.held.get(job["platform"])
        if held is None or ticket not in held:
            return
        held.discard(ticket)
        for room in self.waiting.pop(job["platform"], []):
            room.set()

    def left_downloader(self, request: Request, **_signal: Any) -> None:
        """The receiver of `request_left_downloader`: room for the next request, unless its
        answer is to be read on its way back first (READ_FIRST)."""
        if not request.meta.get(READ_FIRST):
            self.release(request)

    def process_response(self, request: Request, response: Response) -> Response:
        self.release(request)
        job = request.meta.get("tagarchive_job")
        if job and response.status >= 400:
            # the platform's own word on how long to stay away, for a rate_limited trip
            delay = retry_after_seconds(response.headers.get("Retry-After"))
            if delay is None:
                delay = rate_limit_reset_seconds(response.headers.get("X-RateLimit-Reset"),
                                                 response.headers.get("Date"))
            if delay is not None:
                self.retry_after[job["platform"]] = delay
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self.release(request)  # refused further down (robots.txt), or failed before downloading
        return None

    # --- outcomes ---

    def record_outcome(self, platform: str, key: str, outcome: str, detail: str = "") -> None:
        """The receiver of `tag_outcome`: a captcha, block or rate limit trips the platform;
        any other end of a half-open platform's probe closes it."""
        if outcome in TRIP_KINDS:
            self._trip(platform, key, str(outcome), detail)
        elif self.probes.get(platform) == key:
            self._settle(platform, passed=True)

    def _trip(self, platform: str, key: str, kind: str, detail: str) -> None:
        now = self.now()
        current = self.entries.get(platform)
        if current is not None and current.phase(now) == COOLING:
            return  # a tag already in flight when the platform tripped: one trip, not two
        entry = trip(current, platform, kind, f"{key}: {detail}"[:160], now, self.cooloff,
                     self.retry_after.pop(platform, None))
        self.entries[platform] = entry
        self.crawler.stats.inc_value(f"tagarchive/breaker/trips/{platform}")
        logger.warning("%s cooling off until %s after %s on %s (trip %d): its remaining "
                       "requests are not sent", platform, stamp(entry.until), kind, key,
                       entry.trips)
        self._save(platform, entry)
        self._settle(platform, passed=False)

    def _settle(self, platform: str, *, passed: bool) -> None:
        """The probe of a half-open platform ended: closed if it passed; its waiters go on."""
        self.probes.pop(platform, None)
        event = self.settled.pop(platform, None)
        if passed:
            entry = self.entries.get(platform)
            if entry is not None and not entry.closed:
                closed = probe_passed(entry)
                self.entries[platform] = closed
                logger.info("%s: the probe went through; breaker closed", platform)
                self._save(platform, closed)
        if event is not None:
            event.set()

    def _save(self, platform: str, entry: PlatformBreaker) -> None:
        if self.store is None:
            return
        try:
            self.store.update(lambda entries: entries.__setitem__(platform, entry))
        except (OSError, StorageError) as exc:  # the run still backs off, in memory
            logger.error("cannot save the breaker state (%s): %s", self.store.path, exc)


def cooling_detail(entry: PlatformBreaker) -> str:
    """A cooling tag's outcome detail, why and until when:
    `until 2026-01-22T10:30:00Z after captcha (trip 1) on <tag>: <the platform's word>`."""
    detail = f"until {stamp(entry.until)} after {entry.kind} (trip {entry.trips}) on {entry.detail}"
    return detail[:MAX_DETAIL]
