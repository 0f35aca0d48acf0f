"""Sign-in the user supplies: cookies.txt, Playwright storage_state, or a handle and password.

A session is named per platform on the CLI (`--session PLATFORM=FILE`) or in the environment
(`TAGARCHIVE_SESSION_<PLATFORM>=FILE`; Bluesky also `TAGARCHIVE_BLUESKY_HANDLE` and
`TAGARCHIVE_BLUESKY_APP_PASSWORD`). Secrets stay in this process's memory: they are attached to
requests only inside the downloader (never in request meta or queues), and every log record,
outcome detail and error line passes through `redact()` (crawler/logredact.py, where
`register_secrets` puts them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from crawler.logredact import MIN_SECRET_CHARS
from crawler.platforms import REGISTRY
from crawler.platforms.base import Platform


class SessionError(ValueError):
    """A session file or variable that cannot be used; the message never contains a secret."""


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie, with the real platform domain it was issued for."""

    name: str
    value: str
    domain: str
    path: str = "/"
    secure: bool = False
    http_only: bool = False
    expires: float = -1


@dataclass(frozen=True)
class Session:
    """A user's sign-in for one platform."""

    platform: str
    origin: str  # where it came from (a path or variable names), for messages
    cookies: tuple[Cookie, ...] = ()
    login: dict[str, str] = field(default_factory=dict)  # e.g. identifier + password

    def secrets(self) -> list[str]:
        values = [c.value for c in self.cookies] + list(self.login.values())
        return [v for v in values if len(v) >= MIN_SECRET_CHARS]

    def cookies_for(self, hosts: tuple[str, ...]) -> list[Cookie]:
        """Cookies whose domain matches one of the platform's real hosts."""
        return [c for c in self.cookies
                if any(_domain_matches(h, c.domain) for h in hosts)]


def _domain_matches(host: str, domain: str) -> bool:
    domain = domain.lstrip(".").lower()
    host = host.lower()
    return host == domain or host.endswith("." + domain)


def session_hosts(adapter: Platform) -> tuple[str, ...]:
    """The hosts a platform's session cookies may name: its real hosts, and the host of the
    base URL it is crawled at when that is overridden (a mirror, the replica), so a session
    saved there (`tagarchive signin --base-url`) is sent there too. A session belongs to one
    platform: a cookie is never sent to another, whatever host they share."""
    base = urlsplit(adapter.base_url).hostname
    return adapter.hosts if not base or base in adapter.hosts else (*adapter.hosts, base)


def parse_cookies_txt(text: str, origin: str) -> list[Cookie]:
    """Netscape cookies.txt: 7 tab-separated fields; `#HttpOnly_` prefix marks HttpOnly."""
    cookies = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        http_only = line.startswith("#HttpOnly_")
        if http_only:
            line = line[len("#HttpOnly_"):]
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 7:
            raise SessionError(f"{origin}:{number}: not a cookies.txt line "
                               f"(expected 7 tab-separated fields, got {len(parts)})")
        domain, _flag, path, secure, expires, name, value = parts
        try:
            expiry = float(expires or 0) or -1
        except ValueError:
            raise SessionError(f"{origin}:{number}: expiry is not a number") from None
        cookies.append(Cookie(name=name, value=value, domain=domain, path=path or "/",
                              secure=secure.upper() == "TRUE", http_only=http_only,
                              expires=expiry))
    return cookies


def parse_storage_state(text: str, origin: str) -> list[Cookie]:
    """Playwright's `context.storage_state()` JSON: {"cookies": [...], "origins": [...]}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{origin}: not valid JSON (line {exc.lineno})") from None
    except ValueError:
        # int()'s refusal of a number over 4,300 digits reaches us as a bare ValueError
        raise SessionError(f"{origin}: a number in it has too many digits") from None
    if not isinstance(data, dict) or not isinstance(data.get("cookies"), list):
        raise SessionError(f"{origin}: a storage_state needs a top-level 'cookies' list")
    cookies = []
    for i, c in enumerate(data["cookies"]):
        if not isinstance(c, dict) or not {"name", "value", "domain"} <= set(c):
            raise SessionError(f"{origin}: cookies[{i}] needs name, value and domain")
        cookies.append(Cookie(name=str(c["name"]), value=str(c["value"]),
                              domain=str(c["domain"]), path=str(c.get("path") or "/"),
                              secure=bool(c.get("secure")), http_only=bool(c.get("httpOnly")),
                              expires=float(c.get("expires", -1))))
    return cookies


def load_session_file(platform: str, path: str) -> Session:
    """A session from a cookies.txt or storage_state file (told apart by content)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SessionError(f"session file for {platform}: {path}: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        cookies = parse_storage_state(text, path)
    else:
        cookies = parse_cookies_txt(text, path)
    if not cookies:
        raise SessionError(f"session file for {platform}: {path}: no cookies in it")
    return Session(platform=platform, origin=path, cookies=tuple(cookies))


def login_variables(platform: str) -> tuple[str, str] | None:
    """The (handle, password) variables of a platform whose sign-in is exchanged for a token."""
    cls = REGISTRY.get(platform)
    return cls.login_variables if cls is not None else None


def load_sessions(platforms: list[str], files: dict[str, str],
                  env: dict[str, str] | None = None) -> dict[str, Session]:
    """Sessions for the crawled platforms: --session files, then environment variables."""
    env = dict(os.environ) if env is None else env
    sessions: dict[str, Session] = {}
    for platform in platforms:
        path = files.get(platform) or env.get(f"TAGARCHIVE_SESSION_{platform.upper()}")
        if path:
            sessions[platform] = load_session_file(platform, path)
        names = login_variables(platform)
        if names and (env.get(names[0]) or env.get(names[1])):
            if not (env.get(names[0]) and env.get(names[1])):
                raise SessionError(f"{platform} sign-in needs both {names[0]} and {names[1]}")
            login = {"identifier": env[names[0]], "password": env[names[1]]}
            base = sessions.get(platform)
            sessions[platform] = Session(platform=platform, origin=" and ".join(names),
                                         cookies=base.cookies if base else (), login=login)
    unknown = set(files) - set(platforms)
    if unknown:
        raise SessionError(f"--session names platforms not crawled: {', '.join(sorted(unknown))}")
    return sessions
