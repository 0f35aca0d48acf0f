"""The report's charts as inline SVG: line charts over time and bars per hour or day.

Every plotted point carries its value in data-* attributes, so a test (or a reader with the
inspector) can check a chart against the Parquet.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from crawler.report.labels import format_compact, format_time, platform_title
from crawler.report.model import DENSE_POINTS, HEIGHT, Chart

LEFT, RIGHT, TOP, BOTTOM = 64, 60, 16, 46
_TIME_STEPS = [timedelta(seconds=s) for s in (1, 2, 5, 10, 15, 30)] + [
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)] + [
    timedelta(hours=h) for h in (1, 2, 3, 6, 12)] + [
    timedelta(days=d) for d in (1, 2, 7, 14)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TICKS = 6


def as_datetime(x: datetime | date) -> datetime:
    """A point's x as an aware UTC datetime (a date is its midnight)."""
    if isinstance(x, datetime):
        return x.astimezone(UTC)
    return datetime.combine(x, time(), tzinfo=UTC)


def iso(x: datetime | date) -> str:
    """A point's x as ISO 8601 text, for data-* attributes."""
    return x.astimezone(UTC).isoformat() if isinstance(x, datetime) else x.isoformat()


def esc(text: object) -> str:
    """Text safe inside HTML and SVG, attribute values included."""
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class _TimeScale:
    start: datetime
    end: datetime
    left: float
    right: float

    def __call__(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.left + (moment - self.start).total_seconds() / span * (self.right - self.left)

    def ticks(self) -> list[tuple[datetime, str, str]]:
        """Tick times with a main label and, where the day changes, the date below it."""
        span = self.end - self.start
        step = next((s for s in _TIME_STEPS if span / s <= _MAX_TICKS), None)
        if step is None:
            moments = _month_ticks(self.start, self.end)
            return [(m, f"{m:%b}", f"{m:%Y}" if m.month == 1 or i == 0 else "")
                    for i, m in enumerate(moments)]
        offset = (self.start - _EPOCH) % step
        moment = self.start if not offset else self.start - offset + step
        ticks, last_day = [], None
        while moment <= self.end:
            if step >= timedelta(days=1):
                main, sub = f"{moment.day} {moment:%b}", (f"{moment:%Y}" if last_day is None
                                                          or moment.year != last_day.year else "")
            else:
                main = moment.strftime("%H:%M:%S" if step < timedelta(minutes=1) else "%H:%M")
                sub = f"{moment.day} {moment:%b %Y}" if moment.date() != last_day else ""
            ticks.append((moment, main, sub))
            last_day = moment.date() if step < timedelta(days=1) else moment
            moment += step
        return ticks


def _month_ticks(start: datetime, end: datetime) -> list[datetime]:
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    every = next(n for n in (1, 2, 3, 6, 12, 24, 60) if months / n <= _MAX_TICKS)
    year, month = start.year, start.month
    out: list[datetime] = []
    while True:
        moment = datetime(year, month, 1, tzinfo=UTC)
        if moment > end:
            return out
        if moment >= start and (month - 1) % every == 0:
            out.append(moment)
        month += 1
        if month > 12:
            year, month = year + 1, 1


def _time_domain(xs: Sequence[datetime], pad_fraction: float = 0.03,
                 extra: timedelta = timedelta(0)) -> tuple[datetime, datetime]:
    start, end = min(xs), max(xs) + extra
    if end == start:
        return start - timedelta(minutes=30), end + timedelta(minutes=30)
    pad = (end - start) * pad_fraction
    return start - pad, end + pad


@dataclass(frozen=True)
class _ValueScale:
    low: float
    high: float
    log: bool
    top: float
    bottom: float

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.low)
            fraction = (math.log10(value) - math.log10(self.low)) / (
                math.log10(self.high) - math.log10(self.low))
        else:
            fraction = (value - self.low) / (self.high - self.low)
        return self.bottom - fraction * (self.bottom - self.top)

    def ticks(self) -> list[float]:
        if self.log:
            decades = range(round(math.log10(self.low)), round(math.log10(self.high)) + 1)
            few = len(decades) <= 3
            return [m * 10**d for d in decades for m in ((1, 2, 5) if few else (1,))
                    if self.low <= m * 10**d <= self.high]
        step = _nice_step((self.high - self.low) / 5)
        first = math.ceil(self.low / step) * step
        count = int(round((self.high - first) / step)) + 1
        return [first + i * step for i in range(count)]


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    # int ** int is typed Any (a negative exponent gives a float): a power of ten either way
    magnitude: float = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _value_scale(values: Sequence[int], log: bool) -> _ValueScale:
    top, bottom = TOP, HEIGHT - BOTTOM
    if log:
        positive = [v for v in values if v > 0] or [1]
        low = 10 ** math.floor(math.log10(min(positive)))
        high = 10 ** math.ceil(math.log10(max(positive)))
        if high <= low:
            high = low * 10
        return _ValueScale(low, high, True, top, bottom)
    # Counters start from zero: a cut axis would make a 1% rise look like a wall.
    low, high = min(0, *values), max(0, *values)
    if high == low:
        high = low + 1
    step = _nice_step((high - low) / 5)
    return _ValueScale(math.floor(low / step) * step, math.ceil(high / step) * step, False,
                       top, bottom)


