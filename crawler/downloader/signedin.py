"""The "am I signed in" check, made before a crawl reaches a platform it has a session for.

Two steps, before any tag of the platform is requested: the session must hold the platform's
signed-in cookie (with the value a signed-in browser has, and not expired), and where the
platform has an unsigned endpoint that says whether the caller is signed in, one request to it.
A session that fails ends the platform's tags as `login_wall` without a request for any of them
(crawler/cli/main.py); a probe that cannot be read or reached says nothing, and the crawl goes on.

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

from crawler.downloader.signin import Cookie, Session, session_hosts
from crawler.platforms.base import Platform

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
