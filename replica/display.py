"""Counts as the platforms abbreviate them on their pages: "1.2亿", "281.2万", "1.1M"."""

from __future__ import annotations

__all__ = ["display_count", "display_parts"]


def display_parts(n: int, locale: str = "zh") -> tuple[str, str]:
    """Split a count into (number, unit) the way the platforms abbreviate it ("1.2", "亿")."""
    n = int(n)
    if n < 0:
        raise ValueError("counts are non-negative")
    units: tuple[tuple[int, str], ...]
    if locale.lower().startswith("zh"):
        units = ((10**8, "亿"), (10**4, "万"))
    elif locale.lower().startswith("en"):
        units = ((10**9, "B"), (10**6, "M"), (10**3, "K"))
    else:
        raise ValueError(f"unknown locale {locale!r}")
    for size, unit in units:
        if n >= size:
            # Integer tenths: truncation (never rounding) is what keeps 120_999_999 at 1.2亿.
            tenths = n * 10 // size
            whole, frac = divmod(tenths, 10)
            return (f"{whole}.{frac}" if frac else str(whole)), unit
    return str(n), ""


def display_count(n: int, locale: str = "zh") -> str:
    """Abbreviated count: "1.2亿", "281.2万", "9999" (zh) or "1.1M", "140.2K", "5.4B" (en)."""
    number, unit = display_parts(n, locale)
    return number + unit
