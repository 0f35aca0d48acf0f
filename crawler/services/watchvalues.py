"""The config's value syntax: durations, time zones and cron expressions, and ConfigError.

Pure functions the loader (crawler/services/watchconfig.py), the cadences and the scheduler share.
"""

from __future__ import annotations

import math
import re
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
CRON_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# cron's numbering: 0 and 7 are Sunday. APScheduler 3 numbers from Monday = 0, and its
# CronTrigger.from_crontab passes the field through unchanged (ENGINEERING-NOTES 6), so numeric
# weekdays are translated to names here and from_crontab is never used.
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELD = re.compile(r"[0-9*,/-]+")
_CRON_MONTH = re.compile(r"[0-9A-Za-z*,/-]+")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and the problem."""


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "90s", "15m", "1h30m", "1d", "1w"; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer past float's range
            raise ValueError(f"{value!r} is not a duration") from None
    elif isinstance(value, str):
        text = value.replace(" ", "").lower()
        pos, seconds = 0, 0.0
        while pos < len(text):
            match = _DURATION_PART.match(text, pos)
            if match is None:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(f"{value!r} is not a duration (examples: 30s, 15m, 1h, 1h30m, 1d)")
    else:
        raise ValueError(f"{value!r} is not a duration")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """90 -> '1m30s', 3600 -> '1h'; the inverse of parse_duration for display."""
    if seconds < 1:
        return f"{seconds:g}s"
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def resolve_timezone(name: str) -> tzinfo:
    """'local' (the machine's zone, as cron uses), 'UTC' or an IANA name."""
    if name == "local":
        from tzlocal import get_localzone  # APScheduler 3 requires it, for the same purpose

        return get_localzone()
    return ZoneInfo(name)


def _cron_day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token[:3] in CRON_DAYS and len(token) == 3:
        return CRON_DAYS.index(token)
    raise ValueError(f"{token!r} is not a weekday (0-7, 0 and 7 = Sunday, or sun..sat)")


def cron_weekdays(field_text: str) -> str:
    """A cron day-of-week field as APScheduler day names: '0' -> 'sun', '1-5' -> 'mon,...,fri'."""
    if field_text == "*":
        return "*"
    days: set[int] = set()
    for part in field_text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, last = span.split("-", 1)
            low, high = _cron_day(first), _cron_day(last)
        else:
            low = _cron_day(span)
            high = 6 if step_text else low  # '1/2' means from Monday on, every second day
        if low > high:
            raise ValueError(f"range {span!r} runs backwards")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(CRON_DAYS[d] for d in sorted(days))


def cron_trigger(expr: str, timezone: tzinfo, jitter: float = 0) -> Any:
    """An APScheduler trigger that fires when cron would for this 5-field expression."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    text = CRON_MACROS.get(expr.strip().lower(), expr)
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"{expr!r} needs 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, day, month, weekday = parts
    for name, value, pattern in (("minute", minute, _CRON_FIELD), ("hour", hour, _CRON_FIELD),
                                 ("day-of-month", day, _CRON_FIELD),
                                 ("month", month, _CRON_MONTH)):
        if not pattern.fullmatch(value):
            raise ValueError(f"{name} field {value!r} is not cron syntax")
    names = cron_weekdays(weekday)
    common = {"minute": minute, "hour": hour, "month": month, "timezone": timezone}
    jitter_arg = jitter or None
    if not day.startswith("*") and not weekday.startswith("*"):
        # cron fires when either day field matches if both are restricted; APScheduler would
        # require both, so this is two triggers
        return OrTrigger([CronTrigger(day=day, **common), CronTrigger(day_of_week=names, **common)],
                         jitter=jitter_arg)
    return CronTrigger(day=day, day_of_week=names, jitter=jitter_arg, **common)

