"""The config's `[[alert]]` tables, checked on load: one line per error, naming file, key, problem.

The condition is one string, `when`, whose form says the kind (docs/alerts.md):
`views >= 100_000_000` (threshold), `views +50% in 24h` (growth), `views surge` (surge),
`unhealthy`, `login lost`. Targets are Apprise URLs whose secrets are `${VAR}` references,
expanded from the environment only when a message is sent (crawler/services/alerts/send.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.services.alerts.model import (
    DEFAULT_HISTORY,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_SCORE,
    GROWTH,
    LOGIN_LOST,
    MIN_HISTORY,
    SURGE,
    THRESHOLD,
    UNHEALTHY,
    AlertRule,
)
from crawler.services.alerts.send import check_target
from crawler.services.watchvalues import ConfigError, format_duration, parse_duration

if TYPE_CHECKING:
    from crawler.services.watchmodel import Watch

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # as a watch name: it names log lines
COUNTERS = ("views", "posts", "discussions", "participants")
_COUNTER = "(" + "|".join(COUNTERS) + ")"
_NUMBER = r"(\d[\d_]*(?:\.\d+)?)"
_THRESHOLD = re.compile(rf"{_COUNTER}\s*(>=|>|<=|<)\s*{_NUMBER}")
_GROWTH = re.compile(rf"{_COUNTER}\s*([+-])\s*{_NUMBER}\s*%\s*in\s+(\S+)")
_SURGE = re.compile(rf"{_COUNTER}\s+surge")
_KEYS = ("name", "when", "targets", "watches", "platforms", "tags", "score", "history",
         "lookback", "enabled")
_CONDITIONS = ("write `views >= 100_000_000`, `views +50% in 24h`, `views surge`, `unhealthy` "
               f"or `login lost` (counters: {', '.join(COUNTERS)})")
MAX_WINDOW = 366 * 86400.0
MAX_LOOKBACK_DAYS = 36_600


def parse_alerts(raw: Any, path: Path, watches: Mapping[str, Watch]) -> tuple[AlertRule, ...]:
    """The `[[alert]]` tables of a config as rules; ConfigError names the file, key, problem."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise _error(path, "alert", "expected [[alert]] tables (an array of tables)")
    rules: list[AlertRule] = []
    for i, table in enumerate(raw):
        rule = _Table(path, f"alert[{i}]", table, watches).rule()
        if any(r.name == rule.name for r in rules):
            raise _error(path, f"alert[{i}].name", f"{rule.name!r} is already the name of an "
                                                   "alert (names keep episodes apart)")
        rules.append(rule)
    return tuple(rules)


