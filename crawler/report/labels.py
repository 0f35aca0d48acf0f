"""Numbers, times and platforms as people read them: compact and 万/亿 counts, names, colours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.platforms import REGISTRY

# For platforms without their own colour (Platform.color): distinct from the adapters' colours
# and from each other, readable on white.
_PALETTE = ("#7c3aed", "#ca8a04", "#15803d", "#c2410c", "#1d4ed8", "#be185d")

def _floor_digits(magnitude: int, size: int) -> str:
    # Three significant digits, truncated (never rounded): 99,960,000 is "99.9M", not "100M",
    # so a rounded label can never claim a milestone the exact value has not reached.
    whole = magnitude // size
    if whole >= 100:
        return str(whole)
    decimals = 1 if whole >= 10 else 2
    scaled = magnitude * 10**decimals // size
    text = f"{scaled // 10**decimals}.{scaled % 10**decimals:0{decimals}d}"
    return text.rstrip("0").rstrip(".")


def format_compact(value: int) -> str:
    """A count as '1.34M', '95.9M', '506M', '2.04B' (three digits, truncated)."""
    sign, magnitude = ("-" if value < 0 else ""), abs(int(value))
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if magnitude >= size:
            return sign + _floor_digits(magnitude, size) + suffix
    return sign + str(magnitude)


def format_cjk(value: int) -> str:
    """A count as Chinese platforms show it: '1.2亿', '281.2万' (one decimal, truncated)."""
    sign, magnitude = ("-" if value < 0 else ""), abs(int(value))
    for size, unit in ((10**8, "亿"), (10**4, "万")):
        if magnitude >= size:
            tenths = magnitude * 10 // size
            text = f"{tenths // 10}.{tenths % 10}".removesuffix(".0")
            return f"{sign}{text}{unit}"
    return f"{sign}{magnitude:,}"


def format_exact(value: int | None) -> str:
    """A count with thousands separators, or an en dash when it is missing."""
    return "–" if value is None else f"{value:,}"


def format_time(moment: datetime, *, seconds: bool = True) -> str:
    """'23 Nov 2026, 19:55:47 UTC'."""
    moment = moment.astimezone(UTC)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{moment.day} {moment:%b %Y}, {moment.strftime(clock)} UTC"


def format_duration(span: timedelta) -> str:
    """'5 h 12 min', '8 s', '3 d 4 h'."""
    total = int(span.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


def platform_title(name: str) -> str:
    """The platform's own name ('Xiaohongshu (RedNote)'), or its slug for unknown ones."""
    cls = REGISTRY.get(name)
    return cls.title if cls is not None else name


def _own_color(name: str) -> str | None:
    cls = REGISTRY.get(name)
    return cls.color if cls is not None else None


def platform_color(name: str, order: Sequence[str]) -> str:
    """A stable colour per platform: the adapter's own if it has one, a palette for the rest."""
    own = _own_color(name)
    if own is not None:
        return own
    others = [p for p in order if _own_color(p) is None]
    return _PALETTE[others.index(name) % len(_PALETTE)] if name in others else _PALETTE[0]


# What each counter semantics (storage.schemas.SEMANTICS) looks like beside a value: the sign
# put before it, the word of its mark, and the mark's explanation.
SEMANTIC_MARKS: dict[str, tuple[str, str, str]] = {
    "exact": ("", "exact", "an exact integer from the platform"),
    "rounded": ("≈ ", "≈ rounded", "rounded by the platform for display (text such as 1.2亿, "
                "or an integer it rounds)"),
    "lower_bound": ("≥ ", "≥ at least", "a lower bound: a capped sample or a walk stopped by "
                    "a bound"),
    "capped": ("≥ ", "capped", "saturated at a platform limit; not a count"),
    "window": ("", "window", "a count over the window stored with the snapshot"),
}


def semantics_sign(semantics: str | None) -> str:
    """The sign shown before a value: "≈ " rounded, "≥ " lower bound or capped, else none."""
    return SEMANTIC_MARKS.get(semantics or "", ("", "", ""))[0]


def window_text(row: Mapping[str, Any]) -> str:
    """A snapshot's counting window as text ("24 h to 2025-01-15 00:00 UTC"), or ""."""
    start, end = row.get("window_start"), row.get("window_end")
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return ""
    return f"{format_duration(end - start)} to {format_time(end, seconds=False)}"
