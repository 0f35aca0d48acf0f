"""The "am I signed in" check, made before a crawl reaches a platform it has a session for.

Two steps, before any tag of the platform is requested: the session must hold the platform's
signed-in cookie (with the value a signed-in browser has, and not expired), and where the
platform has an unsigned endpoint that says whether the caller is signed in, one request to it.
A session that fails ends the platform's tags as `login_wall` without a request for any of them
(crawler/cli/main.py); a probe that cannot be read or reached says nothing, and the crawl goes on.
A login lost later, during the crawl, is seen on the platform's answers (`LoginGateMiddleware`
below): the first login wall ends the platform's remaining tags `login_wall`, unrequested.

Facts, with where they come from (anything not shown by a source is marked [INF]):
- Xiaohongshu: `web_session`; a signed-out visitor is given one too, and signing in replaces it
  (MediaCrawler media_platform/xhs/login.py, "web_session changed"). Its self-info endpoint
  needs the X-s signature (MediaCrawler xhs/client.py `query_self`), so no probe here.
- Douyin: `LOGIN_STATUS=1` (MediaCrawler douyin/client.py `pong`, douyin/login.py); no probe.
- Bilibili: `SESSDATA` (MediaCrawler bilibili/login.py); probe
  `api.bilibili.com/x/web-interface/nav`, whose `data.isLogin` says it (MediaCrawler
  bilibili/client.py `pong`; that a signed-out answer is `code -101` is [INF]).
- Weibo: `SUB` [INF: MediaCrawler's weibo/login.py looks at `SSOLoginState` and `WBPSESS`; `SUB`
  is the cookie third-party Weibo scrapers send]; probe `m.weibo.cn/api/config`, whose
  `data.login` says it (MediaCrawler weibo/client.py `pong`).
- Instagram: `sessionid` [INF: as browser exports show]; no probe.
- TikTok: `sessionid` [INF]; no probe.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler.downloader.breaker import READ_FIRST, tag_key
from crawler.downloader.pages import page_from_response
from crawler.downloader.signin import Cookie, Session, session_hosts
from crawler.platforms.base import Outcome, Platform, PlatformError, guarded_handle
from crawler.signals import run_started
from crawler.text.tags import TagRef

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 20.0  # seconds
PROBE_MAX_BYTES = 1024 * 1024


def _bilibili_nav(body: Any) -> bool | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    if body.get("code") == 0 and data.get("isLogin") is True:
        return True
    if body.get("code") == -101 or data.get("isLogin") is False:
        return False
    return None


def _weibo_config(body: Any) -> bool | None:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    login = body["data"].get("login")
    return login if isinstance(login, bool) else None


@dataclass(frozen=True)
class SignInFacts:
    """What tells a signed-in session of one platform from a signed-out one."""

    cookie: str  # the cookie a signed-in browser holds
    login_url: str  # the real page where a person signs in
    value: str | None = None  # the value it has when signed in (Douyin: LOGIN_STATUS=1)
    guest_too: bool = False  # a signed-out visitor gets one too: only a changed value says it
    probe: str | None = None  # a real URL whose JSON answer says whether the caller is signed in
    read_probe: Callable[[Any], bool | None] | None = None


SIGNIN_FACTS: dict[str, SignInFacts] = {
    "xiaohongshu": SignInFacts("web_session", "https://www.xiaohongshu.com/explore",
                               guest_too=True),
    "douyin": SignInFacts("LOGIN_STATUS", "https://www.douyin.com/", value="1"),
    "bilibili": SignInFacts("SESSDATA", "https://passport.bilibili.com/login",
                            probe="https://api.bilibili.com/x/web-interface/nav",
                            read_probe=_bilibili_nav),
    "weibo": SignInFacts("SUB", "https://passport.weibo.com/sso/signin",
                         probe="https://m.weibo.cn/api/config", read_probe=_weibo_config),
    "instagram": SignInFacts("sessionid", "https://www.instagram.com/accounts/login/"),
    "tiktok": SignInFacts("sessionid", "https://www.tiktok.com/login"),
}


@dataclass(frozen=True)
class Verdict:
    """The answer for one platform: True signed in, False not, None could not tell."""

    signed_in: bool | None
    detail: str


def on_base(adapter: Platform, real_url: str) -> str:
    """A real URL of the platform (any of its sites: passport.bilibili.com too), moved onto its
    base URL when that is overridden, the path kept."""
    if adapter.base_url == adapter.default_base_url.rstrip("/"):
        return real_url
    parts = urlsplit(real_url)
    return adapter.base_url + parts.path + (f"?{parts.query}" if parts.query else "")


def signed_in_cookie(facts: SignInFacts, cookies: list[Cookie], now: datetime) -> str | None:
    """Why the cookies are not a signed-in session, or None when the cookie says they are."""
    mark = next((c for c in cookies if c.name == facts.cookie), None)
    if mark is None or not mark.value:
        return f"no {facts.cookie} cookie"
    if facts.value is not None and mark.value != facts.value:
        return f"{facts.cookie} is not {facts.value}"
    if mark.expires > 0 and mark.expires < now.timestamp():
        when = datetime.fromtimestamp(mark.expires, UTC).isoformat(timespec="seconds")
        return f"the {facts.cookie} cookie expired at {when.replace('+00:00', 'Z')}"
    return None


def check_session(session: Session, adapter: Platform, *, user_agent: str,
                  now: datetime | None = None) -> Verdict:
    """Is `session` signed in on the adapter's platform? Sends at most one request."""
    facts = SIGNIN_FACTS.get(adapter.name)
    if facts is None or session.login:  # token sign-in is checked by its own exchange
        return Verdict(None, "no check known for this platform")
    cookies = session.cookies_for(session_hosts(adapter))
    problem = signed_in_cookie(facts, cookies, now or datetime.now(UTC))
    if problem is not None:
        return Verdict(False, f"not signed in: {problem} in {session.origin}")
    if facts.probe is None or facts.read_probe is None:
        return Verdict(True, f"{facts.cookie} present")
    url = on_base(adapter, facts.probe)
    path = urlsplit(url).path
    answer = probe(url, cookies, user_agent)
    if answer is None:
        return Verdict(None, f"the sign-in probe {path} did not answer")
    status, location, body = answer
    if location is not None:
        said = False if any(w in location for w in ("login", "signin", "passport")) else None
    else:
        said = facts.read_probe(body)
    if said is False:
        return Verdict(False, f"not signed in: {path} says the session from {session.origin} "
                              "is signed out")
    if said is None:
        return Verdict(None, f"the sign-in probe {path} gave an answer not known (HTTP {status})")
    return Verdict(True, f"{path} says signed in")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect (to a sign-in page) is an answer, not a hop


