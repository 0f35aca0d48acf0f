"""The config as data: watches and their cadence, politeness, sign-in, service settings.

Frozen dataclasses built by the loader (crawler/services/watchconfig.py), which checked every
value; `Config.crawl_args` turns a watch into the `tagarchive crawl` command line of one fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.extensions.health import HealthThresholds
from crawler.services.alerts.model import AlertRule
from crawler.services.watchvalues import (
    ConfigError,
    cron_trigger,
    format_duration,
    resolve_timezone,
)


@dataclass(frozen=True)
class Cadence:
    """When a watch fires: every N seconds, or a cron expression in a time zone; plus jitter."""

    every: float | None = None
    cron: str | None = None
    timezone: str = "local"
    jitter: float = 0.0

    def trigger(self, jitter: bool = True) -> Any:
        """A fresh APScheduler trigger (interval triggers start counting now)."""
        from apscheduler.triggers.interval import IntervalTrigger

        spread = self.jitter if jitter else 0
        if self.every is not None:
            return IntervalTrigger(seconds=self.every, jitter=spread or None, timezone=UTC)
        assert self.cron is not None
        return cron_trigger(self.cron, resolve_timezone(self.timezone), spread)

    def describe(self) -> str:
        if self.every is not None:
            text = f"every {format_duration(self.every)}"
        else:
            text = f"cron {self.cron}" + ("" if self.timezone == "local" else f" {self.timezone}")
        return text + (f" (+ up to {format_duration(self.jitter)})" if self.jitter else "")

    @property
    def fingerprint(self) -> str:
        """Kept with the stored job, so a restart can tell that the cadence changed."""
        return f"every={self.every!r} cron={self.cron!r} tz={self.timezone} jitter={self.jitter!r}"

    def interval(self, now: datetime | None = None) -> float:
        """Seconds between fires: the interval, or the longest gap among a cron's next fires."""
        if self.every is not None:
            return self.every
        trigger = self.trigger(jitter=False)
        now = now or datetime.now(UTC)
        gaps, previous = [], trigger.get_next_fire_time(None, now)
        for _ in range(8):
            if previous is None:
                break
            following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
            if following is None:
                break
            gaps.append((following - previous).total_seconds())
            previous = following
        return max(gaps, default=86400.0)


@dataclass(frozen=True)
class Politeness:
    """How gently a crawl asks: passed to `tagarchive crawl` as options and -s settings."""

    delay: float | None = None
    concurrency: int | None = None
    ignore_robots: bool = False
    browser: bool = True
    settings: tuple[tuple[str, str], ...] = ()

    def crawl_options(self) -> list[str]:
        args: list[str] = []
        if self.delay is not None:
            args += ["--delay", f"{self.delay:g}"]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        if self.ignore_robots:
            args.append("--ignore-robots")
        if not self.browser:
            args.append("--no-browser")
        for name, value in self.settings:
            args += ["-s", f"{name}={value}"]
        return args


@dataclass(frozen=True)
class Watch:
    """Tags on platforms, read on a cadence."""

    name: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    cadence: Cadence
    timeout: float
    politeness: Politeness
    health: HealthThresholds
    enabled: bool = True

    @property
    def tag_keys(self) -> list[str]:
        """The tags as runs.outcomes and snapshots name them (normalized, or id:<id>)."""
        from crawler.text.tags import normalize_tag, parse_tag_arg

        keys = []
        for raw in self.tags:
            ref = parse_tag_arg(raw)
            # a TagRef has exactly one of name and id
            key = f"id:{ref.id}" if ref.name is None else normalize_tag(ref.name)
            if key not in keys:
                keys.append(key)
        return keys


@dataclass(frozen=True)
class ServiceSettings:
    """How `tagarchive schedule run` behaves: late fires, stopping, parallel crawls."""

    misfire_grace: float = 600.0  # a fire later than this (after downtime) is recorded missed
    stop_grace: float = 60.0  # on SIGTERM, how long running crawls may take to finish
    kill_grace: float = 10.0  # after asking a crawl to stop, how long before it is killed
    max_parallel: int = 2  # crawls at once across watches (each may run a browser)
    crawl_command: tuple[str, ...] = ()  # default: this Python, -m crawler.cli
    compact: str = ""  # cron expression (UTC) for a daily `compact` of the output root; "" = off


@dataclass(frozen=True)
class Distributed:
    """`[distributed]`: fires queue jobs in Redis for `tagarchive worker`s (docs/distributed.md)."""

    redis: str  # redis://[:password@]host:6379/0
    queue: str = "tagarchive"  # prefix of the Redis keys


