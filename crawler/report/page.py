"""`tagarchive report`: one self-contained HTML page of a tag's growth, platform by platform.

The page has no script and loads nothing: charts are inline SVG drawn here, the stylesheet is
inlined, and a Content-Security-Policy forbids every fetch, so it opens offline and a tag name
taken from a page can never run as code. Every plotted point carries its value in data-*
attributes, so a test (or a reader with the inspector) can check a chart against the Parquet.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crawler.platforms import REGISTRY
from storage.analysis import MILESTONES, Quality, fold_tag
from storage.schemas import COUNTERS

if TYPE_CHECKING:
    from storage.analysis import Archive

WIDTH, WIDE, HEIGHT = 640, 1280, 300
# For platforms without their own colour (Platform.color): distinct from the adapters' colours
# and from each other, readable on white.
_PALETTE = ("#7c3aed", "#ca8a04", "#15803d", "#c2410c", "#1d4ed8", "#be185d")
COUNTER_WORDS = {"views": "views", "posts": "posts", "discussions": "discussions",
                 "participants": "participants"}
# Above this many points a series is drawn as a line only; the points stay, invisible, so
# their data attributes still describe the chart.
DENSE_POINTS = 240
# Daily bars over years are slivers: without --since/--until, a posts chart shows the window of
# this many days with the most posts (where the story is), and says what it leaves out.
POSTS_DAYS = 92


class NothingToReport(ValueError):
    """A requested tag or platform has no data under the root."""


@dataclass(frozen=True)
class ReportRequest:
    """What to report: tags (as stored), optional platforms and a UTC time window."""

    tags: Sequence[str]
    platforms: Sequence[str] | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Point:
    """One plotted value: a time (or a bucket's start), the value, and whether it is rounded."""

    x: datetime | date
    value: int
    approx: bool = False
    note: str = ""


@dataclass(frozen=True)
class Series:
    """The points of one platform in one chart."""

    platform: str
    points: list[Point]


@dataclass
class Chart:
    """One chart: a line chart of counters over time, or bars per hour or day."""

    id: str
    kind: Literal["line", "bars"]
    title: str
    unit: str
    source: str  # the dataset (or derivation) the points come from, for readers and tests
    series: list[Series]
    scale: Literal["linear", "log"] = "linear"
    bucket: timedelta | None = None  # width of a bar
    thresholds: Sequence[int] = ()
    note: str = ""
    width: int = WIDTH  # viewBox width: a chart shown full-width gets a wider box, same type size
    shown_from: date | None = None  # days outside shown_from..shown_until are left out
    shown_until: date | None = None


@dataclass
class TagReport:
    """Everything the page shows about one tag."""

    tag: str
    display: str
    platforms: list[str]
    snapshots: int
    first_seen: datetime
    last_seen: datetime
    counters: list[str]
    headline: str
    charts: list[Chart]
    latest: list[dict[str, Any]]
    first: dict[str, dict[str, Any]]
    counts: dict[str, int]  # snapshots per platform
    milestones: list[dict[str, Any]]
    quality: Quality
    approx_values: int
    total_values: int
    lede: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A whole report: one section per tag."""

    request: ReportRequest
    root: str
    generated_at: datetime
    tags: list[TagReport]


# --- numbers and times as people read them ----------------------------------------------------

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


# --- gathering the numbers ------------------------------------------------------------------

def build_report(archive: Archive, request: ReportRequest) -> Report:
    """Read everything the page shows from the archive (raises NothingToReport)."""
    known = archive.con.execute(
        "select list(distinct platform order by platform) from snapshots").fetchall()[0][0] or []
    for platform in request.platforms or ():
        if platform not in known:
            raise NothingToReport(
                f"no snapshots from platform {platform!r} under {archive.root} "
                f"(platforms with data: {', '.join(known) or 'none'})")
    tags = [build_tag(archive, fold_tag(tag), request) for tag in request.tags]
    return Report(request=request, root=archive.root, generated_at=datetime.now(UTC), tags=tags)


def _rows(relation: Any) -> list[dict[str, Any]]:
    return relation.to_arrow_table().to_pylist()


def build_tag(archive: Archive, tag: str, request: ReportRequest) -> TagReport:
    """The numbers, charts and notes of one tag."""
    window = {"platforms": request.platforms, "since": request.since, "until": request.until}
    rows = _rows(archive.series(tag, **window))
    if not rows:
        sample = [r[0] for r in archive.con.execute(
            "select tag from snapshots group by tag order by count(*) desc limit 8").fetchall()]
        period = " in that period" if request.since or request.until else ""
        raise NothingToReport(
            f"no snapshots of tag {tag!r}{period} under {archive.root}"
            + (f" (tags with data: {', '.join(sample)})" if sample else ""))
    platforms = sorted({r["platform"] for r in rows})
    counters = [c for c in COUNTERS if any(r[c] is not None for r in rows)]
    headline = "views" if "views" in counters else counters[0]
    display = next((r["tag_display"] for r in reversed(rows) if r["tag_display"]), tag)

    charts: list[Chart] = []
    for counter in counters:
        series = [
            Series(p, [Point(r["observed_at"], r[counter], bool(r[f"{counter}_approx"]),
                             r[f"{counter}_text"] or "")
                       for r in rows if r["platform"] == p and r[counter] is not None])
            for p in platforms
        ]
        series = [s for s in series if s.points]
        thresholds = MILESTONES if counter == headline else ()
        for scale in ("linear", "log"):
            charts.append(Chart(
                id=f"{counter}-{scale}", kind="line", scale=scale, unit=counter,
                title=f"{counter.capitalize()} over time, {scale} scale", source="snapshots",
                series=series, thresholds=thresholds))
    for every, width in (("hour", timedelta(hours=1)), ("day", timedelta(days=1))):
        growth = _rows(archive.growth(tag, every=every, counter=headline, **window))
        series = [
            Series(p, [Point(g["bucket"], g["growth"], note=_spanned(g, every))
                       for g in growth if g["platform"] == p])
            for p in platforms
        ]
        charts.append(Chart(
            id=f"growth-{every}", kind="bars", unit=headline, bucket=width,
            title=f"New {headline} per {every}", source=f"growth-{every}",
            series=[s for s in series if s.points]))

    # Daily posts from the platforms' own history (activity) where a platform has it; for the
    # others, the posts the crawls happened to see, by day published: a lower bound only.
    activity = _rows(archive.activity(tag, **window))
    with_history = {a["platform"] for a in activity}
    sampled = _rows(archive.sampled_posts_per_day(tag, platforms=request.platforms))
    for chart_id, source, title, points in (
        ("posts-per-day", "activity", "Posts per day, as the platforms report them",
         {p: [Point(a["day"], a["posts"], a["coverage"] == "lower_bound", a["coverage"])
              for a in activity if a["platform"] == p and a["posts"] is not None]
          for p in platforms}),
        ("sampled-posts", "posts", "Posts seen in our samples, by day published",
         {p: [Point(s["day"], s["posts"], note="posts seen, a lower bound")
              for s in sampled if s["platform"] == p]
          for p in platforms if p not in with_history}),
    ):
        series = [Series(p, found) for p, found in points.items() if found]
        if not series:
            continue
        cut = request.since is None and request.until is None
        shown_from, shown_until, note = _busiest_days(series, cut)
        if shown_from is not None and shown_until is not None:
            series = [Series(s.platform, kept) for s in series
                      if (kept := [p for p in s.points if shown_from <= p.x <= shown_until])]
        charts.append(Chart(
            id=chart_id, kind="bars", unit="posts", bucket=timedelta(days=1), title=title,
            source=source, series=series, width=WIDE, shown_from=shown_from,
            shown_until=shown_until, note=note))

    latest = _rows(archive.latest(tag, **window))
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["platform"], r)
    milestones = _rows(archive.milestones(tag, counter=headline, **window))
    values = [(r[c], r[f"{c}_approx"]) for r in rows for c in counters if r[c] is not None]
    report = TagReport(
        tag=tag, display=display, platforms=platforms, snapshots=len(rows),
        first_seen=min(r["observed_at"] for r in rows),
        last_seen=max(r["observed_at"] for r in rows), counters=counters, headline=headline,
        charts=charts, latest=latest, first=first, milestones=milestones,
        counts={p: sum(1 for r in rows if r["platform"] == p) for p in platforms},
        quality=archive.quality(tag, **window),
        approx_values=sum(1 for _v, approx in values if approx), total_values=len(values))
    report.lede = lede(report)
    return report


def _busiest_days(series: list[Series], cut: bool) -> tuple[date | None, date | None, str]:
    """The POSTS_DAYS-day window with the most posts, when the days span more than that."""
    totals: dict[date, int] = {}
    for s in series:
        for p in s.points:
            assert isinstance(p.x, date)
            totals[p.x] = totals.get(p.x, 0) + p.value
    days = sorted(totals)
    if not cut or not days or (days[-1] - days[0]).days < POSTS_DAYS:
        return None, None, ""
    span = timedelta(days=POSTS_DAYS - 1)
    best, best_start, end, running = -1, days[0], 0, 0
    for start in days:
        while end < len(days) and days[end] <= start + span:
            running += totals[days[end]]
            end += 1
        if running >= best:  # ties go to the later window: the most recent story
            best, best_start = running, start
        running -= totals[start]
    shown_until = best_start + span
    outside = [d for d in days if not best_start <= d <= shown_until]
    note = (f"Showing the {POSTS_DAYS} days with the most posts, {_day(best_start)} to "
            f"{_day(shown_until)}. {sum(totals[d] for d in outside):,} other posts, from "
            f"{_day(outside[0])} to {_day(outside[-1])}, are not drawn: use --since and --until "
            "to choose the days.")
    return best_start, shown_until, note


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _spanned(row: dict[str, Any], every: str) -> str:
    spanned = row["buckets_spanned"]
    return f"covers {spanned} {every}s: none observed in between" if spanned > 1 else ""


def _between(after: datetime, before: datetime) -> str:
    after, before = after.astimezone(UTC), before.astimezone(UTC)
    if after.date() == before.date():
        return f"between {after:%H:%M:%S} and {before:%H:%M:%S} UTC on {before.day} {before:%b %Y}"
    return f"between {format_time(after)} and {format_time(before)}"


def main_counter(report: TagReport, platform: str) -> str | None:
    """The counter to lead with on a platform: the tag's headline if it shows it, else its own
    first (Mastodon and YouTube show posts, not views)."""
    latest = next((r for r in report.latest if r["platform"] == platform), {})
    return next((c for c in (report.headline, *report.counters)
                 if latest.get(c) is not None), None)


def lede(report: TagReport) -> list[str]:
    """Plain sentences a reader can quote: per platform, the biggest milestone and the latest."""
    sentences = []
    word = COUNTER_WORDS[report.headline]
    by_platform: dict[str, list[dict[str, Any]]] = {}
    for m in report.milestones:
        by_platform.setdefault(m["platform"], []).append(m)
    latest = {r["platform"]: r for r in report.latest}
    order = sorted(report.platforms, key=lambda p: -(latest.get(p, {}).get(report.headline) or 0))
    for platform in order:
        name, tag = platform_title(platform), f"#{report.display}"
        last = latest.get(platform, {}).get(report.headline)
        first = report.first[platform][report.headline]
        crossed = [m for m in by_platform.get(platform, []) if not m["before_first"]]
        if crossed:
            m = max(crossed, key=lambda m: m["threshold"])
            opening = (f"On {name}, {tag} passed {format_compact(m['threshold'])} {word} "
                       f"{_between(m['previous_at'], m['crossed_at'])} "
                       f"({format_compact(m['previous_value'])} → {format_compact(m['value'])})")
        elif by_platform.get(platform):
            m = max(by_platform[platform], key=lambda m: m["threshold"])
            opening = (f"On {name}, {tag} was already above {format_compact(m['threshold'])} "
                       f"{word} when first observed")
        else:
            # no milestone: say where the platform stands, in its own main counter
            counter = main_counter(report, platform)
            if counter is None:
                continue
            last = latest[platform][counter]
            sentences.append(
                f"On {name}, {tag} stood at {format_compact(last)} {COUNTER_WORDS[counter]} at "
                f"the last snapshot{_change(report.first[platform][counter], last)}.")
            continue
        if last is None:
            sentences.append(opening + ".")
        else:
            sentences.append(f"{opening}; the last snapshot shows {format_compact(last)}"
                             f"{_change(first, last)}.")
    return sentences


def _change(first: int | None, last: int) -> str:
    if not first or first == last:
        return ""
    return f", {'up' if last > first else 'down'} {abs(last - first) / first:.1%} since the first"


# --- SVG charts ---------------------------------------------------------------------------------

LEFT, RIGHT, TOP, BOTTOM = 64, 60, 16, 46
_TIME_STEPS = [timedelta(seconds=s) for s in (1, 2, 5, 10, 15, 30)] + [
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)] + [
    timedelta(hours=h) for h in (1, 2, 3, 6, 12)] + [
    timedelta(days=d) for d in (1, 2, 7, 14)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TICKS = 6


def _as_datetime(x: datetime | date) -> datetime:
    if isinstance(x, datetime):
        return x.astimezone(UTC)
    return datetime.combine(x, time(), tzinfo=UTC)


def _iso(x: datetime | date) -> str:
    return x.astimezone(UTC).isoformat() if isinstance(x, datetime) else x.isoformat()


def _esc(text: object) -> str:
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
    out = []
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
    magnitude = 10 ** math.floor(math.log10(raw))
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
                   f"{_esc(format_compact(int(value)))}</text>")
    for moment, main, sub in times.ticks():
        x = times(moment)
        out.append(f'<line class="xtick" x1="{_num(x)}" x2="{_num(x)}" y1="{TOP}" '
                   f'y2="{HEIGHT - BOTTOM + 5}"/>')
        out.append(f'<text class="xlabel" x="{_num(x)}" y="{HEIGHT - BOTTOM + 18}">'
                   f"{_esc(main)}</text>")
        if sub:
            out.append(f'<text class="xlabel sub" x="{_num(x)}" y="{HEIGHT - BOTTOM + 32}">'
                       f"{_esc(sub)}</text>")
    out.append("</g>")
    base = _num(scale(scale.low) if scale.log else scale(0))
    out.append(f'<line class="axis" x1="{LEFT}" x2="{right}" y1="{base}" y2="{base}"/>')
    return out


def svg_line_chart(chart: Chart, colors: dict[str, str], uid: str) -> str:
    """A line chart of counters over time; hollow points are approximate values."""
    points = [p for s in chart.series for p in s.points]
    moments = [_as_datetime(p.x) for p in points]
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
        xy = [(times(_as_datetime(p.x)), scale(p.value)) for p in series.points]
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(x)},{_num(y)}"
                        for i, (x, y) in enumerate(xy))
        out.append(f'<g class="series" data-platform="{_esc(series.platform)}">')
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
                f'data-platform="{_esc(series.platform)}" data-x="{_esc(_iso(point.x))}" '
                f'data-v="{point.value}" data-approx="{str(point.approx).lower()}">'
                f"<title>{_esc(platform_title(series.platform))} · "
                f"{_esc(format_time(_as_datetime(point.x)))}: {_esc(shown)}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def svg_bar_chart(chart: Chart, colors: dict[str, str], uid: str) -> str:
    """Bars per hour or day on a time axis, one bar per platform side by side."""
    bucket = chart.bucket or timedelta(days=1)
    points = [p for s in chart.series for p in s.points]
    moments = [_as_datetime(p.x) for p in points]
    start, end = _time_domain(moments, extra=bucket)
    times = _TimeScale(start, end, LEFT, chart.width - RIGHT)
    scale = _value_scale([p.value for p in points], False)
    out = _svg_open(chart, uid)
    out.append("<defs>")
    for series in chart.series:
        color = colors[series.platform]
        out.append(f'<pattern id="hatch-{uid}-{_esc(series.platform)}" width="6" height="6" '
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
        out.append(f'<g class="series" data-platform="{_esc(series.platform)}">')
        for point in series.points:
            x0 = times(_as_datetime(point.x)) + slot * 0.1 + index * width
            y = scale(point.value)
            top, height = min(y, zero), abs(zero - y)
            fill = f"url(#hatch-{uid}-{_esc(series.platform)})" if point.approx else color
            note = f" ({point.note})" if point.note else ""
            out.append(
                f'<rect class="bar{" approx" if point.approx else ""}" x="{_num(x0)}" '
                f'y="{_num(top)}" width="{_num(width)}" height="{_num(height)}" fill="{fill}" '
                f'stroke="{color}" data-platform="{_esc(series.platform)}" '
                f'data-x="{_esc(_iso(point.x))}" data-v="{point.value}" '
                f'data-approx="{str(point.approx).lower()}">'
                f"<title>{_esc(platform_title(series.platform))} · "
                f"{_esc(_bucket_label(point.x, bucket))}: {point.value:+,} "
                f"{_esc(chart.unit)}{_esc(note)}</title></rect>")
            if labels:
                out.append(f'<text class="barlabel" x="{_num(x0 + width / 2)}" '
                           f'y="{_num(top - 4)}">{_esc(format_compact(point.value))}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _bucket_label(x: datetime | date, bucket: timedelta) -> str:
    moment = _as_datetime(x)
    if bucket >= timedelta(days=1):
        return f"{moment.day} {moment:%b %Y}"
    return f"{moment.day} {moment:%b %Y}, {moment:%H:%M}–{moment + bucket:%H:%M} UTC"


def _svg_open(chart: Chart, uid: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} {HEIGHT}" '
            f'role="img" aria-labelledby="title-{uid}" class="{chart.kind} {chart.scale}">'
            f'<title id="title-{uid}">{_esc(chart.title)}</title>']


# --- the page -------------------------------------------------------------------------------

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")


def _stylesheet() -> str:
    return resources.files("crawler.report").joinpath("assets/report.css").read_text("utf-8")


def render_html(report: Report) -> str:
    """The whole page as one string."""
    names = [f"#{t.display}" for t in report.tags]
    title = f"How {', '.join(names)} grew"
    order = sorted({p for t in report.tags for p in t.platforms})
    colors = {p: platform_color(p, order) for p in order}
    period = _period(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="tagarchive">',
        f"<title>{_esc(title)} · tagarchive</title>",
        f"<style>{_stylesheet()}</style></head><body>",
        '<header class="masthead"><p class="kicker">tagarchive · hashtag growth report</p>',
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{_esc(period)} · all times UTC · generated '
        f"{_esc(format_time(report.generated_at, seconds=False))}</p>",
    ]
    if len(report.tags) > 1:
        parts.append('<nav class="toc"><ol>' + "".join(
            f'<li><a href="#tag-{i}">#{_esc(t.display)}</a></li>'
            for i, t in enumerate(report.tags, 1)) + "</ol></nav>")
    parts.append("</header><main>")
    uid = 0
    for index, tag in enumerate(report.tags, 1):
        section, uid = _tag_section(tag, index, colors, uid)
        parts.append(section)
    parts.append(_footer(report))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _period(report: Report) -> str:
    request = report.request
    first = min(t.first_seen for t in report.tags)
    last = max(t.last_seen for t in report.tags)
    text = (f"Snapshots from {format_time(first, seconds=False)} "
            f"to {format_time(last, seconds=False)}")
    if request.platforms:
        text += " · platforms: " + ", ".join(platform_title(p) for p in request.platforms)
    return text


def _legend(platforms: Iterable[str], colors: dict[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colors[p]}"></span>'
        f"{_esc(platform_title(p))}</li>" for p in platforms)
    return (f'<ul class="legend">{items}<li><span class="swatch hollow"></span>'
            "approximate (parsed from rounded display text)</li></ul>")


def _tag_section(tag: TagReport, index: int, colors: dict[str, str], uid: int) -> tuple[str, int]:
    out = [f'<section class="tag" id="tag-{index}" data-tag="{_esc(tag.tag)}">',
           f'<h2><span class="hash">#</span>{_esc(tag.display)}</h2>']
    if tag.lede:
        out.append('<div class="lede">' + "".join(f"<p>{_esc(s)}</p>" for s in tag.lede)
                   + "</div>")
    out.append(_cards(tag, colors))
    out.append(_legend(tag.platforms, colors))

    def figure(chart: Chart) -> str:
        nonlocal uid
        uid += 1
        svg = (svg_line_chart if chart.kind == "line" else svg_bar_chart)(
            chart, colors, f"c{uid}")
        empty = "" if any(s.points for s in chart.series) else \
            '<p class="empty">No observations in this period.</p>'
        note = f'<p class="note">{_esc(chart.note)}</p>' if chart.note else ""
        shown_from = (f' data-shown-from="{chart.shown_from.isoformat()}" '
                      f'data-shown-until="{chart.shown_until.isoformat()}"'
                      if chart.shown_from and chart.shown_until else "")
        return (f'<figure class="chart" data-chart="{_esc(chart.id)}" '
                f'data-tag="{_esc(tag.tag)}" data-source="{_esc(chart.source)}" '
                f'data-unit="{_esc(chart.unit)}" data-scale="{chart.scale}"{shown_from}>'
                f"<figcaption>{_esc(chart.title)}</figcaption>{svg}{empty}{note}</figure>")

    for counter in tag.counters:
        out.append(f"<h3>{_esc(counter.capitalize())} over time</h3>")
        if counter == tag.counters[0]:
            out.append('<p class="note">Left: linear scale, the size of the rise. Right: '
                       "logarithmic scale, where equal steps mean equal multiples, so platforms "
                       "of very different size can be compared.</p>")
        pair = [c for c in tag.charts if c.id in (f"{counter}-linear", f"{counter}-log")]
        out.append('<div class="pair">' + "".join(figure(c) for c in pair) + "</div>")

    out.append(f"<h3>Growth in {_esc(tag.headline)}</h3>")
    out.append('<p class="note">Each bar is the rise from the last value of the previous hour '
               "(or day) with a snapshot to the last value of this one; the first bar counts "
               "from the first snapshot.</p>")
    out.append('<div class="pair">' + "".join(
        figure(c) for c in tag.charts if c.id.startswith("growth-")) + "</div>")

    out.append("<h3>Posts per day</h3>")
    notes = {
        "posts-per-day": "From the platforms' own daily history or backfills (<code>activity"
        "</code>). Hatched bars are lower bounds: the day was only partly covered.",
        "sampled-posts": "For platforms without daily history: distinct posts our crawls saw, "
        "by the day they were published. A sample, so only a lower bound.",
    }
    posts = [c for c in tag.charts if c.id in notes]
    for chart in posts:
        out.append(f'<p class="note">{notes[chart.id]}</p>')
        out.append(f'<div class="single">{figure(chart)}</div>')
    if not posts:
        out.append('<p class="note">No daily history (<code>activity</code>) and no sampled '
                   "posts for this tag.</p>")

    out.append(_milestones_table(tag))
    out.append(_latest_table(tag))
    out.append(_quality(tag))
    out.append("</section>")
    return "\n".join(out), uid


def _value_cell(row: dict[str, Any], counter: str) -> str:
    value = row.get(counter)
    if value is None:
        return '<td class="num missing">–</td>'
    approx = bool(row.get(f"{counter}_approx"))
    text = row.get(f"{counter}_text")
    mark = (f'<span class="mark approx" title="parsed from rounded display text">≈ approx'
            f"{' · “' + _esc(text) + '”' if text else ''}</span>" if approx
            else '<span class="mark exact" title="an exact integer from the platform">exact</span>')
    return (f'<td class="num"><span class="exact-value">{"≈ " if approx else ""}{value:,}</span>'
            f'<span class="human">{_esc(format_compact(value))} · {_esc(format_cjk(value))}'
            f"</span>{mark}</td>")


def _cards(tag: TagReport, colors: dict[str, str]) -> str:
    cards = []
    leading = {row["platform"]: main_counter(tag, row["platform"]) for row in tag.latest}
    # platforms showing the headline counter first, biggest first; the others after them
    order = sorted(tag.latest, key=lambda r: (leading[r["platform"]] != tag.headline,
                                              -(r.get(leading[r["platform"]] or "") or 0)))
    for row in order:
        platform, counter = row["platform"], leading[row["platform"]]
        if counter is None:
            continue
        value, first = row[counter], tag.first[platform].get(counter)
        change = ""
        if first:
            change = (f'<p class="change">{(value - first) / first:+.1%} since '
                      f"{_esc(format_time(tag.first[platform]['observed_at']))}</p>")
        approx = "≈ " if row.get(f"{counter}_approx") else ""
        cards.append(
            f'<div class="card" style="border-top-color:{colors[platform]}">'
            f'<p class="platform">{_esc(platform_title(platform))}</p>'
            f'<p class="big">{_esc(approx + format_compact(value))} '
            f'<span class="unit">{_esc(counter)}</span></p>'
            f'<p class="small">{_esc(format_exact(value))} · {_esc(format_cjk(value))}</p>'
            f"{change}</div>")
    return '<div class="cards">' + "".join(cards) + "</div>"


def _milestones_table(tag: TagReport) -> str:
    word = COUNTER_WORDS[tag.headline]
    # only the platforms that show this counter at all (Mastodon has no views)
    showing = [s.platform for c in tag.charts if c.id == f"{tag.headline}-linear"
               for s in c.series]
    head = "".join(f"<th>{_esc(platform_title(p))}</th>" for p in showing)
    rows = []
    found = {(m["platform"], m["threshold"]): m for m in tag.milestones}
    latest = {r["platform"]: r for r in tag.latest}
    for threshold in MILESTONES:
        cells = []
        for platform in showing:
            m = found.get((platform, threshold))
            if m is None:
                last = latest.get(platform, {}).get(tag.headline)
                shown = f"latest {format_compact(last)}" if last is not None else f"no {word}"
                cells.append(f'<td class="pending">not reached <span class="human">'
                             f"{_esc(shown)}</span></td>")
            elif m["before_first"]:
                cells.append(
                    f'<td class="before" data-crossed-at="{_esc(_iso(m["crossed_at"]))}">'
                    f"already above at the first snapshot<span class=\"human\">"
                    f"{_esc(format_time(m['crossed_at']))} · {_esc(format_compact(m['value']))}"
                    f"</span></td>")
            else:
                cells.append(
                    f'<td class="crossed" data-crossed-at="{_esc(_iso(m["crossed_at"]))}">'
                    f"{_esc(format_time(m['crossed_at']))}<span class=\"human\">"
                    f"{_esc(format_compact(m['value']))}; before: "
                    f"{_esc(format_compact(m['previous_value']))} at "
                    f"{_esc(format_time(m['previous_at']))}</span></td>")
        rows.append(f"<tr><th>{_esc(format_compact(threshold))} {word}</th>{''.join(cells)}</tr>")
    return (f"<h3>First snapshot at or above 1M, 10M and 100M {word}</h3>"
            '<p class="note">The crossing happened between the snapshot shown and the one '
            "before it. “Already above” means it happened before the archive started "
            "watching.</p>"
            f'<table class="milestones"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _latest_table(tag: TagReport) -> str:
    head = "".join(f'<th class="num">{_esc(c)}</th>' for c in tag.counters)
    rows = []
    for row in tag.latest:
        cells = "".join(_value_cell(row, c) for c in tag.counters)
        rows.append(f"<tr><th>{_esc(platform_title(row['platform']))}</th>"
                    f"<td>{_esc(format_time(row['observed_at']))}</td>{cells}"
                    f"<td><code>{_esc(row['source'])}</code></td></tr>")
    return ("<h3>Latest values</h3>"
            '<p class="note">“exact” values are integers the platform sent; “≈ approx” values '
            "were parsed from rounded display text such as “1.2亿” (±5% or better).</p>"
            f'<table class="latest"><thead><tr><th>platform</th><th>observed</th>{head}'
            f"<th>source</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _quality(tag: TagReport) -> str:
    q = tag.quality
    notes: list[str] = []
    for platform in tag.platforms:
        first = tag.first[platform]["observed_at"]
        last = max(r["observed_at"] for r in tag.latest if r["platform"] == platform)
        count = tag.counts[platform]
        notes.append(f"{platform_title(platform)}: {count} snapshot{'s' * (count != 1)} from "
                     f"{format_time(first)} to {format_time(last)}.")
    for gap in q.gaps:
        notes.append(f"Gap on {platform_title(gap.platform)}: nothing observed for "
                     f"{format_duration(gap.length)} ({format_time(gap.after)} to "
                     f"{format_time(gap.before)}); the usual interval is "
                     f"{format_duration(gap.usual)}.")
    for f in q.failed:
        notes.append(f"Not observed on {platform_title(f['platform'])} in run {f['run_id']} "
                     f"({format_time(f['started_at'])}): {f['status']}"
                     f"{': ' + f['detail'] if f['detail'] else ''}.")
    for run in q.unhealthy_runs:
        notes.append(f"Run {run['run_id']} ({format_time(run['started_at'])}) ended "
                     f"“{run['verdict']}” (exit code {run['exit_code']}, {run['errors'] or 0} "
                     f"errors logged).")
    if q.rejects:
        reasons: dict[str, int] = {}
        for r in q.rejects:
            for reason in r["reasons"] or ["no reason recorded"]:
                reasons[reason] = reasons.get(reason, 0) + 1
        top = "; ".join(f"{reason} ({n})" for reason, n in
                        sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
        notes.append(f"{len(q.rejects)} item(s) for this tag failed validation and were kept "
                     f"out of the numbers: {top}.")
    if tag.approx_values:
        notes.append(f"{tag.approx_values} of {tag.total_values} stored values are "
                     "approximate (parsed from rounded display text).")
    clean = not (q.gaps or q.failed or q.unhealthy_runs or q.rejects)
    if clean:
        notes.append("No gaps in the series, no failed observations, no rejected items and no "
                     "unhealthy runs in this period.")
    items = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    return (f'<h3>Data quality</h3><ul class="quality{" clean" if clean else ""}" '
            f'data-gaps="{len(q.gaps)}" data-failed="{len(q.failed)}" '
            f'data-rejects="{len(q.rejects)}" data-unhealthy="{len(q.unhealthy_runs)}">'
            f"{items}</ul>")


def _footer(report: Report) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        made_by = f"tagarchive {version('tagarchive')}"
    except PackageNotFoundError:
        made_by = "tagarchive"
    return ('<footer><p>Counters are read from each platform\'s public tag page by '
            f"{_esc(made_by)} and stored unchanged in Parquet under <code>{_esc(report.root)}"
            "</code>. Rounded labels on charts are truncated, never rounded up. Hover a point "
            "for its exact value.</p></footer>")


def write_report(report: Report, path: Path) -> Path:
    """Write the page next to its final name, then rename it into place."""
    text = render_html(report)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


class ReportWriteError(OSError):
    """The report or a chart could not be written."""


# --- PNG ------------------------------------------------------------------------------------

def _file_stem(tag: str, index: int) -> str:
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in tag)
    safe = "-".join(part for part in safe.split("-") if part)[:40]
    if safe != tag:  # "tiktok难民" must not share a name with "tiktok"
        safe = f"{safe or 'tag'}-{hashlib.sha1(tag.encode()).hexdigest()[:6]}"
    return f"{index:02d}-{safe}"


def write_pngs(report: Report, directory: Path) -> list[Path]:
    """Every chart as a PNG (matplotlib), named <nn>-<tag>-<chart>.png."""
    try:
        import matplotlib
    except ImportError:
        raise MissingPlotting(
            "--png needs matplotlib: pip install 'tagarchive[png]'") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(f"cannot create {directory}: {exc.strerror or exc}") from None
    order = sorted({p for t in report.tags for p in t.platforms})
    colors = {p: platform_color(p, order) for p in order}
    written = []
    # Tags are often Chinese: fall back to any installed CJK font for the glyphs DejaVu lacks.
    families = ["DejaVu Sans", *_cjk_families()]
    with matplotlib.rc_context({"font.family": families}):
        for index, tag in enumerate(report.tags, 1):
            written += _write_tag_pngs(tag, index, directory, colors)
    return written


def _cjk_families() -> list[str]:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    wanted = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
              "WenQuanYi Micro Hei", "Droid Sans Fallback", "PingFang SC", "Microsoft YaHei")
    return [name for name in wanted if name in names]


def _write_tag_pngs(tag: TagReport, index: int, directory: Path,
                    colors: dict[str, str]) -> list[Path]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    written = []
    for chart in tag.charts:
        figure = Figure(figsize=(8, 4), dpi=120, layout="constrained")
        axes = figure.add_subplot()
        _plot(axes, chart, colors)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_compact(int(v))))
        axes.set_title(f"#{tag.display}: {chart.title}", loc="left", fontsize=11)
        axes.grid(True, color="#e5e7eb", linewidth=0.8)
        axes.spines[["top", "right"]].set_visible(False)
        if chart.series:
            axes.legend(frameon=False, fontsize=9)
        path = directory / f"{_file_stem(tag.tag, index)}-{chart.id}.png"
        with warnings.catch_warnings():
            # Without any CJK font installed matplotlib warns per missing glyph and draws a box;
            # the chart is still right, and the fix (a font) is outside this program.
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
            try:
                figure.savefig(path)
            except OSError as exc:
                raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written


class MissingPlotting(RuntimeError):
    """matplotlib is not installed."""


def _plot(axes: Any, chart: Chart, colors: dict[str, str]) -> None:
    count = max(1, len(chart.series))
    for index, series in enumerate(chart.series):
        xs = [_as_datetime(p.x) for p in series.points]
        ys = [p.value for p in series.points]
        label = platform_title(series.platform)
        color = colors[series.platform]
        if chart.kind == "line":
            axes.plot(xs, ys, color=color, linewidth=2, marker="o", markersize=4, label=label)
        else:
            bucket = chart.bucket or timedelta(days=1)
            width = bucket * 0.8 / count
            axes.bar([x + bucket * 0.1 + width * index for x in xs], ys, width=width,
                     align="edge", color=color, label=label)
    if chart.kind == "line":
        if chart.scale == "log":
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
        for threshold in chart.thresholds:
            low, high = axes.get_ylim()
            if low < threshold <= high:
                axes.axhline(threshold, color="#9ca3af", linestyle="--", linewidth=0.8)
    axes.set_ylabel(chart.unit)
    axes.set_xlabel("UTC")
