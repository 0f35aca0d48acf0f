"""Sign-in on the replica: login pages, the endpoints that say whether a session is signed in, a
way to lose a login, and a cookie a platform hands out (for persistent-profile tests).

Mounted by ReplicaServer before each platform's own app, at the real paths (under /<platform>):
- Bilibili `passport.bilibili.com/login` (a form; posting it sets `SESSDATA`) and
  `api.bilibili.com/x/web-interface/nav`, `data.isLogin` (MediaCrawler bilibili/client.py
  `pong`); the signed-out answer's `code -101` and message are [INF].
- Weibo `passport.weibo.com/sso/signin` (sets `SUB` [INF]) and `m.weibo.cn/api/config`,
  `data.login` (MediaCrawler weibo/client.py `pong`); the rest of that answer is [INF].
The forms themselves are the replica's own (any non-empty name and password sign in); a
session is any non-empty cookie value the replica has not revoked (`revoke`). A revoked session
is signed out everywhere: the platform's API answers its login wall to a request carrying it
(`walled`), as a session the site expired does. `expire(platform, value, after=k, kind=...)`
lets a session live for k more answers of that kind (Bilibili `details`: one per tag), then
forgets it: a login lost in the middle of a crawl.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from replica.base import Query as _Query
from replica.base import Response, esc, html_response, json_response, method_not_allowed
from replica.bilibili import LOGIN_BODY as BILIBILI_LOGIN_BODY


@dataclass(frozen=True)
class Login:
    """One platform's login page and the cookie it sets."""

    path: str
    cookie: str
    probe: str


LOGINS: dict[str, Login] = {
    "bilibili": Login("/login", "SESSDATA", "/x/web-interface/nav"),
    "weibo": Login("/sso/signin", "SUB", "/api/config"),
}
YEAR = 365 * 86400


