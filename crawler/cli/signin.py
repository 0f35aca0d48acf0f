"""`tagarchive signin PLATFORM`, and what a crawl does with the user's own browser before it starts.

`signin` opens the platform's login page in a browser window (or a new tab of the user's own
browser attached over CDP, or a persistent profile), waits until the platform's signed-in cookie
appears, and saves the session as a Playwright storage_state (0600) that `crawl --session`
takes. Only the platform's own cookies and local storage are saved, never the browser's others.

Exit codes: 0 signed in and saved; 1 not signed in before --timeout, or the window was closed;
2 usage (an unknown platform, one whose signed-in cookie is not known, a remote CDP URL without
--allow-remote-cdp); 3 environment: no display to open a window on (the export instructions are
printed), no Chromium, a browser that cannot be attached or a profile in use; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.runrecord import EXIT_ENVIRONMENT, EXIT_OK, EXIT_TAG_FAILED

logger = logging.getLogger("tagarchive")

DEFAULT_TIMEOUT = 600.0  # seconds a person has to sign in
POLL_SECONDS = 0.5


def has_display(env: Mapping[str, str]) -> bool:
    """Whether a window can be opened: an X11 or Wayland display is named."""
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def export_instructions(platform: str, cookie: str, login_url: str) -> str:
    """How to bring a session from a browser where the user is signed in, for `--session`."""
    host = urlsplit(login_url).hostname or platform
    return f"""\
To sign in to {platform} without a window here, bring a session from a browser where you are
signed in (the cookie that says so is {cookie}); tagarchive takes either form with --session:

  1. cookies.txt: in your everyday browser, sign in at {login_url}, then export the cookies
     of {host} and the platform's other sites with an extension that writes the Netscape
     cookies.txt format, and copy the file here.
  2. storage_state: on a machine with a display run
       tagarchive signin {platform} --save {platform}.json
     and copy {platform}.json here.
  3. your own Chrome, attached: start it with --remote-debugging-port=9222 (through
     `ssh -L 9222:127.0.0.1:9222 desktop` if it runs elsewhere), sign in, then run
       tagarchive signin {platform} --browser-cdp http://127.0.0.1:9222