def _error(path: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {problem}")


class _Table:
    """One `[[alert]]` table being checked."""

    def __init__(self, path: Path, where: str, raw: dict[str, Any],
                 watches: Mapping[str, Watch]) -> None:
        self.path, self.where, self.raw, self.watches = path, where, raw, watches

    def error(self, key: str, problem: str) -> ConfigError:
        return _error(self.path, f"{self.where}.{key}", problem)

    def rule(self) -> AlertRule:
        import difflib

        for key in self.raw:
            if key not in _KEYS:
                near = difflib.get_close_matches(key, _KEYS, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(_KEYS)}"
                raise self.error(key, f"unknown key ({hint})")
        for key in ("name", "when", "targets"):
            if key not in self.raw:
                raise self.error(key, "missing")
        name = self.string("name")
        if not NAME.fullmatch(name):
            raise self.error("name", "an alert name is 1-64 of A-Z a-z 0-9 _ - "
                                     "(it names log lines and rows)")
        condition = self.condition()
        kind = condition["kind"]
        followed = self.followed_watches()
        enabled = self.raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.error("enabled", "expected true or false")
        return AlertRule(
            name=name, targets=self.targets(), watches=followed,
            platforms=self.platforms(kind, followed), tags=self.tags(kind, followed),
            history=self.history(kind), lookback_days=self.lookback(condition.get("window")),
            enabled=enabled, **condition)

    def string(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def strings(self, key: str) -> list[str]:
        value = self.raw[key]
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v.strip() for v in value)):
            raise self.error(key, "expected a non-empty list of strings")
        return [v.strip() for v in value]

    def condition(self) -> dict[str, Any]:
        """`when` as the rule's kind and numbers; `score` belongs to a surge only."""
        text = " ".join(self.string("when").split())
        low = text.lower()
        found = _parse_when(low)
        if found is None:
            raise self.error("when", f"{text!r} is not a condition: {_CONDITIONS}")
        if found["kind"] == GROWTH:
            found["window"] = self.window(found["window"])
        if "score" in self.raw and found["kind"] != SURGE:
            raise self.error("score", "only a surge alert (`views surge`) has a score")
        if found["kind"] == SURGE:
            found["threshold"] = self.number("score", DEFAULT_SCORE, 0.1, 1000.0)
        if found["kind"] == GROWTH and found["threshold"] == 0:
            raise self.error("when", "a growth of 0% is no change: give a percentage")
        if found["kind"] == GROWTH and found["threshold"] < -1:
            raise self.error("when", "a counter cannot fall by more than 100%")
        return {**found, "when": text}

    def window(self, text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise self.error("when", str(exc)) from None
        if not 60 <= seconds <= MAX_WINDOW:
            raise self.error("when", f"the window {text!r} must be from 1m to "
                                     f"{format_duration(MAX_WINDOW)}")
        return seconds

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise self.error(key, f"{value!r} must be from {low:g} to {high:g}")
        return float(value)

    def history(self, kind: str) -> int:
        if "history" not in self.raw:
            return DEFAULT_HISTORY
        if kind != SURGE:
            raise self.error("history", "only a surge alert (`views surge`) has a history")
        value = self.raw["history"]
        if isinstance(value, bool) or not isinstance(value, int) \
                or not MIN_HISTORY <= value <= 1000:
            raise self.error("history", f"expected a whole number of intervals from "
                                        f"{MIN_HISTORY} to 1000, got {value!r}")
        return value

    def lookback(self, window: float | None) -> int:
        days = DEFAULT_LOOKBACK_DAYS
        if "lookback" in self.raw:
            try:
                seconds = parse_duration(self.raw["lookback"])
            except ValueError as exc:
                raise self.error("lookback", str(exc)) from None
            if not 86400 <= seconds <= MAX_LOOKBACK_DAYS * 86400.0:
                raise self.error("lookback", f"{self.raw['lookback']!r} must be from 1d to "
                                             f"{MAX_LOOKBACK_DAYS}d")
            days = math.ceil(seconds / 86400)
        if window is not None:  # the baseline lies one window back: read at least that far
            days = max(days, math.ceil(window / 86400) + 1)
        return days

    def targets(self) -> tuple[str, ...]:
        targets = self.strings("targets")
        for i, target in enumerate(targets):
            try:
                check_target(target)
            except ValueError as exc:
                raise self.error(f"targets[{i}]", str(exc)) from None
        return tuple(targets)

    def followed_watches(self) -> tuple[str, ...]:
        if "watches" not in self.raw:
            return ()
        names = self.strings("watches")
        for i, name in enumerate(names):
            if name not in self.watches:
                known = ", ".join(self.watches) or "none"
                raise self.error(f"watches[{i}]", f"no watch named {name!r} (known: {known})")
        return tuple(dict.fromkeys(names))

    def _scope(self, followed: tuple[str, ...]) -> list[Watch]:
        return [w for n, w in self.watches.items() if not followed or n in followed]

    def platforms(self, kind: str, followed: tuple[str, ...]) -> tuple[str, ...]:
        if "platforms" not in self.raw:
            return ()
        if kind == UNHEALTHY:
            raise self.error("platforms", "an `unhealthy` alert is about a whole watch: "
                                          "choose the watch with `watches`")
        from crawler.platforms import UnknownPlatformError, platform_class

        known = {p for w in self._scope(followed) for p in w.platforms}
        result = []
        for i, text in enumerate(self.strings("platforms")):
            try:
                name = platform_class(text).name
            except UnknownPlatformError as exc:
                raise self.error(f"platforms[{i}]", str(exc)) from None
            if name not in known:
                raise self.error(f"platforms[{i}]", f"{name!r} is in none of the watches "
                                                    "this alert follows")
            result.append(name)
        return tuple(dict.fromkeys(result))

    def tags(self, kind: str, followed: tuple[str, ...]) -> tuple[str, ...]:
        if "tags" not in self.raw:
            return ()
        if kind in (UNHEALTHY, LOGIN_LOST):
            raise self.error("tags", f"a `{self.raw['when']}` alert is not about one tag")
        from crawler.text.tags import InvalidTagError, normalize_tag, parse_tag_arg

        known = {k for w in self._scope(followed) for k in w.tag_keys}
        result = []
        for i, text in enumerate(self.strings("tags")):
            try:
                ref = parse_tag_arg(text)
            except InvalidTagError as exc:
                raise self.error(f"tags[{i}]", str(exc)) from None
            key = f"id:{ref.id}" if ref.name is None else normalize_tag(ref.name)
            if key not in known:
                raise self.error(f"tags[{i}]", f"{text!r} is in none of the watches this "
                                               "alert follows")
            result.append(key)
        return tuple(dict.fromkeys(result))


def _parse_when(text: str) -> dict[str, Any] | None:
    """The kind and numbers of a lower-cased, single-spaced `when`; None if it is none."""
    if text == "unhealthy":
        return {"kind": UNHEALTHY}
    if text in ("login lost", "login_lost"):
        return {"kind": LOGIN_LOST}
    if match := _THRESHOLD.fullmatch(text):
        return {"kind": THRESHOLD, "counter": match[1], "op": match[2],
                "threshold": float(match[3].replace("_", ""))}
    if match := _GROWTH.fullmatch(text):
        sign = 1 if match[2] == "+" else -1
        return {"kind": GROWTH, "counter": match[1],
                "threshold": sign * float(match[3].replace("_", "")) / 100,
                "window": match[4]}
    if match := _SURGE.fullmatch(text):
        return {"kind": SURGE, "counter": match[1]}
    return None