def cookies(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


class Accounts:
    """Who is signed in where, as the replica sees it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.revoked: set[tuple[str, str]] = set()  # (platform, cookie value)
        self.issued: dict[str, list[str]] = {}  # platform -> values its login form set
        self.handing_out: dict[str, tuple[str, str]] = {}  # platform -> (cookie, value)
        # (platform, value) -> (answers of `kind` it is still given, kind)
        self.expiring: dict[tuple[str, str], tuple[int, str]] = {}
        self.walls: Counter[str] = Counter()  # platform -> login walls answered

    # --- what tests change ---

    def revoke(self, platform: str, value: str) -> None:
        """The platform forgets this session: its probe says signed out from now on."""
        with self._lock:
            self.revoked.add((platform, value))

    def hand_out(self, platform: str, name: str, value: str) -> None:
        """Every answer of the platform sets this cookie (a year long) until `stop`."""
        with self._lock:
            self.handing_out[platform] = (name, value)

    def expire(self, platform: str, value: str, *, after: int, kind: str) -> None:
        """The session `value` is given `after` more answers of `kind`, then forgotten: every
        request of the platform carrying it from then on meets the login wall."""
        if platform not in LOGINS or after < 0:
            raise ValueError(f"no login modelled for {platform!r}, or a negative count")
        with self._lock:
            self.expiring[(platform, value)] = (after, kind)

    def walled(self, platform: str, headers: Mapping[str, str], kind: str) -> bool:
        """Whether a request of the platform carries a session it signed out (and so meets
        its login wall); counts the answers an expiring session is still given."""
        login = LOGINS.get(platform)
        value = cookies(headers).get(login.cookie, "") if login else ""
        if not value:
            return False
        key = (platform, value)
        with self._lock:
            if key in self.expiring:
                left, counted = self.expiring[key]
                if left == 0:
                    del self.expiring[key]
                    self.revoked.add(key)
                elif kind == counted:
                    self.expiring[key] = (left - 1, counted)
            if key in self.revoked:
                self.walls[platform] += 1
                return True
            return False

    @staticmethod
    def login_wall(platform: str) -> Response:
        """What the platform's API answers a signed-out session: its login_wall variant's
        answer (replica/bilibili.py; Weibo's as replica/weibo.py gives it)."""
        if platform == "bilibili":
            return json_response(200, BILIBILI_LOGIN_BODY)
        return json_response(200, {"ok": -100, "msg": "请先登录", "url":
                                   "https://passport.weibo.cn/signin/welcome?entry=mweibo"})

    def stop(self, platform: str) -> None:
        with self._lock:
            self.handing_out.pop(platform, None)

    def clear(self) -> None:
        with self._lock:
            self.revoked.clear()
            self.expiring.clear()
            self.walls.clear()
            self.issued.clear()
            self.handing_out.clear()

    # --- serving ---

    def kind(self, platform: str, path: str) -> str | None:
        """"signin" or "whoami" for a path this module answers, else None."""
        login = LOGINS.get(platform)
        if login is None:
            return None
        route = path.rstrip("/") or "/"
        if route == login.path:
            return "signin"
        if route == login.probe:
            return "whoami"
        return None

    def signed_in(self, platform: str, headers: Mapping[str, str]) -> bool:
        value = cookies(headers).get(LOGINS[platform].cookie, "")
        with self._lock:
            return bool(value) and (platform, value) not in self.revoked

    def handle(self, platform: str, method: str, path: str, headers: Mapping[str, str],
               body: bytes, mount: str) -> Response:
        kind = self.kind(platform, path)
        login = LOGINS[platform]
        if kind == "whoami":
            if method not in ("GET", "HEAD"):
                return method_not_allowed("GET, HEAD")
            return self._whoami(platform, self.signed_in(platform, headers))
        if method == "POST":
            form = _Query(body.decode("utf-8", errors="replace"))
            if not (form.get("username") and form.get("password")):
                return html_response(400, self._form(mount, login, "give a name and password"))
            value = f"{platform}-{secrets.token_hex(12)}"
            with self._lock:
                self.issued.setdefault(platform, []).append(value)
            return html_response(200, "<!doctype html><title>signed in</title><p id=done>"
                                      "signed in</p>",
                                 {"Set-Cookie": f"{login.cookie}={value}; Path=/; "
                                                f"Max-Age={YEAR}; HttpOnly"})
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD, POST")
        return html_response(200, self._form(mount, login, ""))

    def with_cookie(self, platform: str, response: Response) -> Response:
        """The platform's answer; an HTML page sets the cookie it hands out, if any, from its
        own script (as a page's JavaScript does), so only a browser keeps it: Scrapy's cookie
        jar would look the domain up in the public suffix list, which it fetches online."""
        with self._lock:
            given = self.handing_out.get(platform)
        status, headers, payload = response
        if given is None or not headers.get("Content-Type", "").startswith("text/html"):
            return response
        script = (f'<script>document.cookie="{given[0]}={given[1]}; path=/; '
                  f'max-age={YEAR}"</script>').encode()
        return status, headers, payload + script

    @staticmethod
    def _whoami(platform: str, signed_in: bool) -> Response:
        if platform == "bilibili":
            if signed_in:
                return json_response(200, {"code": 0, "message": "0", "ttl": 1,
                                           "data": {"isLogin": True, "uname": "replica"}})
            return json_response(200, {"code": -101, "message": "账号未登录", "ttl": 1,
                                       "data": {"isLogin": False}})
        return json_response(200, {"ok": 1, "data": {"login": signed_in}})

    @staticmethod
    def _form(mount: str, login: Login, problem: str) -> str:
        note = f"<p class=error>{esc(problem)}</p>" if problem else ""
        return ("<!doctype html><title>Sign in</title>"
                f'<form id=login method=post action="{esc(mount + login.path)}">{note}'
                '<input name=username autocomplete=username>'
                '<input name=password type=password autocomplete=current-password>'
                "<button type=submit>Sign in</button></form>")