def probe(url: str, cookies: list[Cookie],
          user_agent: str) -> tuple[int, str | None, Any] | None:
    """GET `url` with the cookies: (status, the Location of a redirect, the JSON body or None),
    or None when nothing answered.

    Plain urllib, once per platform and run, before Scrapy starts; the answer is about the
    user's own account, so it is neither archived nor logged.
    """
    request = urllib.request.Request(url, headers={
        "Cookie": "; ".join(f"{c.name}={c.value}" for c in cookies),
        "User-Agent": user_agent, "Accept": "application/json, text/plain, */*"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=PROBE_TIMEOUT) as response:
            status, body = response.status, response.read(PROBE_MAX_BYTES)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return exc.code, exc.headers.get("Location", ""), None
        status, body = exc.code, exc.read(PROBE_MAX_BYTES)
    except (OSError, ValueError) as exc:  # refused, timed out, a malformed URL
        logger.warning("sign-in probe %s: %s", urlsplit(url).path, type(exc).__name__)
        return None
    try:
        return status, None, json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return status, None, None


# --- a login lost in the middle of a crawl ------------------------------------------------------

_WATCHED = "_tagarchive_login_watched"  # request meta: its answer is read for a login wall


class LoginLost(IgnoreRequest):
    """A request not sent because its platform's login was lost earlier in this crawl; the
    spider's errback names the tag `login_wall` with `detail`."""

    def __init__(self, platform: str, detail: str) -> None:
        super().__init__(detail)
        self.platform = platform
        self.detail = detail


def meant_signed_in(platform: str, session: Session | None, profiled: bool) -> bool:
    """Whether the crawl goes to the platform signed in, as the check before a crawl decides
    it (crawler/cli/signin.py `prepare_access`): a session holding its signed-in cookie or a
    token sign-in, or a profile. Cookies that are no sign-in (TikTok's msToken) are not."""
    if profiled:
        return True
    if session is None:
        return False
    facts = SIGNIN_FACTS.get(platform)
    return bool(session.login) or (
        facts is not None and any(c.name == facts.cookie for c in session.cookies))


class LoginGateMiddleware:
    """A downloader middleware, just after the platform breaker: once an answer of a platform
    the crawl went to signed in is a login wall (the adapter's own reading of it), the
    platform's remaining requests in this crawl are not sent, and each of their tags ends
    `login_wall`, as when the check before the crawl found the session signed out. The other
    platforms go on. The `runs` row then names the lost login, which is what pauses the
    platform under the scheduler and raises the `login lost` alert (crawler/services/pauses.py,
    alerts/observe.py).

    The answer is read here, on its way back, before the platform's next request may leave
    the breaker (READ_FIRST), so none is sent in the moment before the spider reads it."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.run: Any = None  # the run's sessions, from run_started (SignedInRun)
        self.lost: dict[str, str] = {}  # platform -> the detail its remaining tags end with
        self.profiled = set(crawler.settings.getdict("TAGARCHIVE_BROWSER_PROFILES"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoginGateMiddleware:
        # with the breaker off every tag is requested and named on its own (docs/access.md)
        if not crawler.settings.getbool("TAGARCHIVE_BREAKER_ENABLED", True):
            raise NotConfigured("TAGARCHIVE_BREAKER_ENABLED is off")
        gate = cls(crawler)
        crawler.signals.connect(gate.start_run, signal=run_started)
        return gate

    def start_run(self, run: Any) -> None:
        """The receiver of `run_started`: this run's sessions, and no login lost yet."""
        self.run, self.lost = run, {}

    def _watched(self, platform: str) -> bool:
        sessions = getattr(self.run, "sessions", None) or {}
        return meant_signed_in(platform, sessions.get(platform), platform in self.profiled)

    def process_request(self, request: Request) -> None:
        job = request.meta.get("tagarchive_job")
        if not job:
            return None
        platform: str = job["platform"]
        if platform in self.lost:
            self.crawler.stats.inc_value(f"tagarchive/signin/skipped/{platform}")
            raise LoginLost(platform, self.lost[platform])
        if self._watched(platform):  # read on the way back, before the next one leaves
            request.meta[READ_FIRST] = request.meta[_WATCHED] = True
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        job = request.meta.get("tagarchive_job")
        if not job or not request.meta.pop(_WATCHED, None) or job["platform"] in self.lost:
            return response
        platform = job["platform"]
        adapter = self.crawler.spider.adapters[platform]  # type: ignore[union-attr]
        ref = TagRef(name=job.get("name"), id=job.get("id"))
        try:
            page = page_from_response(response.replace(request=request))  # tied, as later
            guarded_handle(adapter, job["step"], page, ref, job.get("state") or {})
        except PlatformError as exc:
            if exc.outcome == Outcome.LOGIN_WALL:
                self._lose(platform, tag_key(job), exc.detail)
        except Exception as exc:  # noqa: BLE001 - the spider reads the page again, and says
            logger.debug("%s: reading an answer for a login wall: %s", platform, exc)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        request.meta.pop(_WATCHED, None)
        return None

    def _lose(self, platform: str, key: str, detail: str) -> None:
        self.lost[platform] = (f"the login was lost mid-crawl: {key} met a login wall "
                               f"({detail[:120]}); renew it (tagarchive signin {platform}); "
                               "the tag was not requested")
        logger.warning("%s: login lost mid-crawl (%s met a login wall): its remaining "
                       "requests are not sent", platform, key)
        self.crawler.stats.inc_value(f"tagarchive/signin/lost/{platform}")
