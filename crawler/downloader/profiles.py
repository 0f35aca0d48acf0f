"""The user's own browser and sessions: attaching over CDP, persistent profiles, their cookies.

- `--browser-cdp URL` attaches to a Chromium or Chrome the user started with
  `--remote-debugging-port` (scrapy-playwright's PLAYWRIGHT_CDP_URL, Playwright's
  `connect_over_cdp`): its real binary renders, and the cookies its own (first) context holds for
  a platform are that platform's session, as MediaCrawler's CDP mode uses `browser.contexts[0]`
  (tools/cdp_browser.py). Only a loopback URL is taken unless a remote one is allowed by name:
  the DevTools protocol has no authentication, and whoever reaches the port reads every cookie
  of that browser and runs code in every tab.
- `--browser-profile DIR` keeps one persistent profile per platform in DIR/<platform> (owner
  only, 0700): scrapy-playwright launches a persistent context there (`user_data_dir`), so what
  the platform set in one crawl is sent in the next. `tagarchive signin PLATFORM --profile DIR`
  signs such a profile in and leaves DIR/<platform>.signed-in beside it.

Reading cookies here (before Scrapy starts) uses Playwright's async API under `asyncio.run`, so
no event loop is left behind for the reactor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.downloader.signin import Cookie

SIGNED_IN_SUFFIX = ".signed-in"  # DIR/<platform>.signed-in: when `signin` last signed it in
LOCK_SUFFIX = ".lock"  # DIR/<platform>.lock: the crawl using the profile (one at a time)
CDP_TIMEOUT_MS = 15_000


class ProfileError(RuntimeError):
    """A browser to attach to or a profile that cannot be used; one line, no secret in it."""


class RemoteBrowserRefused(ValueError):
    """A CDP URL that is not on loopback, without the flag that allows it."""


def check_cdp_url(url: str, allow_remote: bool = False) -> str:
    """A DevTools URL (http(s):// or ws(s)://host:port...) on loopback, or allowed remote.

    ValueError (RemoteBrowserRefused for a remote one) says what is wrong; a URL carrying
    user:password@ is refused and never echoed.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError("--browser-cdp must not carry credentials (user:password@)")
    try:
        valid = (parts.scheme in ("http", "https", "ws", "wss") and bool(parts.hostname)
                 and parts.port is not None and parts.port != 0)
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ValueError(f"--browser-cdp is not a DevTools URL such as http://127.0.0.1:9222: "
                         f"{url!r}")
    if not (allow_remote or is_loopback(parts.hostname or "")):
        raise RemoteBrowserRefused(
            f"--browser-cdp {parts.hostname} is not this machine: the DevTools port has no "
            "password, so attaching to a remote browser needs --allow-remote-cdp "
            "(docs/access.md)")
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def owner_only_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700, tightening it if it exists more open."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)
    return path


def profile_dir(root: str | Path, platform: str) -> Path:
    """DIR/<platform>, owner only: the platform's persistent browser profile."""
    owner_only_dir(Path(root).expanduser())
    return owner_only_dir(Path(root).expanduser() / platform)


def persistent_context_kwargs(directory: str, launch_options: Mapping[str, Any]) -> dict[str, Any]:
    """`playwright_context_kwargs` of a persistent context: scrapy-playwright passes them to
    `launch_persistent_context`, which launches its own browser, so the launch options go in."""
    return {**launch_options, "user_data_dir": str(directory)}


def lock_path(root: str | Path, platform: str) -> Path:
    return Path(root).expanduser() / f"{platform}{LOCK_SUFFIX}"


def mark_signed_in(root: str | Path, platform: str, by: str) -> Path:
    """Leave DIR/<platform>.signed-in (0600): the time the profile was signed in."""
    path = Path(root).expanduser() / f"{platform}{SIGNED_IN_SUFFIX}"
    data = {"platform": platform, "signed_in_at": datetime.now(UTC).isoformat(), "by": by}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return path


def signed_in_at(root: str | Path, platform: str) -> float | None:
    """When `signin` last signed the platform's profile in (a file time), or None."""
    try:
        return (Path(root).expanduser() / f"{platform}{SIGNED_IN_SUFFIX}").stat().st_mtime
    except OSError:
        return None


def to_cookie(raw: Mapping[str, Any]) -> Cookie:
    """A Playwright cookie dict as a session Cookie."""
    return Cookie(name=str(raw["name"]), value=str(raw["value"]), domain=str(raw["domain"]),
                  path=str(raw.get("path") or "/"), secure=bool(raw.get("secure")),
                  http_only=bool(raw.get("httpOnly")), expires=float(raw.get("expires", -1)))


def in_scope(raw: Mapping[str, Any], hosts: tuple[str, ...]) -> bool:
    """Whether a browser cookie's domain is one of `hosts` or a parent of one."""
    domain = str(raw.get("domain", "")).lstrip(".").lower()
    return any(h.lower() == domain or h.lower().endswith("." + domain) for h in hosts)


def cdp_cookies(url: str, scopes: Mapping[str, tuple[str, ...]]) -> dict[str, list[Cookie]]:
    """The cookies the attached browser's own context holds for each platform's hosts.

    Nothing else is read: the user's other cookies never leave their browser. Attaching and
    disconnecting leaves the browser and its tabs as they were.
    """
    raw = asyncio.run(_cdp_cookies(url))
    return {platform: [to_cookie(c) for c in raw if in_scope(c, hosts)]
            for platform, hosts in scopes.items()}


async def _cdp_cookies(url: str) -> list[dict[str, Any]]:
    from playwright.async_api import Error, async_playwright

    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.connect_over_cdp(url, timeout=CDP_TIMEOUT_MS)
        except Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProfileError(f"cannot attach to the browser at {url}: {first[:200]}") from None
        try:
            contexts = browser.contexts
            return [dict(c) for c in await contexts[0].cookies()] if contexts else []
        finally:
            await browser.close()  # over CDP: disconnects; the user's browser stays open


def profile_cookies(directories: Mapping[str, Path], launch_options: Mapping[str, Any],
                    scopes: Mapping[str, tuple[str, ...]]) -> dict[str, list[Cookie]]:
    """The cookies each platform's persistent profile holds for that platform's hosts."""
    raw = asyncio.run(_profile_cookies(directories, launch_options))
    return {platform: [to_cookie(c) for c in cookies if in_scope(c, scopes[platform])]
            for platform, cookies in raw.items()}


async def _profile_cookies(directories: Mapping[str, Path],
                           launch_options: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from playwright.async_api import Error, async_playwright

    found: dict[str, list[dict[str, Any]]] = {}
    async with async_playwright() as pw:
        for platform, directory in directories.items():
            try:
                context = await pw.chromium.launch_persistent_context(
                    **persistent_context_kwargs(str(directory), launch_options))
            except Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
                raise ProfileError(f"cannot open the {platform} profile {directory}: "
                                   f"{first[:200]}") from None
            try:
                found[platform] = [dict(c) for c in await context.cookies()]
            finally:
                await context.close()
    return found
