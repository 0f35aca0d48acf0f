"""Loading the TOML config of scheduled crawls: output root, watches, sign-in, politeness, health.

The config as data is in crawler/services/watchmodel.py, the syntax of durations, zones and cron
expressions in crawler/services/watchvalues.py; this module reads the file and checks each key.
Everything is checked when the file is loaded, and an error is one line naming the file, the key
and the problem (`tagarchive.toml: watches.refugees.every: '90x' is not a duration ...`), so a
typo fails `tagarchive config check` instead of a crawl at three in the morning. The `[[source]]`
tables of the same file belong to crawler/platforms/configured.py and are checked there.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import fields, replace
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfoNotFoundError

from crawler.extensions.health import HealthThresholds
from crawler.services.alerts.parse import parse_alerts
from crawler.services.watchmodel import (
    ArchiveSettings,
    BrowserSettings,
    Cadence,
    Config,
    Distributed,
    Politeness,
    ServiceSettings,
    SignIn,
    Watch,
)
from crawler.services.watchvalues import (
    ConfigError,
    cron_trigger,
    format_duration,
    parse_duration,
    resolve_timezone,
)

DEFAULT_FILE = "tagarchive.toml"
CONFIG_ENV = "TAGARCHIVE_CONFIG"
WATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # also a job id and a lock file name
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# -s settings end up in runs.argv: anything that looks like a secret belongs in the environment
SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "COOKIE", "KEY", "AUTH", "SESSION")
# set by the scheduler itself for every fire
RESERVED_SETTINGS = ("TAGARCHIVE_RUN_ID", "TAGARCHIVE_WATCH", "TAGARCHIVE_TRIGGER",
                     "CLOSESPIDER_TIMEOUT", "TAGARCHIVE_RUN_NOTE")
# The longest duration a key takes (every, jitter, timeout, the [service] graces): a year. A
# longer one is a typo, and `now + every` would pass year 9999 in the scheduler and in `status`.
MAX_DURATION = 366 * 86400.0
MAX_DELAY = 86400.0  # politeness.delay, seconds between two requests to one domain
# health.lookback_days: a century reaches the start of any archive, and `now - lookback` stays a
# date; the lookback a watch's cadence asks for is capped here too
MAX_LOOKBACK_DAYS = 36_600


def find_config(path: str | None, environ: dict[str, str] | None = None) -> Path:
    """The config to use: --config, else $TAGARCHIVE_CONFIG, else ./tagarchive.toml."""
    environ = dict(os.environ) if environ is None else environ
    chosen = path or environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen).expanduser()
    if Path(DEFAULT_FILE).is_file():
        return Path(DEFAULT_FILE)
    raise ConfigError(f"no config: pass --config FILE or set {CONFIG_ENV} "
                      f"(./{DEFAULT_FILE} does not exist)")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; ConfigError names the file, key and problem."""
    return _Loader(Path(path)).load()


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent  # relative paths are relative to the config file

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}")

    def load(self) -> Config:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: not valid TOML: {exc}") from None
        self.keys(data, "", ("out", "state_dir", "timezone", "replica", "base_urls", "signin",
                             "politeness", "health", "service", "watches", "source",
                             "distributed", "archive", "alert", "browser", "privacy"))
        if "source" in data:
            self.register_sources()
        timezone = self.timezone(data.get("timezone", "local"), "timezone")
        politeness = self.politeness(data.get("politeness", {}), "politeness", Politeness())
        health = self.health(data.get("health", {}), "health", HealthThresholds())
        service = self.service(data.get("service", {}))
        watches_raw = self.table(data.get("watches"), "watches")
        watches = {}
        for name, raw in watches_raw.items():
            watches[name] = self.watch(name, raw, timezone, politeness, health)
        return Config(
            path=self.path.resolve(),
            out=self.out_root(data.get("out", "data"), "out"),
            state_dir=self.directory(data.get("state_dir", ".tagarchive"), "state_dir"),
            replica=self.url(data["replica"], "replica") if "replica" in data else None,
            base_urls=self.base_urls(data.get("base_urls", {})),
            signin=self.signin(data.get("signin", {})),
            service=service,
            watches=watches,
            distributed=(self.distributed(data["distributed"]) if "distributed" in data
                         else None),
            archive=self.archive(data.get("archive", {})),
            alerts=parse_alerts(data.get("alert"), self.path, watches),
            browser=self.browser(data.get("browser", {})),
            privacy=self.privacy(data.get("privacy", "pseudonymize")),
        )

    def privacy(self, raw: Any) -> str:
        """`privacy = "pseudonymize" | "redact" | "keep"` (docs/privacy.md)."""
        from crawler.rules.privacy import MODES

        if raw not in MODES:
            raise self.error("privacy", f"expected one of {', '.join(MODES)}, got {raw!r}")
        return str(raw)

    # --- generic checks ---

    def keys(self, table: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(allowed)}"
                raise self.error(f"{where}.{key}" if where else key, f"unknown key ({hint})")

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table, got {_kind(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"expected a non-empty string, got {_kind(value)}")
        return value.strip()

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(where, f"expected true or false, got {_kind(value)}")
        return value

    def number(self, value: Any, where: str, low: float, high: float = math.inf,
               integer: bool = False) -> float:
        wanted = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            kind = "an integer" if integer else "a number"
            raise self.error(where, f"expected {kind}, got {_kind(value)}")
        if not low <= value <= high:
            upper = "" if high == math.inf else f" and at most {high:g}"
            raise self.error(where, f"{value!r} must be at least {low:g}{upper}")
        return value

    def duration(self, value: Any, where: str, minimum: float = 0.0,
                 maximum: float = MAX_DURATION) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(where, str(exc)) from None
        if seconds < minimum:
            raise self.error(where, f"{value!r} is shorter than {format_duration(minimum)}")
        if seconds > maximum:
            raise self.error(where, f"{value!r} is longer than {format_duration(maximum)}, "
                                    "the longest allowed")
        return seconds

    def out_root(self, value: Any, where: str) -> Path | str:
        """A directory (relative to the config file), or an ``s3://bucket/prefix`` URL kept as
        its text (docs/s3.md): as the root's back-end reads it."""
        from storage.backends import backend_for
        from storage.fs import BadRootError

        text = self.string(value, where)
        try:
            # an S3 root is a str, not a Path (which would fold '//'): every reader and writer
            # takes either
            root: Path | str = backend_for(text).absolute(text, self.base)
        except BadRootError as exc:
            raise self.error(where, str(exc)) from None
        return root

    def directory(self, value: Any, where: str) -> Path:
        return (self.base / Path(self.string(value, where)).expanduser()).resolve()

    def url(self, value: Any, where: str) -> str:
        text = self.string(value, where)
        parts = urlsplit(text)
        if "@" in parts.netloc:  # never echoed: runs.argv, logs and errors would carry it
            raise self.error(where, "must not carry credentials (user:password@)")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.error(where, f"{text!r} is not an http(s) URL")
        return text.rstrip("/")

    def timezone(self, value: Any, where: str) -> str:
        name = self.string(value, where)
        try:
            resolve_timezone(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error(where, f"unknown time zone {name!r} (use 'local', 'UTC' or an "
                                    "IANA name such as 'Europe/Paris')") from None
        return name

    def platform(self, value: Any, where: str) -> str:
        from crawler.platforms import UnknownPlatformError, platform_class

        try:
            return platform_class(self.string(value, where)).name
        except UnknownPlatformError as exc:
            raise self.error(where, str(exc)) from None

    def register_sources(self) -> None:
        from crawler.platforms import register_sources
        from crawler.platforms.configured_rules import SourceConfigError

        try:
            register_sources(str(self.path))
        except SourceConfigError as exc:  # its message already names the file and key
            raise ConfigError(str(exc)) from None

    # --- sections ---

    def politeness(self, raw: Any, where: str, base: Politeness) -> Politeness:
        raw = self.table(raw, where)
        self.keys(raw, where, ("delay", "concurrency", "ignore_robots", "browser", "settings"))
        values: dict[str, Any] = {}
        if "delay" in raw:
            values["delay"] = float(self.number(raw["delay"], f"{where}.delay", 0, MAX_DELAY))
        if "concurrency" in raw:
            values["concurrency"] = int(self.number(raw["concurrency"], f"{where}.concurrency",
                                                    1, 64, integer=True))
        for key in ("ignore_robots", "browser"):
            if key in raw:
                values[key] = self.boolean(raw[key], f"{where}.{key}")
        if "settings" in raw:
            settings = dict(base.settings)
            for name, value in self.table(raw["settings"], f"{where}.settings").items():
                settings[name] = self.setting(name, value, f"{where}.settings.{name}")
            values["settings"] = tuple(settings.items())
        return replace(base, **values)

    def setting(self, name: str, value: Any, where: str) -> str:
        if not SETTING_NAME.fullmatch(name):
            raise self.error(where, "setting names are upper-case, as in `scrapy crawl -s`")
        if any(word in name for word in SECRET_WORDS):
            raise self.error(where, "looks like a secret; settings are stored in runs.argv, so "
                                    "give secrets through [signin] or the environment")
        if name in RESERVED_SETTINGS:
            raise self.error(where, "is set by the scheduler itself (use the watch's timeout)")
        if isinstance(value, bool):
            return "True" if value else "False"
        if isinstance(value, int | float | str):
            return str(value)
        raise self.error(where, f"expected a string, number or boolean, got {_kind(value)}")

    def health(self, raw: Any, where: str, base: HealthThresholds) -> HealthThresholds:
        raw = self.table(raw, where)
        names = tuple(f.name for f in fields(HealthThresholds))
        self.keys(raw, where, names)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            at = f"{where}.{key}"
            if key == "enabled":
                values[key] = self.boolean(value, at)
            elif key in ("max_drop", "max_reject_rate", "max_error_rate"):
                values[key] = float(self.number(value, at, 0, 1))
            elif key == "stale_intervals":
                values[key] = int(self.number(value, at, 1, 1000, integer=True))
            elif key == "lookback_days":
                values[key] = int(self.number(value, at, 0, MAX_LOOKBACK_DAYS, integer=True))
            else:  # drop_min_previous
                values[key] = int(self.number(value, at, 0, integer=True))
        return replace(base, **values)

    def service(self, raw: Any) -> ServiceSettings:
        raw = self.table(raw, "service")
        names = tuple(f.name for f in fields(ServiceSettings))
        self.keys(raw, "service", names)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            at = f"service.{key}"
            if key == "max_parallel":
                values[key] = int(self.number(value, at, 1, 64, integer=True))
            elif key == "crawl_command":
                if (not isinstance(value, list) or not value
                        or not all(isinstance(v, str) and v for v in value)):
                    raise self.error(at, "expected a non-empty list of strings, e.g. "
                                         '["nice", "-n10", "/opt/venv/bin/python", "-m", '
                                         '"crawler.cli"]')
                values[key] = tuple(value)
            elif key == "compact":
                text = self.string(value, at)
                try:
                    cron_trigger(text, UTC)
                except ValueError as exc:
                    raise self.error(at, f"{exc} (e.g. \"30 3 * * *\" for 03:30 UTC)") from None
                values[key] = text
            else:
                values[key] = self.duration(value, at, 0.1 if key == "kill_grace" else 0)
        return ServiceSettings(**values)

    def distributed(self, raw: Any) -> Distributed:
        from crawler.logredact import display_url
        from crawler.spiders.jobqueue import check_redis_url

        raw = self.table(raw, "distributed")
        self.keys(raw, "distributed", ("redis", "queue"))
        if "redis" not in raw:
            raise self.error("distributed.redis", "missing: e.g. redis = \"redis://host:6379/0\"")
        url = self.string(raw["redis"], "distributed.redis")
        try:
            check_redis_url(url)
        except ValueError:
            raise self.error("distributed.redis",
                             f"{display_url(url)!r} is not a redis:// URL") from None
        queue = self.string(raw.get("queue", "tagarchive"), "distributed.queue")
        return Distributed(redis=url, queue=queue)

    def archive(self, raw: Any) -> ArchiveSettings:
        """`[archive]`: age recipients (public keys, checked here) and max_age in whole days."""
        from storage.archivekeys import ArchiveKeyError, parse_recipients

        raw = self.table(raw, "archive")
        self.keys(raw, "archive", ("recipients", "max_age"))
        recipients = raw.get("recipients", [])
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise self.error("archive.recipients", 'expected a list of public keys, e.g. '
                                                   '["age1…"]')
        try:
            parse_recipients(recipients)
        except ArchiveKeyError as exc:
            raise self.error("archive.recipients", str(exc)) from None
        max_age = None
        if "max_age" in raw:
            seconds = self.duration(raw["max_age"], "archive.max_age", minimum=86400,
                                    maximum=36_600 * 86400.0)
            if seconds % 86400:
                raise self.error("archive.max_age", f"{raw['max_age']!r}: retention is by "
                                                    "day, give whole days (e.g. \"90d\")")
            max_age = int(seconds // 86400)
        return ArchiveSettings(recipients=tuple(r.strip() for r in recipients),
                               max_age_days=max_age)

    def browser(self, raw: Any) -> BrowserSettings:
        """`[browser]`: cdp (a DevTools URL on loopback, unless allow_remote_cdp), or profile
        (a directory, relative to the config file); not both."""
        from crawler.downloader.profiles import check_cdp_url

        raw = self.table(raw, "browser")
        self.keys(raw, "browser", ("cdp", "allow_remote_cdp", "profile"))
        allow = self.boolean(raw.get("allow_remote_cdp", False), "browser.allow_remote_cdp")
        cdp = None
        if "cdp" in raw:
            try:
                cdp = check_cdp_url(self.string(raw["cdp"], "browser.cdp"), allow_remote=allow)
            except ValueError as exc:
                said = str(exc).replace("--browser-cdp ", "").replace(
                    "--allow-remote-cdp", "allow_remote_cdp = true")
                raise self.error("browser.cdp", said) from None
        profile = (self.directory(raw["profile"], "browser.profile") if "profile" in raw
                   else None)
        if cdp and profile:
            raise self.error("browser", "give cdp or profile, not both: an attached browser "
                                        "keeps its own profile")
        return BrowserSettings(cdp=cdp, allow_remote_cdp=allow, profile=profile)

    def base_urls(self, raw: Any) -> tuple[tuple[str, str], ...]:
        table = self.table(raw, "base_urls")
        return tuple((self.platform(name, f"base_urls.{name}"),
                      self.url(url, f"base_urls.{name}")) for name, url in table.items())

    def signin(self, raw: Any) -> SignIn:
        from crawler.downloader.signin import login_variables

        files, variables = [], []
        for name, value in self.table(raw, "signin").items():
            where = f"signin.{name}"
            platform = self.platform(name, where)
            if isinstance(value, str):
                value = {"session_file": value}
            entry = self.table(value, where)
            login = login_variables(platform)
            allowed = ("session_file", "handle_env", "password_env")
            self.keys(entry, where, allowed if login else allowed[:1])
            if "session_file" in entry:
                path = self.base / Path(self.string(entry["session_file"],
                                                    f"{where}.session_file")).expanduser()
                if not path.is_file():
                    raise self.error(f"{where}.session_file", f"{path} is not a file")
                files.append((platform, str(path)))
            pair = [entry.get("handle_env"), entry.get("password_env")]
            if any(pair):
                if not all(pair):
                    raise self.error(where, "give both handle_env and password_env")
                for target, key in zip(login or (),
                                       ("handle_env", "password_env"), strict=True):
                    source = self.string(entry[key], f"{where}.{key}")
                    if not SETTING_NAME.fullmatch(source):
                        raise self.error(f"{where}.{key}", "give the NAME of an environment "
                                                           "variable, not its value")
                    variables.append((platform, target, source))
        return SignIn(tuple(files), tuple(variables))

    def watch(self, name: str, raw: Any, timezone: str, politeness: Politeness,
              health: HealthThresholds) -> Watch:
        where = f"watches.{name}"
        if not WATCH_NAME.fullmatch(name):
            raise self.error(where, "a watch name is 1-64 of A-Z a-z 0-9 _ - "
                                    "(it names files and log lines)")
        raw = self.table(raw, where)
        self.keys(raw, where, ("platforms", "tags", "every", "cron", "timezone", "jitter",
                               "timeout", "politeness", "health", "enabled"))
        for key in ("platforms", "tags"):
            if key not in raw:
                raise self.error(f"{where}.{key}", "missing")
        platforms = self.watch_platforms(raw["platforms"], f"{where}.platforms")
        tags = self.watch_tags(raw["tags"], f"{where}.tags")
        cadence = self.cadence(raw, where, timezone)
        timeout = self.duration(raw.get("timeout", "30m"), f"{where}.timeout", minimum=1)
        watch_health = self.watch_health(raw, where, health, cadence)
        return Watch(
            name=name,
            platforms=tuple(platforms),
            tags=tuple(tags),
            cadence=cadence,
            timeout=timeout,
            politeness=self.politeness(raw.get("politeness", {}), f"{where}.politeness",
                                       politeness),
            health=watch_health,
            enabled=self.boolean(raw.get("enabled", True), f"{where}.enabled"),
        )

    def watch_platforms(self, platforms_raw: Any, where: str) -> list[str]:
        """A watch's platforms (a list, or one comma-separated string), each once, in order."""
        if isinstance(platforms_raw, str):
            platforms_raw = [p for p in platforms_raw.split(",") if p.strip()]
        if not isinstance(platforms_raw, list) or not platforms_raw:
            raise self.error(where, "expected a non-empty list of platforms")
        platforms: list[str] = []
        for i, value in enumerate(platforms_raw):
            platform = self.platform(value, f"{where}[{i}]")
            if platform not in platforms:
                platforms.append(platform)
        return platforms

    def watch_tags(self, tags: Any, where: str) -> list[Any]:
        """A watch's tags, each one a tag `tagarchive crawl` accepts."""
        if not isinstance(tags, list) or not tags:
            raise self.error(where, "expected a non-empty list of tags")
        from crawler.text.tags import InvalidTagError, parse_tag_arg

        for i, tag in enumerate(tags):
            try:
                parse_tag_arg(tag)
            except InvalidTagError as exc:
                raise self.error(f"{where}[{i}]", str(exc)) from None
        return tags

    def cadence(self, raw: dict[str, Any], where: str, timezone: str) -> Cadence:
        """A watch's `every` or `cron`, its time zone and its jitter."""
        if ("every" in raw) == ("cron" in raw):
            raise self.error(where, "give exactly one of every (e.g. \"1h\") or cron "
                                    "(e.g. \"0 * * * *\")")
        zone = self.timezone(raw["timezone"], f"{where}.timezone") if "timezone" in raw \
            else timezone
        jitter = self.duration(raw.get("jitter", 0), f"{where}.jitter")
        if "every" in raw:
            every = self.duration(raw["every"], f"{where}.every", minimum=1)
            if jitter >= every:
                raise self.error(f"{where}.jitter", "must be shorter than the interval")
            return Cadence(every=every, timezone=zone, jitter=jitter)
        expr = self.string(raw["cron"], f"{where}.cron")
        cadence = Cadence(cron=expr, timezone=zone, jitter=jitter)
        try:
            cadence.trigger()
        except ValueError as exc:
            raise self.error(f"{where}.cron", str(exc)) from None
        return cadence

    def watch_health(self, raw: dict[str, Any], where: str, health: HealthThresholds,
                     cadence: Cadence) -> HealthThresholds:
        """A watch's health thresholds, its lookback long enough for its cadence."""
        watch_health = self.health(raw.get("health", {}), f"{where}.health", health)
        if "lookback_days" not in self.table(raw.get("health"), f"{where}.health"):
            # the stale check needs stale_intervals runs of history, whatever the cadence
            needed = math.ceil(2 * watch_health.stale_intervals * cadence.interval() / 86400)
            watch_health = replace(watch_health, lookback_days=max(
                watch_health.lookback_days, min(needed, MAX_LOOKBACK_DAYS)))
        return watch_health


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
