"""`tagarchive report`: one self-contained HTML page of a tag's growth, platform by platform.

The page has no script and loads nothing: charts are inline SVG drawn here, the stylesheet is
inlined, and a Content-Security-Policy forbids every fetch, so it opens offline and a tag name
taken from a page can never run as code. Every plotted point carries its value in data-*
attributes, so a test (or a reader with the inspector) can check a chart against the Parquet.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from crawler.report.build import main_counter
from crawler.report.charts import esc, iso, svg_bar_chart, svg_line_chart
from crawler.report.labels import (
    SEMANTIC_MARKS,
    format_cjk,
    format_compact,
    format_duration,
    format_exact,
    format_time,
    platform_color,
    platform_title,
    semantics_sign,
    window_text,
)
from crawler.report.model import COUNTER_WORDS, Chart, Report, ReportWriteError, TagReport
from crawler.report.posts import posts_section
from storage.analysis import MILESTONES

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
        f"<title>{esc(title)} · tagarchive</title>",
        f"<style>{_stylesheet()}</style></head><body>",
        '<header class="masthead"><p class="kicker">tagarchive · hashtag growth report</p>',
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(period)} · all times UTC · generated '
        f"{esc(format_time(report.generated_at, seconds=False))}</p>",
    ]
    if len(report.tags) > 1:
        parts.append('<nav class="toc"><ol>' + "".join(
            f'<li><a href="#tag-{i}">#{esc(t.display)}</a></li>'
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
        f"{esc(platform_title(p))}</li>" for p in platforms)
    return (f'<ul class="legend">{items}<li><span class="swatch hollow"></span>'
            "not exact: rounded (≈), a lower bound (≥) or capped</li></ul>")


def _tag_section(tag: TagReport, index: int, colors: dict[str, str], uid: int) -> tuple[str, int]:
    out = [f'<section class="tag" id="tag-{index}" data-tag="{esc(tag.tag)}">',
           f'<h2><span class="hash">#</span>{esc(tag.display)}</h2>']
    if tag.lede:
        out.append('<div class="lede">' + "".join(f"<p>{esc(s)}</p>" for s in tag.lede)
                   + "</div>")
    out.append(_cards(tag, colors))
    out.append(_legend(tag.platforms, colors))

    def figure(chart: Chart) -> str:
        nonlocal uid
        uid += 1
        return _figure(tag, chart, colors, f"c{uid}")

    for counter in tag.counters:
        out.append(f"<h3>{esc(counter.capitalize())} over time</h3>")
        if counter == tag.counters[0]:
            out.append('<p class="note">Left: linear scale, the size of the rise. Right: '
                       "logarithmic scale, where equal steps mean equal multiples, so platforms "
                       "of very different size can be compared.</p>")
        pair = [c for c in tag.charts if c.id in (f"{counter}-linear", f"{counter}-log")]
        out.append('<div class="pair">' + "".join(figure(c) for c in pair) + "</div>")

    out.append(f"<h3>Growth in {esc(tag.headline)}</h3>")
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

    out.append(posts_section(tag))
    out.append(_milestones_table(tag))
    out.append(_latest_table(tag))
    out.append(_quality(tag))
    out.append("</section>")
    return "\n".join(out), uid



def _figure(tag: TagReport, chart: Chart, colors: dict[str, str], chart_uid: str) -> str:
    """One chart as a <figure>, with its data-* description, caption and note."""
    svg = (svg_line_chart if chart.kind == "line" else svg_bar_chart)(chart, colors, chart_uid)
    empty = "" if any(s.points for s in chart.series) else \
        '<p class="empty">No observations in this period.</p>'
    note = f'<p class="note">{esc(chart.note)}</p>' if chart.note else ""
    shown_from = (f' data-shown-from="{chart.shown_from.isoformat()}" '
                  f'data-shown-until="{chart.shown_until.isoformat()}"'
                  if chart.shown_from and chart.shown_until else "")
    return (f'<figure class="chart" data-chart="{esc(chart.id)}" '
            f'data-tag="{esc(tag.tag)}" data-source="{esc(chart.source)}" '
            f'data-unit="{esc(chart.unit)}" data-scale="{chart.scale}"{shown_from}>'
            f"<figcaption>{esc(chart.title)}</figcaption>{svg}{empty}{note}</figure>")

def _value_cell(row: dict[str, Any], counter: str) -> str:
    value = row.get(counter)
    semantics = row.get(f"{counter}_semantics") or "exact"
    text = row.get(f"{counter}_text")
    if value is None:
        if semantics == "capped" and text:  # a saturated figure: shown as such, never a count
            return (f'<td class="num missing">–<span class="mark capped" title="'
                    f'{esc(SEMANTIC_MARKS["capped"][2])}">capped at “{esc(text)}”</span></td>')
        return '<td class="num missing">–</td>'
    sign, word, title = SEMANTIC_MARKS.get(semantics, SEMANTIC_MARKS["exact"])
    if semantics == "rounded" and text:
        word += " · “" + text + "”"
    if semantics == "window" and window_text(row):
        word += " · " + window_text(row)
    mark = f'<span class="mark {esc(semantics)}" title="{esc(title)}">{esc(word)}</span>'
    return (f'<td class="num"><span class="exact-value">{esc(sign)}{value:,}</span>'
            f'<span class="human">{esc(format_compact(value))} · {esc(format_cjk(value))}'
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
                      f"{esc(format_time(tag.first[platform]['observed_at']))}</p>")
        approx = semantics_sign(row.get(f"{counter}_semantics"))
        cards.append(
            f'<div class="card" style="border-top-color:{colors[platform]}">'
            f'<p class="platform">{esc(platform_title(platform))}</p>'
            f'<p class="big">{esc(approx + format_compact(value))} '
            f'<span class="unit">{esc(counter)}</span></p>'
            f'<p class="small">{esc(format_exact(value))} · {esc(format_cjk(value))}</p>'
            f"{change}</div>")
    return '<div class="cards">' + "".join(cards) + "</div>"


def _milestones_table(tag: TagReport) -> str:
    word = COUNTER_WORDS[tag.headline]
    # only the platforms that show this counter at all (Mastodon has no views)
    showing = [s.platform for c in tag.charts if c.id == f"{tag.headline}-linear"
               for s in c.series]
    head = "".join(f"<th>{esc(platform_title(p))}</th>" for p in showing)
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
                             f"{esc(shown)}</span></td>")
            elif m["before_first"]:
                cells.append(
                    f'<td class="before" data-crossed-at="{esc(iso(m["crossed_at"]))}">'
                    f"already above at the first snapshot<span class=\"human\">"
                    f"{esc(format_time(m['crossed_at']))} · {esc(format_compact(m['value']))}"
                    f"</span></td>")
            else:
                cells.append(
                    f'<td class="crossed" data-crossed-at="{esc(iso(m["crossed_at"]))}">'
                    f"{esc(format_time(m['crossed_at']))}<span class=\"human\">"
                    f"{esc(format_compact(m['value']))}; before: "
                    f"{esc(format_compact(m['previous_value']))} at "
                    f"{esc(format_time(m['previous_at']))}</span></td>")
        rows.append(f"<tr><th>{esc(format_compact(threshold))} {word}</th>{''.join(cells)}</tr>")
    return (f"<h3>First snapshot at or above 1M, 10M and 100M {word}</h3>"
            '<p class="note">The crossing happened between the snapshot shown and the one '
            "before it. “Already above” means it happened before the archive started "
            "watching.</p>"
            f'<table class="milestones"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _latest_table(tag: TagReport) -> str:
    head = "".join(f'<th class="num">{esc(c)}</th>' for c in tag.counters)
    rows = []
    for row in tag.latest:
        cells = "".join(_value_cell(row, c) for c in tag.counters)
        rows.append(f"<tr><th>{esc(platform_title(row['platform']))}</th>"
                    f"<td>{esc(format_time(row['observed_at']))}</td>{cells}"
                    f"<td><code>{esc(row['source'])}</code></td></tr>")
    return ("<h3>Latest values</h3>"
            '<p class="note">“exact” values are integers the platform sent; “≈ rounded” values '
            "were rounded by the platform for display (“1.2亿” is ±5% or better); “≥ at least” "
            "values are lower bounds; “window” values count posts over the stated window."
            " docs/data.md says, per platform and counter, which is which.</p>"
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
                     "not exact (rounded by the platform, or lower bounds).")
    clean = not (q.gaps or q.failed or q.unhealthy_runs or q.rejects)
    if clean:
        notes.append("No gaps in the series, no failed observations, no rejected items and no "
                     "unhealthy runs in this period.")
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
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
            f"{esc(made_by)} and stored unchanged in Parquet under <code>{esc(report.root)}"
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
