"""The `tagarchive` command line: crawl, demo, replica, platforms.

Exit codes: 0 every requested tag stored; 1 some tag failed (each named on its own line);
2 usage error; 3 environment error (no browser, output not writable, storage failed);
4 every tag stored but a health check flagged the run (crawler/extensions/health.py);
130 interrupted (the tags never requested are `not_attempted`, counted on one line).
Expected failures print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from crawler.cli.errors import EnvironmentProblem, UsageError
from crawler.extensions.health import NOT_ATTEMPTED
from crawler.extensions.runrecord import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RunState,
    TagJob,
    recorded_settings,
)
from crawler.platforms import REGISTRY, UnknownPlatformError, parse_platforms, platform_class
from crawler.rules.privacy import MODES as PRIVACY_MODES
from crawler.text.tags import InvalidTagError, parse_tag_arg


def parse_day(text: str) -> date:
    """An argparse type: a YYYY-MM-DD day (backfill --since/--until, compact --before)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD day: {text!r}") from None


def _check_url(url: str, what: str) -> str:
    """An http(s) base URL, named `what` in errors. One carrying user:password@ is refused and
    never echoed: every request would fail on it, and carry the password into the run record,
    the logs and the error lines."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise UsageError(f"{what} must not carry credentials (user:password@)")
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # .port of one that is not a number
        valid = False
    if not valid:
        # a malformed URL may still hold a password ("http://u:pa/ss@host"): then not shown
        shown = "" if "@" in url else f": {url!r}"
        raise UsageError(f"{what} is not an http(s) URL{shown}")
    return url.rstrip("/")


def resolve_base_urls(platforms: Sequence[str], base_url: Sequence[str], replica: str | None,
                      env: dict[str, str]) -> dict[str, str]:
    """Per-platform base URLs from (lowest to highest precedence) environment, --replica,
    --base-url. A bare --base-url URL applies to the single platform crawled."""
    urls: dict[str, str] = {}
    for name in platforms:
        variable = f"TAGARCHIVE_BASE_URL_{name.upper()}"
        value = env.get(variable)
        if value:
            urls[name] = _check_url(value, variable)
    if replica or env.get("TAGARCHIVE_REPLICA"):
        root = (_check_url(replica, "--replica") if replica
                else _check_url(env["TAGARCHIVE_REPLICA"], "TAGARCHIVE_REPLICA"))
        for name in platforms:
            urls[name] = root + "/" + name
    for entry in base_url:
        name, sep, url = entry.partition("=")
        if sep and not name.startswith(("http:", "https:")):
            try:
                name = platform_class(name).name
            except UnknownPlatformError as exc:
                raise UsageError(str(exc)) from None
            urls[name] = _check_url(url, f"--base-url for {name}")
        elif len(platforms) == 1:
            urls[platforms[0]] = _check_url(entry, f"--base-url for {platforms[0]}")
        else:
            raise UsageError("with several platforms, give --base-url PLATFORM=URL")
    return urls


def prepare_out(out: str) -> str:
    """Create the output root; an unwritable one is an environment problem, not a crash.

    An ``s3://bucket/prefix`` root is checked instead (docs/s3.md): a malformed URL is a usage
    error, a bucket that is missing or does not answer an environment problem.
    """
    from storage.backends import backend_for
    from storage.errors import StorageError
    from storage.fs import BadRootError

    try:
        return backend_for(out).prepare(out)  # a directory made, or a bucket checked
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except StorageError as exc:
        raise EnvironmentProblem(str(exc)) from None


def privacy_settings(args: argparse.Namespace) -> dict[str, Any]:
    """--privacy and --pseudonym-key as settings, checked now: a bad mode is a usage error
    (exit 2); a key given (file, $TAGARCHIVE_PSEUDONYM_KEY) that cannot be read or is too short
    stops the command before it fetches anything (exit 3). The project's own key file is made
    by the privacy pipeline when the run starts: nothing is written for a command that fails."""
    from crawler.rules.privacy import PrivacyModeError, check_mode
    from storage.pseudonymkey import KEY_ENV, PseudonymKeyError, project_key

    mode = getattr(args, "privacy", None) or "pseudonymize"
    key_file = getattr(args, "pseudonym_key", None)
    try:
        check_mode(mode)
        if mode != "keep" and (key_file or os.environ.get(KEY_ENV, "").strip()):
            project_key(args.out, key_file=key_file)
    except PrivacyModeError as exc:
        raise UsageError(str(exc)) from None
    except PseudonymKeyError as exc:
        raise EnvironmentProblem(str(exc)) from None
    if mode == "keep":
        logging.getLogger("tagarchive").warning(
            "privacy: keep — authors, mentions and post URLs are stored as the platform shows "
            "them (recorded in runs.privacy)")
    return {"TAGARCHIVE_PRIVACY": mode, "TAGARCHIVE_PSEUDONYM_KEY_FILE": key_file}


def build_settings(args: argparse.Namespace, base_urls: dict[str, str],
                   platforms: Sequence[str]) -> dict[str, Any]:
    """Overrides of crawler.settings for this invocation."""
    overrides: dict[str, Any] = {
        "TAGARCHIVE_OUT": args.out,
        "TAGARCHIVE_BASE_URLS": base_urls,
        "LOG_LEVEL": args.log_level.upper(),
    }
    if args.concurrency is not None:
        overrides["CONCURRENT_REQUESTS_PER_DOMAIN"] = args.concurrency
        overrides["CONCURRENT_REQUESTS"] = max(16, args.concurrency)
    if args.delay is not None:
        overrides["DOWNLOAD_DELAY"] = args.delay
        overrides["AUTOTHROTTLE_START_DELAY"] = max(args.delay, 0.01)
        if args.delay == 0:
            overrides["AUTOTHROTTLE_ENABLED"] = False
    if args.ignore_robots:
        overrides["ROBOTSTXT_OBEY"] = False
    if args.no_archive:
        overrides["TAGARCHIVE_ARCHIVE_ENABLED"] = False
    if getattr(args, "ignore_cooloff", False):
        overrides["TAGARCHIVE_IGNORE_COOLOFF"] = True
        logging.getLogger("tagarchive").warning(
            "platforms cooling off after a captcha, block or rate limit are requested anyway "
            "(--ignore-cooloff)")
    for entry in args.set:
        name, sep, value = entry.partition("=")
        if not sep or not name.isidentifier() or name.upper() != name:
            raise UsageError(f"-s expects NAME=VALUE with an upper-case setting name: {entry!r}")
        overrides[name] = value
    from crawler.cli.signin import own_browser_settings

    # --browser-cdp, --browser-profile: also where nothing renders, for their cookies
    own = own_browser_settings(args, platforms)
    overrides.update(browser_settings(args, base_urls, platforms,
                                      attached="PLAYWRIGHT_CDP_URL" in own))
    overrides.update(own)
    overrides.update(privacy_settings(args))
    return overrides


def browser_settings(args: argparse.Namespace, base_urls: dict[str, str],
                     platforms: Sequence[str], *, attached: bool) -> dict[str, Any]:
    """The browser's part of build_settings: off, or how Chromium (and the headless shell the
    signing pages live in) is launched, unless the crawl attached to the user's browser."""
    from crawler.downloader.chromium import (
        BROWSER_DOWNLOAD_HANDLER,
        INSTALL_HINT,
        BrowserNotFoundError,
        find_chromium,
        launch_options,
        signing_launch_options,
    )

    needs = {platform_class(p).browser for p in platforms}
    if needs == {"never"} or args.no_browser:
        return {"TAGARCHIVE_BROWSER_ENABLED": False, "DOWNLOAD_HANDLERS": {}}
    try:  # attached (--browser-cdp): nothing is launched, no local Chromium needed
        executable = None if attached else find_chromium()
        signing = signing_launch_options(attached)
    except BrowserNotFoundError as exc:
        raise EnvironmentProblem(str(exc)) from None
    if executable is None and not attached:
        raise EnvironmentProblem(INSTALL_HINT)
    # the browser handler for the schemes in use; it starts Chromium on the first request
    # that renders, so a crawl that renders nothing never starts it
    # (crawler/downloader/chromium.py)
    schemes = {urlsplit(base_urls.get(p) or platform_class(p).default_base_url).scheme
               for p in platforms}
    return {"PLAYWRIGHT_LAUNCH_OPTIONS": launch_options(executable, images=False),
            "TAGARCHIVE_SIGNING_LAUNCH_OPTIONS": signing,
            "DOWNLOAD_HANDLERS": dict.fromkeys(schemes, BROWSER_DOWNLOAD_HANDLER)}