def _frame(scale: _ValueScale, times: _TimeScale) -> list[str]:
    right = _num(times.right)
    out = ['<g class="grid">']
    for value in scale.ticks():
        y = scale(value)
        out.append(f'<line x1="{LEFT}" x2="{right}" y1="{_num(y)}" y2="{_num(y)}"/>')
        out.append(f'<text class="ylabel" x="{LEFT - 8}" y="{_num(y + 4)}">'
                   f"{esc(format_compact(int(value)))}</text>")
    for moment, main, sub in times.ticks():
        x = times(moment)
        out.append(f'<line class="xtick" x1="{_num(x)}" x2="{_num(x)}" y1="{TOP}" '
                   f'y2="{HEIGHT - BOTTOM + 5}"/>')
        out.append(f'<text class="xlabel" x="{_num(x)}" y="{HEIGHT - BOTTOM + 18}">'
                   f"{esc(main)}</text>")
        if sub:
            out.append(f'<text class="xlabel sub" x="{_num(x)}" y="{HEIGHT - BOTTOM + 32}">'
                       f"{esc(sub)}</text>")
    out.append("</g>")
    base = _num(scale(scale.low) if scale.log else scale(0))
    out.append(f'<line class="axis" x1="{LEFT}" x2="{right}" y1="{base}" y2="{base}"/>')
    return out