@dataclass(frozen=True)
class ArchiveSettings:
    """`[archive]`: who the raw WARC files are encrypted to, and how long they are kept
    (docs/privacy.md)."""

    recipients: tuple[str, ...] = ()  # age (age1…) or SSH public keys; none: not encrypted
    max_age_days: int | None = None  # `max_age`: the scheduler prunes older days after each run

    def environment(self) -> dict[str, str]:
        """What a crawl's environment needs so its ArchiveWriter encrypts to the recipients."""
        from storage.archivekeys import RECIPIENTS_ENV

        return {RECIPIENTS_ENV: ",".join(self.recipients)} if self.recipients else {}


@dataclass(frozen=True)
class SignIn:
    """References to sign-in, never the secrets: session files, and names of variables."""

    session_files: tuple[tuple[str, str], ...] = ()  # (platform, path)
    # (platform, variable the crawl reads, variable of the scheduler's environment to copy)
    variables: tuple[tuple[str, str, str], ...] = ()

    def environment(self, platforms: tuple[str, ...], environ: dict[str, str]) -> dict[str, str]:
        """Variables to add to a crawl's environment; ConfigError if a named one is unset."""
        env = {f"TAGARCHIVE_SESSION_{p.upper()}": path for p, path in self.session_files
               if p in platforms}
        for platform, target, source in self.variables:
            if platform not in platforms:
                continue
            if not environ.get(source):
                raise ConfigError(f"sign-in for {platform} names ${source}, which is not set "
                                  "in the scheduler's environment")
            env[target] = environ[source]
        return env


@dataclass(frozen=True)
class BrowserSettings:
    """`[browser]`: the user's own browser for every watch's crawls (docs/access.md)."""

    cdp: str | None = None  # a running Chrome's DevTools URL (--browser-cdp)
    allow_remote_cdp: bool = False  # a cdp URL on another machine (--allow-remote-cdp)
    profile: Path | None = None  # persistent profiles, one per platform (--browser-profile)

    def crawl_options(self) -> list[str]:
        args: list[str] = []
        if self.cdp:
            args += ["--browser-cdp", self.cdp]
            if self.allow_remote_cdp:
                args.append("--allow-remote-cdp")
        if self.profile is not None:
            args += ["--browser-profile", str(self.profile)]
        return args


@dataclass(frozen=True)
class Config:
    """A loaded, validated config file."""

    path: Path
    out: Path | str  # the text of an s3:// root (docs/s3.md)
    state_dir: Path
    replica: str | None = None
    base_urls: tuple[tuple[str, str], ...] = ()
    signin: SignIn = field(default_factory=SignIn)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    watches: dict[str, Watch] = field(default_factory=dict)
    distributed: Distributed | None = None
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    alerts: tuple[AlertRule, ...] = ()  # [[alert]] tables (docs/alerts.md)
    browser: BrowserSettings = field(default_factory=BrowserSettings)
    privacy: str = "pseudonymize"  # what the crawls keep about authors (docs/privacy.md)

    def watch(self, name: str) -> Watch:
        try:
            return self.watches[name]
        except KeyError:
            known = ", ".join(self.watches) or "none"
            raise ConfigError(f"{self.path}: no watch named {name!r} (known: {known})") from None

    def crawl_args(self, watch: Watch, settings: dict[str, str] | None = None) -> list[str]:
        """`tagarchive crawl` arguments for one watch, plus extra -s settings (run id, trigger)."""
        args = ["crawl", "--out", str(self.out), "--config", str(self.path), "--quiet",
                "--privacy", self.privacy]
        if self.replica:
            args += ["--replica", self.replica]
        for platform, url in self.base_urls:
            args += ["--base-url", f"{platform}={url}"]
        args += watch.politeness.crawl_options()
        args += self.browser.crawl_options()
        args += ["-s", f"TAGARCHIVE_WATCH={watch.name}"]
        if watch.timeout:
            # the crawl stops itself a little before the scheduler would end it, so it can
            # still write what it has and its own run record
            soft = max(1.0, watch.timeout - min(60.0, watch.timeout / 4))
            args += ["-s", f"CLOSESPIDER_TIMEOUT={soft:g}"]
        defaults = HealthThresholds().as_settings()
        extra = {k: v for k, v in watch.health.as_settings().items() if defaults[k] != v}
        extra.update(settings or {})
        args += [arg for name, value in extra.items() for arg in ("-s", f"{name}={value}")]
        # options first and `--` before the positionals: a tag may start with '-'
        return [*args, "--", ",".join(watch.platforms), *watch.tags]