Then crawl with --session {platform}=FILE (or `[signin] {platform} = "FILE"` in the config).
Keep the file private (chmod 600): it signs in as you.
"""


# --- the crawl's side: --browser-cdp, --browser-profile, and the signed-in check ----------


def own_browser_settings(args: argparse.Namespace,
                         platforms: Sequence[str]) -> dict[str, Any]:
    """Settings for --browser-cdp (PLAYWRIGHT_CDP_URL; nothing launched) or --browser-profile
    (a persistent context per rendering platform, TAGARCHIVE_BROWSER_PROFILES)."""
    from crawler.downloader.profiles import RemoteBrowserRefused, check_cdp_url, profile_dir
    from crawler.platforms import platform_class

    cdp = getattr(args, "browser_cdp", None)
    root = getattr(args, "browser_profile", None)
    if cdp and root:
        raise UsageError("give --browser-cdp or --browser-profile, not both: an attached "
                         "browser keeps its own profile")
    if cdp:
        allow = bool(getattr(args, "allow_remote_cdp", False))
        try:
            url = check_cdp_url(cdp, allow_remote=allow)
        except (RemoteBrowserRefused, ValueError) as exc:
            raise UsageError(str(exc)) from None
        host = urlsplit(url).hostname or ""
        from crawler.downloader.profiles import is_loopback

        if not is_loopback(host):
            logger.warning("attaching over CDP to a browser on another machine (%s, "
                           "--allow-remote-cdp): its DevTools port has no password", host)
        # attached: nothing is launched, so no launch options (scrapy-playwright would warn)
        return {"PLAYWRIGHT_CDP_URL": url, "PLAYWRIGHT_LAUNCH_OPTIONS": {}}
    if not root:
        return {}
    given = session_platforms(args)
    try:
        dirs = {p: str(profile_dir(root, p)) for p in platforms
                if platform_class(p).browser != "never" and p not in given}
    except OSError as exc:
        raise EnvironmentProblem(f"--browser-profile {root}: {exc.strerror}") from None
    # a persistent context is never closed before the crawl ends: room for each beside the
    # rotating ones (PLAYWRIGHT_MAX_CONTEXTS is a semaphore; crawler/settings.py has 2)
    return {"TAGARCHIVE_BROWSER_PROFILE": str(Path(root).expanduser()),
            "TAGARCHIVE_BROWSER_PROFILES": dirs, "PLAYWRIGHT_MAX_CONTEXTS": 2 + len(dirs)}


def session_platforms(args: argparse.Namespace) -> set[str]:
    """Platforms given a session by --session or TAGARCHIVE_SESSION_<PLATFORM>: it wins over
    the profile for them."""
    from crawler.platforms import REGISTRY, UnknownPlatformError, platform_class

    named = set()
    for entry in getattr(args, "session", None) or ():
        with contextlib.suppress(UnknownPlatformError):
            named.add(platform_class(entry.partition("=")[0]).name)
    named |= {p for p in REGISTRY if os.environ.get(f"TAGARCHIVE_SESSION_{p.upper()}")}
    return named


def prepare_access(held: contextlib.ExitStack, platforms: list[str], sessions: dict[str, Any],
                   settings: Any) -> dict[str, str]:
    """Before a crawl: lock the profiles it uses, add the sessions of the user's own browser
    (its profile's or the attached browser's cookies for each platform) to `sessions`, and run
    the signed-in check (crawler/downloader/signedin.py) for each platform with a session meant
    to be signed in. Returns {platform: why} for those that failed it."""
    from crawler.downloader.profiles import ProfileError, lock_path, signed_in_at
    from crawler.downloader.signedin import SIGNIN_FACTS, check_session
    from crawler.downloader.signin import Session, session_hosts
    from crawler.logredact import register_secrets
    from crawler.platforms import platform_class
    from crawler.services.locks import LockBusy, file_lock

    base_urls = settings.getdict("TAGARCHIVE_BASE_URLS")
    adapters = {p: platform_class(p)(base_urls.get(p)) for p in platforms}
    meant: set[str] = set()  # platforms whose session is meant to be signed in
    given = set(sessions)
    root = settings.get("TAGARCHIVE_BROWSER_PROFILE")
    cdp = settings.get("PLAYWRIGHT_CDP_URL")
    found: dict[str, tuple[str, list[Any]]] = {}
    try:
        if root:
            rendering = set(settings.getdict("TAGARCHIVE_BROWSER_PROFILES"))
            signed = {p for p in platforms if p not in given and signed_in_at(root, p)}
            read = {p: Path(root) / p for p in platforms if p not in given
                    and (Path(root) / p).is_dir()
                    and (p in signed or platform_class(p).browser != "always")}
            for platform in sorted(rendering | set(read)):
                try:
                    held.enter_context(file_lock(lock_path(root, platform)))
                except LockBusy as exc:
                    raise EnvironmentProblem(f"the {platform} profile {Path(root) / platform} "
                                             f"is in use by another crawl (pid {exc})") from None
            if read:
                from crawler.downloader.profiles import profile_cookies

                read_cookies = profile_cookies(read, _launch(settings),
                                               {p: session_hosts(adapters[p]) for p in read})
                found |= {p: (f"profile {read[p]}", c) for p, c in read_cookies.items()}
            meant |= signed
        if cdp:
            from crawler.downloader.profiles import cdp_cookies

            attached = cdp_cookies(cdp, {p: session_hosts(adapters[p]) for p in platforms
                                         if p not in given})
            found |= {p: (f"the browser at {cdp}", c) for p, c in attached.items()}
    except ProfileError as exc:
        raise EnvironmentProblem(str(exc)) from None
    for platform, (origin, cookies) in found.items():
        if cookies:
            sessions[platform] = Session(platform=platform, origin=origin, cookies=tuple(cookies))
            register_secrets(sessions[platform].secrets())
    walled: dict[str, str] = {}
    agent = settings.get("USER_AGENT")
    for platform in platforms:
        session = sessions.get(platform)
        if session is None:
            continue
        # meant to be signed in: it holds the signed-in cookie (other cookies, such as
        # TikTok's msToken, are no sign-in), a profile `signin` signed in, or a platform that
        # shows nothing without
        facts = SIGNIN_FACTS.get(platform)
        holds = facts is not None and any(c.name == facts.cookie for c in session.cookies)
        required = platform_class(platform).signin == "required"
        if not (holds or platform in meant or required):
            continue
        verdict = check_session(session, adapters[platform], user_agent=agent)
        if verdict.signed_in is False:
            walled[platform] = (f"{verdict.detail}; renew it (tagarchive signin {platform}); "
                                "the tag was not requested")
        elif verdict.signed_in is None:
            logger.info("%s: sign-in not checked: %s", platform, verdict.detail)
    return walled


def _launch(settings: Any) -> dict[str, Any]:
    """Launch options for reading a profile: the crawl's, or a headless Chromium found now."""
    options: dict[str, Any] = settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
    if options.get("executable_path"):
        return options
    from crawler.downloader.chromium import BrowserNotFoundError, find_chromium, launch_options

    try:
        return launch_options(find_chromium(), images=False)
    except BrowserNotFoundError as exc:
        raise EnvironmentProblem(str(exc)) from None


