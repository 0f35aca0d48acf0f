"""Reading the archive (Parquet through storage.analysis) into the report's model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from crawler.report.labels import format_compact, format_time, platform_title
from crawler.report.model import (
    COUNTER_WORDS,
    POSTS_DAYS,
    WIDE,
    Chart,
    NothingToReport,
    Point,
    Report,
    ReportRequest,
    Series,
    TagReport,
)
from storage.analysis import MILESTONES, fold_tag
from storage.schemas import COUNTERS

if TYPE_CHECKING:
    import pyarrow as pa
    from duckdb import DuckDBPyRelation

    from storage.analysis import Archive

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


class _Window(TypedDict):
    """The request's filter, as keyword arguments of every Archive query."""

    platforms: Sequence[str] | None
    since: datetime | None
    until: datetime | None


def _rows(relation: DuckDBPyRelation) -> list[dict[str, Any]]:
    table: pa.Table = relation.to_arrow_table()  # duckdb types it Any
    return table.to_pylist()


def build_tag(archive: Archive, tag: str, request: ReportRequest) -> TagReport:
    """The numbers, charts and notes of one tag."""
    window = _Window(platforms=request.platforms, since=request.since, until=request.until)
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

    charts = (_counter_charts(rows, platforms, counters, headline)
              + _growth_charts(archive, tag, headline, platforms, window)
              + _posts_charts(archive, tag, request, platforms, window))

    latest = _rows(archive.latest(tag, **window))
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["platform"], r)
    milestones = _rows(archive.milestones(tag, counter=headline, **window))
    values = [(r[c], r[f"{c}_semantics"] not in (None, "exact", "window"))
              for r in rows for c in counters if r[c] is not None]
    report = TagReport(
        tag=tag, display=display, platforms=platforms, snapshots=len(rows),
        first_seen=min(r["observed_at"] for r in rows),
        last_seen=max(r["observed_at"] for r in rows), counters=counters, headline=headline,
        charts=charts, latest=latest, first=first, milestones=milestones,
        counts={p: sum(1 for r in rows if r["platform"] == p) for p in platforms},
        quality=archive.quality(tag, **window),
        approx_values=sum(1 for _v, approx in values if approx), total_values=len(values),
        languages=_rows(archive.languages(tag, **window)),
        co_tags=_rows(archive.co_tags(tag, **window)))
    report.lede = lede(report)
    return report



def _counter_charts(rows: list[dict[str, Any]], platforms: list[str], counters: list[str],
                    headline: str) -> list[Chart]:
    """Each counter over time, linear and log; the headline one with its milestones."""
    charts: list[Chart] = []
    for counter in counters:
        series = [
            Series(p, [Point(r["observed_at"], r[counter],
                             r[f"{counter}_semantics"] not in (None, "exact", "window"),
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
    return charts


def _growth_charts(archive: Archive, tag: str, headline: str, platforms: list[str],
                   window: _Window) -> list[Chart]:
    """New headline counts per hour and per day."""
    charts: list[Chart] = []
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
    return charts


def _posts_charts(archive: Archive, tag: str, request: ReportRequest, platforms: list[str],
                  window: _Window) -> list[Chart]:
    """Posts per day: the platforms' own history, or what our samples saw."""
    # Daily posts from the platforms' own history (activity) where a platform has it; for the
    # others, the posts the crawls happened to see, by day published: a lower bound only.
    activity = _rows(archive.activity(tag, **window))
    with_history = {a["platform"] for a in activity}
    sampled = _rows(archive.sampled_posts_per_day(tag, platforms=request.platforms))
    charts: list[Chart] = []
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
    return charts


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
