"""Post timestamps as the platforms print them, parsed exactly into UTC datetimes.

Each platform has its own form: TikTok `createTime` and Bilibili `pub_ts` are Unix seconds,
Xiaohongshu `create_time` is Unix milliseconds, Mastodon and Bluesky print ISO 8601, m.weibo.cn
prints "Tue Feb 23 12:28:47 +0800 2021", and Weibo's search pages print China-time text relative
to the moment the server rendered them ("刚刚", "2分钟前", "今天 12:30", "昨天 12:30",
"02月23日 12:28", "2021年02月23日 12:28"). The unit is the caller's knowledge, never guessed from
a number's size: a value that is implausible for the unit it is said to be in is refused, so a
millisecond value handed to the seconds parser fails loudly instead of landing in the year 50000.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from crawler.text.counts import digit_string_value

CHINA = timezone(timedelta(hours=8))  # Weibo, Douyin, Bilibili and Xiaohongshu print CST
# Plausible post times: after 2004 (no platform here is older) and before 2100. A seconds value
# in this range is at most 4.1e9; the same instant in milliseconds is at least 1.07e12.
_EARLIEST = datetime(2004, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """A timestamp that cannot be read exactly in the form it is said to be in."""


def _integer(value: object, what: str) -> int:
    """An exact integer from an int or a digit string (JSON numbers above 2^53 come as text)."""
    if isinstance(value, bool):
        raise TimestampError(f"{what}: a boolean is not a timestamp ({_shown(value)})")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        number = digit_string_value(value.strip())  # ASCII digits: "²" or 5,000 digits are not
        if number is not None:
            return number
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TimestampError(f"{what}: not an integer timestamp ({_shown(value)})")


def _shown(value: object) -> str:
    """`value` for an error message, cut short: a page can put anything in a time field."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 60 else text[:60] + "…"