# --- tagarchive signin --------------------------------------------------------------------------


def cmd_signin(args: argparse.Namespace) -> int:
    from crawler.cli.main import load_config_sources, resolve_base_urls
    from crawler.downloader.profiles import RemoteBrowserRefused, check_cdp_url
    from crawler.downloader.signedin import SIGNIN_FACTS, on_base
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.services.watchvalues import parse_duration

    load_config_sources(args.config)
    try:
        cls = platform_class(args.platform)
        timeout = parse_duration(args.timeout)
    except (UnknownPlatformError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    facts = SIGNIN_FACTS.get(cls.name)
    if facts is None:
        raise UsageError(f"tagarchive does not know which cookie says you are signed in to "
                         f"{cls.name}: export its cookies to a cookies.txt and crawl with "
                         f"--session {cls.name}=FILE (docs/signin.md)")
    if args.browser_cdp and args.profile:
        raise UsageError("give --browser-cdp or --profile, not both")
    cdp = None
    if args.browser_cdp:
        try:
            cdp = check_cdp_url(args.browser_cdp, allow_remote=args.allow_remote_cdp)
        except (RemoteBrowserRefused, ValueError) as exc:
            raise UsageError(str(exc)) from None
    base_urls = resolve_base_urls([cls.name], args.base_url, args.replica, dict(os.environ))
    adapter = cls(base_urls.get(cls.name))
    login_url = on_base(adapter, facts.login_url)
    if cdp is None and not has_display(os.environ):
        print(f"tagarchive: error: no display (neither DISPLAY nor WAYLAND_DISPLAY is set) to "
              f"open a browser window for signing in to {cls.name}", file=sys.stderr)
        print(export_instructions(cls.name, facts.cookie, facts.login_url), end="")
        return EXIT_ENVIRONMENT
    save = Path(args.save or Path("sessions") / f"{cls.name}.json").expanduser()
    try:
        state = asyncio.run(_sign_in(adapter, login_url, cdp, args.profile, timeout))
    except TimeoutError:
        print(f"tagarchive: {cls.name}: not signed in within {args.timeout}; nothing saved",
              file=sys.stderr)
        return EXIT_TAG_FAILED
    except _WindowClosed:
        print(f"tagarchive: {cls.name}: the browser window was closed before signing in; "
              "nothing saved", file=sys.stderr)
        return EXIT_TAG_FAILED
    written = save_state(save, state)
    if args.profile:
        from crawler.downloader.profiles import mark_signed_in

        mark_signed_in(args.profile, cls.name, "tagarchive signin")
    print(f"signed in to {cls.name}: {len(state['cookies'])} cookie(s) saved to {written} "
          f"(0600); crawl with --session {cls.name}={written}"
          + (f" or --browser-profile {args.profile}" if args.profile else ""))
    return EXIT_OK


class _WindowClosed(Exception):
    """The person closed the sign-in window (or the attached browser went away)."""


def save_state(path: Path, state: dict[str, Any]) -> Path:
    """Write a storage_state owner-only (0600; a new parent directory 0700), atomically."""
    from crawler.downloader.profiles import owner_only_dir

    try:
        if not path.parent.exists():
            owner_only_dir(path.parent)
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, ensure_ascii=False, indent=1)
        os.chmod(partial, 0o600)  # an existing partial file keeps its mode through O_CREAT
        os.replace(partial, path)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot save the session to {path}: {exc.strerror}") from None
    return path


def platform_state(state: dict[str, Any], hosts: tuple[str, ...]) -> dict[str, Any]:
    """Only the platform's cookies and the local storage of its origins, from a storage_state
    of a whole browser (an attached one holds every site the user visits)."""
    from crawler.downloader.profiles import in_scope

    cookies = [c for c in state.get("cookies") or () if in_scope(c, hosts)]
    origins = [o for o in state.get("origins") or ()
               if (urlsplit(str(o.get("origin", ""))).hostname or "") in hosts]
    return {"cookies": cookies, "origins": origins}


def signed_in(cookies: list[dict[str, Any]], cookie: str, value: str | None,
              guest: str | None) -> bool:
    """Whether the platform's signed-in cookie is there, with the signed-in value; where a
    signed-out visitor gets one too (`guest`), only a changed value counts."""
    mark = next((c for c in cookies if c.get("name") == cookie and c.get("value")), None)
    if mark is None:
        return False
    if value is not None:
        return bool(mark["value"] == value)
    return guest is None or mark["value"] != guest