def svg_line_chart(chart: Chart, colors: dict[str, str], uid: str) -> str:
    """A line chart of counters over time; hollow points are approximate values."""
    points = [p for s in chart.series for p in s.points]
    moments = [as_datetime(p.x) for p in points]
    start, end = _time_domain(moments)
    times = _TimeScale(start, end, LEFT, chart.width - RIGHT)
    scale = _value_scale([p.value for p in points], chart.scale == "log")
    out = _svg_open(chart, uid)
    out += _frame(scale, times)
    last_y = math.inf
    for threshold in sorted(chart.thresholds):
        y = scale(threshold)
        # On a linear axis 1M and 10M can sit a pixel apart under a 500M curve: draw only
        # lines that stand clear of the axis and of each other.
        if not scale.low < threshold <= scale.high or y > scale.bottom - 10 or last_y - y < 14:
            continue
        last_y = y
        out.append(f'<g class="threshold"><line x1="{LEFT}" x2="{_num(times.right)}" '
                   f'y1="{_num(y)}" y2="{_num(y)}"/><text x="{_num(times.right + 4)}" '
                   f'y="{_num(y + 4)}">{format_compact(threshold)}</text></g>')
    for series in chart.series:
        color = colors[series.platform]
        xy = [(times(as_datetime(p.x)), scale(p.value)) for p in series.points]
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(x)},{_num(y)}"
                        for i, (x, y) in enumerate(xy))
        out.append(f'<g class="series" data-platform="{esc(series.platform)}">')
        out.append(f'<path class="line" d="{path}" stroke="{color}"/>')
        radius = 3.5 if len(series.points) <= DENSE_POINTS else 0
        for point, (x, y) in zip(series.points, xy, strict=True):
            shown = f"{point.value:,} {chart.unit}"
            if point.approx:
                shown += f" (approximate{', shown as ' + point.note if point.note else ''})"
            floor = " floor" if chart.scale == "log" and point.value <= 0 else ""
            out.append(
                f'<circle class="pt{" approx" if point.approx else ""}{floor}" '
                f'cx="{_num(x)}" cy="{_num(y)}" r="{radius}" stroke="{color}" '
                f'fill="{"#fff" if point.approx else color}" '
                f'data-platform="{esc(series.platform)}" data-x="{esc(iso(point.x))}" '
                f'data-v="{point.value}" data-approx="{str(point.approx).lower()}">'
                f"<title>{esc(platform_title(series.platform))} · "
                f"{esc(format_time(as_datetime(point.x)))}: {esc(shown)}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def svg_bar_chart(chart: Chart, colors: dict[str, str], uid: str) -> str:
    """Bars per hour or day on a time axis, one bar per platform side by side."""
    bucket = chart.bucket or timedelta(days=1)
    points = [p for s in chart.series for p in s.points]
    moments = [as_datetime(p.x) for p in points]
    start, end = _time_domain(moments, extra=bucket)
    times = _TimeScale(start, end, LEFT, chart.width - RIGHT)
    scale = _value_scale([p.value for p in points], False)
    out = _svg_open(chart, uid)
    out.append("<defs>")
    for series in chart.series:
        color = colors[series.platform]
        out.append(f'<pattern id="hatch-{uid}-{esc(series.platform)}" width="6" height="6" '
                   f'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
                   f'<rect width="6" height="6" fill="#fff"/>'
                   f'<rect width="3" height="6" fill="{color}"/></pattern>')
    out.append("</defs>")
    out += _frame(scale, times)
    count = max(1, len(chart.series))
    slot = times(start + bucket) - times(start)
    width = max(1.5, slot * 0.8 / count)
    labels = sum(len(s.points) for s in chart.series) <= 16
    zero = scale(0)
    for index, series in enumerate(chart.series):
        color = colors[series.platform]
        out.append(f'<g class="series" data-platform="{esc(series.platform)}">')
        for point in series.points:
            x0 = times(as_datetime(point.x)) + slot * 0.1 + index * width
            y = scale(point.value)
            top, height = min(y, zero), abs(zero - y)
            fill = f"url(#hatch-{uid}-{esc(series.platform)})" if point.approx else color
            note = f" ({point.note})" if point.note else ""
            out.append(
                f'<rect class="bar{" approx" if point.approx else ""}" x="{_num(x0)}" '
                f'y="{_num(top)}" width="{_num(width)}" height="{_num(height)}" fill="{fill}" '
                f'stroke="{color}" data-platform="{esc(series.platform)}" '
                f'data-x="{esc(iso(point.x))}" data-v="{point.value}" '
                f'data-approx="{str(point.approx).lower()}">'
                f"<title>{esc(platform_title(series.platform))} · "
                f"{esc(_bucket_label(point.x, bucket))}: {point.value:+,} "
                f"{esc(chart.unit)}{esc(note)}</title></rect>")
            if labels:
                out.append(f'<text class="barlabel" x="{_num(x0 + width / 2)}" '
                           f'y="{_num(top - 4)}">{esc(format_compact(point.value))}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _bucket_label(x: datetime | date, bucket: timedelta) -> str:
    moment = as_datetime(x)
    if bucket >= timedelta(days=1):
        return f"{moment.day} {moment:%b %Y}"
    return f"{moment.day} {moment:%b %Y}, {moment:%H:%M}–{moment + bucket:%H:%M} UTC"


def _svg_open(chart: Chart, uid: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} {HEIGHT}" '
            f'role="img" aria-labelledby="title-{uid}" class="{chart.kind} {chart.scale}">'
            f'<title id="title-{uid}">{esc(chart.title)}</title>']