def load_config_sources(config: str | None) -> None:
    """Register the config's `[[source]]` platforms (from --config or TAGARCHIVE_CONFIG)."""
    from crawler.platforms import register_sources
    from crawler.platforms.configured_rules import SourceConfigError

    path = config or os.environ.get("TAGARCHIVE_CONFIG")
    if not path:
        return
    try:
        register_sources(path)
    except SourceConfigError as exc:
        raise UsageError(str(exc)) from None


def cmd_crawl(args: argparse.Namespace) -> int:
    load_config_sources(args.config)
    try:
        platforms = parse_platforms(args.platforms)
        refs = [parse_tag_arg(t) for t in args.tags]
    except (UnknownPlatformError, InvalidTagError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    jobs: list[TagJob] = []
    seen: set[tuple[str, str]] = set()
    for platform in platforms:
        for ref in refs:
            job = TagJob(platform, ref)
            if (platform, job.key) not in seen:  # a set: 20,000 tags must not take minutes
                seen.add((platform, job.key))
                jobs.append(job)
    base_urls = resolve_base_urls(platforms, args.base_url, args.replica, dict(os.environ))
    sessions = _load_sessions(platforms, args.session)
    out = prepare_out(args.out)
    overrides = build_settings(args, base_urls, platforms)
    if args.ignore_robots:
        logging.getLogger("tagarchive").warning("robots.txt is NOT obeyed (--ignore-robots)")

    settings = project_settings(overrides)
    from crawler.cli.signin import prepare_access

    with contextlib.ExitStack() as held:  # the browser profiles this crawl uses, locked
        # the user's own browser's sessions, and the "am I signed in" check: a platform that
        # fails it ends its tags login_wall, and none of them is requested
        walled = prepare_access(held, platforms, sessions, settings)
        run = RunState(out=out, jobs=jobs, command="crawl", argv=list(args.argv),
                       settings_json=recorded_settings(settings), sessions=sessions)
        for job in jobs:
            if job.platform in walled:
                run.set_outcome(job.platform, job.key, "login_wall", walled[job.platform])
        from crawler.spiders.snapshot import SnapshotSpider

        process = crawler_process(settings, args.log_format)
        process.crawl(SnapshotSpider, run=run)
        start_process(process)
    return report(run, quiet=args.quiet)


def project_settings(overrides: dict[str, Any]) -> Any:
    """crawler/settings.py with this invocation's overrides on top (`crawl`, `worker`,
    `backfill`); from here on, log lines show no URL's user:password@."""
    from scrapy.utils.project import get_project_settings

    from crawler.extensions.logs import install_url_redaction

    install_url_redaction()
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    settings = get_project_settings()
    settings.setdict(overrides, priority="cmdline")
    return settings


def crawler_process(settings: Any, log_format: str) -> Any:
    """A CrawlerProcess logging as --log-format says (json: one object per line)."""
    from scrapy.crawler import CrawlerProcess

    if log_format != "json":
        return CrawlerProcess(settings)
    from crawler.extensions.logs import JsonFormatter

    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    process = CrawlerProcess(settings)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(settings.get("LOG_LEVEL"))
    return process


# Young-generation threshold while crawling: Python's default (700) runs a collection every few
# hundred allocations, and a crawl allocates a Request, a Response and a page of rows per tag.
CRAWL_GC_THRESHOLD = (20_000, 20, 10)


def start_process(process: Any) -> None:
    """Run the process's crawls with the garbage collector and Arrow's allocator set for it.

    Everything alive now (modules, settings, the spider and its run) lives as long as the
    process, so it is frozen out of the collector's view: without that each full collection
    walks ~70k objects Scrapy, pyarrow and Twisted brought in, and on a 300-tag crawl the
    collector took 0.3 s of 1.5 s (docs/performance.md). Memory is unaffected: nothing frozen
    would have been freed, and garbage made during the crawl is still collected.
    """
    import pyarrow as pa

    # Arrow's buffers from the C library's allocator, already warm in this process: a crawl
    # makes a few small tables per flush, and with pyarrow's default (mimalloc) each landed on
    # fresh pages: sorting a closing write's 8,824 post rows took 56 ms instead of 2, and
    # converting them 57 ms instead of 30 (docs/performance.md).
    pa.set_memory_pool(pa.system_memory_pool())
    gc.set_threshold(*CRAWL_GC_THRESHOLD)
    gc.freeze()
    try:
        process.start()
    finally:
        # back in the collector's view for interpreter shutdown: extension modules that count
        # their live objects at exit (nanobind) would otherwise report the frozen ones as leaks
        gc.unfreeze()


def _load_sessions(platforms: list[str], entries: Sequence[str]) -> dict[str, Any]:
    """Sign-in per platform from --session PLATFORM=FILE and the environment."""
    from crawler.downloader.signin import SessionError, load_sessions
    from crawler.logredact import register_secrets

    files: dict[str, str] = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not path:
            raise UsageError(f"--session expects PLATFORM=FILE, got {name!r}")
        try:
            files[platform_class(name).name] = path
        except UnknownPlatformError as exc:
            raise UsageError(str(exc)) from None
    try:
        sessions = load_sessions(platforms, files)
    except SessionError as exc:
        raise UsageError(str(exc)) from None
    for session in sessions.values():
        register_secrets(session.secrets())
    return sessions


# why a run ended before every tag was requested, for the `not_attempted` line
_ENDED_EARLY = {"shutdown": "interrupted", "closespider_timeout": "time limit"}


def report(run: RunState, quiet: bool = False) -> int:
    """One line per failed tag on stderr (one in all for the tags not attempted), a one-line
    summary on stdout; returns the exit code."""
    stored = [k for k, (s, _d) in run.outcomes.items() if s == "stored"]
    for platform, tag, status, detail in run.failures:
        if status != NOT_ATTEMPTED:
            print(f"tagarchive: {platform} {tag}: {status}: {detail}", file=sys.stderr)
    count = run.not_attempted
    if count:
        why = _ENDED_EARLY.get(run.close_reason or "", run.close_reason)
        print(f"tagarchive: {count} tag{'' if count == 1 else 's'} not attempted ({why})",
              file=sys.stderr)
    if run.storage_error:
        print(f"tagarchive: storage error: {run.storage_error}", file=sys.stderr)
    if run.close_reason == "shutdown":
        print("tagarchive: interrupted; what was fetched so far is stored", file=sys.stderr)
        return EXIT_INTERRUPTED
    if run.storage_error:  # a tag counted as stored may never have reached the disk
        print(f"run {run.run_id}: storage failed under {run.out}; rows not written before "
              "the error are not stored")
    elif not quiet:
        print(f"run {run.run_id}: {len(stored)}/{len(run.outcomes)} tags stored "
              f"under {run.out}")
    return run.exit_code


def cmd_platforms(args: argparse.Namespace) -> int:
    load_config_sources(args.config)
    from rich.console import Console
    from rich.table import Table

    from crawler.platforms import BUILTIN

    table = Table(title="platforms", show_lines=True)
    for col in ("platform", "browser", "sign-in", "counters (source, exact or approximate)",
                "backfill", "defined"):
        table.add_column(col)
    for name, cls in sorted(REGISTRY.items()):
        counters = "\n".join(f"{k}: {v}" for k, v in cls.counters.items())
        table.add_row(name, cls.browser, cls.signin, counters, cls.backfill,
                      "built-in" if name in BUILTIN else "config")
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    return EXIT_OK


def cmd_replica(args: argparse.Namespace) -> int:
    from replica.__main__ import serve_forever

    serve_forever(port=args.port, seed=args.seed)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from crawler.services.demo import run_demo
    from storage import StorageError
    from storage.backends import backend_for

    if backend_for(args.out).remote:
        raise UsageError("demo writes a local directory only: give --out a path (docs/s3.md)")
    try:
        return run_demo(out=args.out, ticks=args.ticks, seed=args.seed)
    except StorageError as exc:
        raise EnvironmentProblem(str(exc)) from None


def _add_crawl_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=os.environ.get("TAGARCHIVE_OUT", "data"),
                   help="output root (default: ./data or $TAGARCHIVE_OUT)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML config whose [[source]] tables add platforms "
                        "(default: $TAGARCHIVE_CONFIG)")
    p.add_argument("--base-url", action="append", default=[], metavar="[PLATFORM=]URL",
                   help="replace the platform's hosts by URL, keeping its paths (repeatable)")
    p.add_argument("--replica", metavar="URL",
                   help="a `tagarchive replica` root: each platform at URL/<platform>")
    p.add_argument("--concurrency", type=int, help="requests at once per domain (default 2)")
    p.add_argument("--delay", type=float, help="seconds between requests per domain (default 1)")
    p.add_argument("--ignore-robots", action="store_true",
                   help="do not obey robots.txt (logged; you take responsibility)")
    p.add_argument("--session", action="append", default=[], metavar="PLATFORM=FILE",
                   help="sign in with a cookies.txt or Playwright storage_state JSON "
                        "(also TAGARCHIVE_SESSION_<PLATFORM>; never logged)")
    p.add_argument("--browser-cdp", metavar="URL",
                   help="render in your own running Chrome/Chromium, started with "
                        "--remote-debugging-port, attached over CDP; its cookies for a "
                        "platform are that platform's session (docs/access.md)")
    p.add_argument("--allow-remote-cdp", action="store_true",
                   help="let --browser-cdp name another machine (logged: a DevTools port has "
                        "no password)")
    p.add_argument("--browser-profile", metavar="DIR",
                   help="a persistent browser profile per platform in DIR/<platform> (owner "
                        "only): what a platform set in one crawl is sent in the next")
    p.add_argument("--ignore-cooloff", action="store_true",
                   help="request platforms cooling off after a captcha, block or rate limit "
                        "anyway (logged); docs/access.md")
    p.add_argument("--no-archive", action="store_true",
                   help="do not keep the raw responses as WARC under <out>/archive/")
    p.add_argument("--privacy", choices=PRIVACY_MODES,
                   default=os.environ.get("TAGARCHIVE_PRIVACY") or None,
                   help="what is kept about authors: keyed hashes (pseudonymize, the default), "
                        "nothing (redact) or the names as shown (keep); docs/privacy.md")
    p.add_argument("--pseudonym-key", metavar="FILE",
                   help="the pseudonymisation key file (default $TAGARCHIVE_PSEUDONYM_KEY, "
                        "else <out>/.tagarchive/pseudonym.key, made on first use)")
    p.add_argument("--no-browser", action="store_true",
                   help="never render; tags that need the browser fail, named")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    p.add_argument("--quiet", action="store_true", help="no summary line on success")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one object per line for log shippers")
    p.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a setting, as `scrapy crawl -s` (repeatable)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="tagarchive",
        description="Archive how hashtags grow, platform by platform, into Parquet.",
        epilog="exit codes: 0 ok, 1 a tag failed, 2 usage error, 3 environment, "
               "4 stored but unhealthy, 130 interrupted",
    )
    sub = root.add_subparsers(dest="command", required=True)
    crawl = sub.add_parser("crawl", help="observe tags once and store what was seen")
    crawl.add_argument("platforms", help="comma-separated, e.g. tiktok,xiaohongshu")
    crawl.add_argument("tags", nargs="+", help="tag names (with or without #), or id:<id>")
    _add_crawl_options(crawl)
    crawl.set_defaults(func=cmd_crawl)

    demo = sub.add_parser("demo", help="replay 10-20 January 2025 against the offline replica")
    demo.add_argument("--out", default="data")
    demo.add_argument("--ticks", type=int, default=21,
                      help="12-hour ticks from 10 Jan 2025 00:00 UTC (default 21: to the 20th)")
    demo.add_argument("--seed", type=int, default=2025)
    demo.set_defaults(func=cmd_demo)

    rep = sub.add_parser("replica", help="serve the offline replica of every platform")
    rep.add_argument("--port", type=int, default=0)
    rep.add_argument("--seed", type=int, default=2025)
    rep.set_defaults(func=cmd_replica)

    plats = sub.add_parser("platforms", help="what each platform gives and needs")
    plats.add_argument("--config", metavar="FILE", help="also list its [[source]] platforms")
    plats.set_defaults(func=cmd_platforms)
    for module in command_modules():
        importlib.import_module(module).register(sub)
    return root


# Further command groups: every module of this package with `register(subparsers)`, which adds its
# commands and sets `func`, found by walking the package as scrapy/cmdline.py walks its commands
# (keep heavy imports inside the command functions: this runs on every invocation).
NOT_COMMANDS = frozenset({"main", "errors", "__main__"})


def command_modules() -> list[str]:
    """The dotted names of the command modules under `crawler.cli`, in name order."""
    import pkgutil

    import crawler.cli as package

    return [f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
            if info.name not in NOT_COMMANDS]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return EXIT_USAGE if exc.code else EXIT_OK
    args.argv = argv
    try:
        # every subcommand's parser sets func (set_defaults) to its cmd_* handler
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except UsageError as exc:
        print(f"tagarchive: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EnvironmentProblem as exc:
        print(f"tagarchive: error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("tagarchive: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