async def _sign_in(adapter: Any, login_url: str, cdp: str | None, profile: str | None,
                   timeout: float) -> dict[str, Any]:
    """Open the login page, wait for the signed-in cookie, return the platform's state."""
    from playwright.async_api import Error, async_playwright

    from crawler.downloader.signedin import SIGNIN_FACTS
    from crawler.downloader.signin import session_hosts

    facts = SIGNIN_FACTS[adapter.name]
    hosts = session_hosts(adapter)
    async with async_playwright() as pw:
        browser: Any = None
        context: Any = None
        try:
            if cdp is not None:
                try:
                    browser = await pw.chromium.connect_over_cdp(cdp, timeout=15_000)
                except Error as exc:
                    raise EnvironmentProblem(f"cannot attach to the browser at {cdp}: "
                                             f"{_first_line(exc)}") from None
                # the user's own context: a session they already have is found at once
                context = browser.contexts[0] if browser.contexts else await browser.new_context()
            else:
                options = _headed()
                if profile:
                    from crawler.downloader.profiles import (
                        persistent_context_kwargs,
                        profile_dir,
                    )

                    directory = profile_dir(profile, adapter.name)
                    try:
                        context = await pw.chromium.launch_persistent_context(
                            **persistent_context_kwargs(str(directory), options))
                    except Error as exc:
                        raise EnvironmentProblem(f"cannot open the profile {directory}: "
                                                 f"{_first_line(exc)}") from None
                else:
                    browser = await pw.chromium.launch(**options)
                    context = await browser.new_context()
            page = await context.new_page()
            closed = asyncio.Event()
            page.on("close", lambda _page: closed.set())
            urls = [f"{urlsplit(login_url).scheme}://{h}/" for h in hosts]
            guest = None
            with contextlib.suppress(Error):
                await page.goto(login_url, wait_until="domcontentloaded")
            if facts.guest_too:  # what a signed-out visitor was given: signing in replaces it
                first = [c for c in await context.cookies(urls) if c["name"] == facts.cookie]
                guest = first[0]["value"] if first else None
            deadline = time.monotonic() + timeout
            while True:
                cookies = [dict(c) for c in await context.cookies(urls)]
                if signed_in(cookies, facts.cookie, facts.value, guest):
                    break
                if closed.is_set():
                    raise _WindowClosed
                if time.monotonic() > deadline:
                    raise TimeoutError
                await asyncio.sleep(POLL_SECONDS)
            state = platform_state(dict(await context.storage_state()), hosts)
            if cdp is not None:
                with contextlib.suppress(Error):
                    await page.close()  # the user's browser keeps its other tabs
            return state
        finally:
            with contextlib.suppress(Error):
                if browser is not None:
                    await browser.close()  # attached: disconnects only
                elif context is not None:
                    await context.close()


def _headed() -> dict[str, Any]:
    from crawler.downloader.chromium import (
        INSTALL_HINT,
        BrowserNotFoundError,
        find_chromium,
        launch_options,
    )

    try:
        executable = find_chromium()
    except BrowserNotFoundError as exc:
        raise EnvironmentProblem(str(exc)) from None
    if executable is None:
        raise EnvironmentProblem(INSTALL_HINT)
    return {**launch_options(executable, images=True), "headless": False}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def register(sub: Any) -> None:
    """Add `signin` to the `tagarchive` command line."""
    p = sub.add_parser("signin", help="sign in to a platform in a browser window and save the "
                                      "session for later crawls",
                       epilog="exit codes: 0 saved, 1 not signed in (timeout, window closed), "
                              "2 usage, 3 no display (prints how to export cookies instead), "
                              "no browser, profile in use")
    p.add_argument("platform", help="e.g. bilibili, xiaohongshu, weibo, douyin, instagram")
    p.add_argument("--save", metavar="FILE",
                   help="where to save the storage_state (default sessions/<platform>.json; "
                        "written 0600)")
    p.add_argument("--profile", metavar="DIR",
                   help="sign in inside the persistent profile DIR/<platform> that "
                        "`crawl --browser-profile DIR` uses")
    p.add_argument("--browser-cdp", metavar="URL",
                   help="open the login page in your own running browser (started with "
                        "--remote-debugging-port) instead of a new window")
    p.add_argument("--allow-remote-cdp", action="store_true",
                   help="let --browser-cdp name another machine (its DevTools port has no "
                        "password)")
    p.add_argument("--timeout", default="10m",
                   help="how long to wait for you to sign in (default 10m)")
    p.add_argument("--base-url", action="append", default=[], metavar="URL",
                   help="the platform's login page on this base URL instead (a mirror)")
    p.add_argument("--replica", metavar="URL", help="a `tagarchive replica` root")
    p.add_argument("--config", metavar="FILE", help="TOML config whose [[source]] tables "
                                                     "add platforms")
    p.set_defaults(func=cmd_signin)
