"""The report's data: what was asked, and the numbers, charts and notes the page shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from storage.quality import Quality

WIDTH, WIDE, HEIGHT = 640, 1280, 300
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
    """One plotted value: a time (or a bucket's start), the value, and whether it is not exact
    (rounded or a lower bound: drawn hollow)."""

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
    # posts under the tag: (platform, day, lang, posts, share) and (platform, co_tag, posts)
    languages: list[dict[str, Any]] = field(default_factory=list)
    co_tags: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    """A whole report: one section per tag."""

    request: ReportRequest
    root: str
    generated_at: datetime
    tags: list[TagReport]


class ReportWriteError(OSError):
    """The report or a chart could not be written."""


class MissingPlotting(RuntimeError):
    """matplotlib is not installed."""