def utc_from_epoch(seconds: float) -> datetime | None:
    """`datetime.fromtimestamp(seconds, UTC)`, or None where no datetime exists (past 9999,
    before year 1): for best-effort post times read straight from a page."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _plausible(moment: datetime, what: str, raw: object) -> datetime:
    if not _EARLIEST <= moment < _LATEST:
        raise TimestampError(
            f"{what}: {_shown(raw)} is {moment.isoformat()}, not a plausible post time")
    return moment


def from_epoch_seconds(value: object) -> datetime:
    """Unix seconds (int or digit string) as UTC; refuses values that are milliseconds."""
    seconds = _integer(value, "epoch seconds")
    if seconds > 10**11:
        raise TimestampError(f"epoch seconds: {_shown(value)} looks like milliseconds")
    moment = utc_from_epoch(seconds)
    if moment is None:
        raise TimestampError(f"epoch seconds: {_shown(value)} is not a plausible post time")
    return _plausible(moment, "epoch seconds", value)


def from_epoch_millis(value: object) -> datetime:
    """Unix milliseconds as UTC, without float rounding; refuses values that are seconds."""
    millis = _integer(value, "epoch milliseconds")
    if millis < 10**11:
        raise TimestampError(f"epoch milliseconds: {_shown(value)} looks like seconds")
    whole, rest = divmod(millis, 1000)
    moment = utc_from_epoch(whole)
    if moment is None:
        raise TimestampError(f"epoch milliseconds: {_shown(value)} is not a plausible post time")
    return _plausible(moment + timedelta(milliseconds=rest), "epoch milliseconds", value)


def from_iso(text: object) -> datetime:
    """ISO 8601 with a zone ("2025-01-05T12:00:00.123Z", "+08:00") as UTC; naive is refused.

    Digits beyond microseconds (some servers print nanoseconds) are dropped, never rounded up,
    so a post never moves into the next second or day.
    """
    if not isinstance(text, str) or not text.strip():
        raise TimestampError(f"ISO time: not a string ({_shown(text)})")
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise TimestampError(f"ISO time: {_shown(raw)} does not parse") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimestampError(f"ISO time: {_shown(raw)} has no zone; it could be any local time")
    return _plausible(moment.astimezone(UTC), "ISO time", raw)


def from_weibo_absolute(text: object) -> datetime:
    """m.weibo.cn's "Tue Feb 23 12:28:47 +0800 2021" as UTC."""
    if not isinstance(text, str):
        raise TimestampError(f"Weibo time: not a string ({_shown(text)})")
    try:
        moment = datetime.strptime(text.strip(), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        problem = f"Weibo time: {_shown(text)} is not 'Tue Feb 23 12:28:47 +0800 2021'"
        raise TimestampError(problem) from None
    return _plausible(moment.astimezone(UTC), "Weibo time", text)


# ASCII digits, at most 9: int() of a 5,000-digit run raises, and no page means 10^9 hours ago
_AGO = re.compile(r"^(?P<n>[0-9]{1,9})\s*(?P<unit>秒|分钟|小时)前$")
_AGO_UNITS = {"秒": timedelta(seconds=1), "分钟": timedelta(minutes=1), "小时": timedelta(hours=1)}
_TODAY = re.compile(r"^(?P<day>今天|昨天)\s*(?P<h>\d{1,2}):(?P<m>\d{2})$")
_MONTH_DAY = re.compile(
    r"^(?:(?P<y>\d{4})年)?(?P<mo>\d{1,2})月(?P<d>\d{1,2})日\s*(?P<h>\d{1,2}):(?P<m>\d{2})$")


def from_weibo_display(text: object, reference: datetime) -> datetime:
    """A Weibo display time, read against `reference`: when the server rendered the page.

    Forms: "刚刚" (under a minute: the reference itself), "N秒前"/"N分钟前"/"N小时前" (the
    reference minus N units; the true time is up to one unit earlier), "今天 HH:MM", "昨天 HH:MM",
    "MM月DD日 HH:MM" (this year) and "YYYY年MM月DD日 HH:MM" — all China time, to the minute.
    Date-only forms ("02-23") are refused: a time of day would have to be invented.
    """
    if reference.tzinfo is None or reference.utcoffset() is None:
        raise ValueError(f"naive reference time {reference!r}; pass a timezone-aware datetime")
    if not isinstance(text, str):
        raise TimestampError(f"Weibo display time: not a string ({_shown(text)})")
    raw = " ".join(text.split())
    local = reference.astimezone(CHINA)
    if raw == "刚刚":
        return reference.astimezone(UTC)
    if match := _AGO.match(raw):
        try:
            moment = reference - int(match["n"]) * _AGO_UNITS[match["unit"]]
        except OverflowError:  # before year 1
            raise TimestampError(f"Weibo display time: {_shown(raw)} is not a real date") from None
        return _plausible(moment.astimezone(UTC), "Weibo display time", raw)
    if match := _TODAY.match(raw):
        day = local - timedelta(days=1 if match["day"] == "昨天" else 0)
        return _china_minute(day.year, day.month, day.day, match["h"], match["m"], raw)
    if match := _MONTH_DAY.match(raw):
        if match["y"]:
            return _china_minute(int(match["y"]), int(match["mo"]), int(match["d"]),
                                 match["h"], match["m"], raw)
        moment = _china_minute(local.year, int(match["mo"]), int(match["d"]), match["h"],
                               match["m"], raw)
        # a year-less date is this year's; one "after" the reference can only be last year's
        # (the reference fell just past New Year in China while the page was older)
        if moment > reference + timedelta(days=1):
            moment = _china_minute(local.year - 1, int(match["mo"]), int(match["d"]),
                                   match["h"], match["m"], raw)
        return moment
    raise TimestampError(f"Weibo display time: {_shown(raw)} is not a form with a time of day")


def _china_minute(year: int, month: int, day: int, hour: str, minute: str,
                  raw: str) -> datetime:
    try:
        local = datetime(year, month, day, int(hour), int(minute), tzinfo=CHINA)
    except ValueError:
        raise TimestampError(f"Weibo display time: {_shown(raw)} is not a real date") from None
    return _plausible(local.astimezone(UTC), "Weibo display time", raw)
