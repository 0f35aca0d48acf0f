"""The web view's HTML: the index, a tag's live page, the SQL box, an error page.

No inline script or style: the pages load /static/serve.js and the stylesheets from this
server only (the CSP in app.py forbids everything else). Every value from the archive is
escaped; the tag sections are the report's own HTML (crawler/report), escaped there.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from crawler.report import format_time, platform_title
from crawler.serve.live import Alerts, Section
from crawler.serve.sql import SqlResult, cell_text
from crawler.services.status import Status, WatchStatus, ago

EXAMPLE_SQL = ("select platform, tag, max(views) as views, max(observed_at) as newest\n"
               "from snapshots group by all order by views desc nulls last")


def esc(value: object) -> str:
    """Text safe inside HTML, attribute values included."""
    return html.escape(str(value), quote=True)


def tag_href(tag: str) -> str:
    """The live page of a tag (any character: '/' and '?' are escaped too)."""
    return "/tag/" + quote(tag, safe="")


def _moment(value: datetime | None) -> str:
    if value is None:
        return "–"
    return (f'<time datetime="{esc(value.astimezone(UTC).isoformat())}">'
            f"{esc(format_time(value))}</time>")


def page(title: str, body: str, *, refresh: float, root: str, live: str = "") -> str:
    """A whole page around `body`: the navigation, the stylesheets, the script."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="tagarchive serve">',
        f"<title>{esc(title)} · tagarchive</title>",
        '<link rel="stylesheet" href="/static/report.css">',
        '<link rel="stylesheet" href="/static/serve.css">',
        '<script src="/static/serve.js" defer></script>',
        f'</head><body data-refresh="{refresh:g}">',
        '<nav class="top"><a href="/">Archive</a><a href="/sql">SQL</a>'
        f'<span class="root">read-only view of <code>{esc(root)}</code></span>{live}</nav>',
        body,
        '<footer><p>tagarchive serve shows the Parquet under this root as it is stored; it '
        "never writes to it. All times UTC.</p></footer>",
        "</body></html>",
    ])


# --- the index ------------------------------------------------------------------------------

def index_body(tags: list[dict[str, Any]], status: Status | None, status_error: str | None,
               alerts: Alerts, now: datetime) -> str:
    parts = ['<header class="masthead"><p class="kicker">tagarchive · live view</p>'
             "<h1>The archive</h1></header><main>"]
    parts.append(_watches(status, status_error, now))
    parts.append(_alerts(alerts))
    parts.append(_tags(tags))
    parts.append("</main>")
    return "\n".join(parts)


def _watches(status: Status | None, error: str | None, now: datetime) -> str:
    out = ['<section class="watches"><h2>Watches</h2>']
    if error is not None:
        out.append(f'<p class="problem">{esc(error)}</p></section>')
        return "".join(out)
    if status is None:
        out.append('<p class="note">Start with <code>--config FILE</code> to see each '
                   "watch's freshness and last verdict here.</p></section>")
        return "".join(out)
    out.append(f'<p class="note">From <code>{esc(status.config)}</code>; scheduler '
               + (f"running (pid {status.scheduler_pid})" if status.scheduler_pid
                  else "not running") + ".</p>")
    out.append('<table class="watches"><thead><tr><th>watch</th><th>cadence</th>'
               "<th>last run</th><th>verdict</th><th>next run</th><th>tags</th></tr></thead>"
               "<tbody>")
    out.extend(_watch_row(w, now) for w in status.watches)
    out.append("</tbody></table></section>")
    return "".join(out)


def _watch_row(w: WatchStatus, now: datetime) -> str:
    run = w.last_run
    if run is None:
        verdict = '<span class="verdict none">no run yet</span>'
        last = "never"
    else:
        word = run["verdict"] + (f" · {run['health']}" if run.get("health") else "")
        verdict = (f'<span class="verdict {"ok" if w.healthy else "bad"}" '
                   f'title="run {esc(run["run_id"])}">{esc(word)}</span>')
        last = esc(ago(now, run["started_at"]))
    if not w.enabled:
        upcoming = "disabled"
    elif w.next_run is None:
        upcoming = "not scheduled"
    else:
        upcoming = ago(now, w.next_run)
    tags = "".join(
        f'<li class="fresh-{esc(t.state)}" data-state="{esc(t.state)}">'
        f'<span class="state">{esc(t.state)}</span> {esc(platform_title(t.platform))} '
        f'<a href="{esc(tag_href(t.tag))}">{esc(t.tag)}</a>'
        + (f' <span class="age">{esc(ago(now, t.newest))}</span>' if t.newest else "")
        + "</li>" for t in w.tags)
    return (f'<tr data-watch="{esc(w.name)}"><th>{esc(w.name)}</th><td>{esc(w.cadence)}</td>'
            f"<td>{last}</td><td>{verdict}</td><td>{esc(upcoming)}</td>"
            f'<td><ul class="freshness">{tags}</ul></td></tr>')


def _alerts(alerts: Alerts) -> str:
    out = ['<section class="alerts"><h2>Recent alerts</h2>']
    if not alerts.present:
        out.append('<p class="note" data-alerts="none">None: no alert is configured (the '
                   "config's <code>[[alert]]</code> tables, docs/alerts.md), or none has fired "
                   "yet.</p>")
    else:
        out.append(_table(alerts.columns, [[r.get(c) for c in alerts.columns]
                                           for r in alerts.rows], css="alerts"))
    out.append("</section>")
    return "".join(out)


def _tags(tags: list[dict[str, Any]]) -> str:
    if not tags:
        return '<section class="tags"><h2>Tags</h2><p class="note">No snapshots yet.</p></section>'
    rows = "".join(
        f'<tr data-tag="{esc(t["tag"])}"><th><a href="{esc(tag_href(t["tag"]))}">'
        f'#{esc(t["tag_display"] or t["tag"])}</a></th>'
        f'<td>{esc(", ".join(platform_title(p) for p in t["platforms"]))}</td>'
        f'<td class="num">{t["snapshots"]:,}</td><td>{_moment(t["first_seen"])}</td>'
        f'<td>{_moment(t["last_seen"])}</td></tr>' for t in tags)
    return ('<section class="tags"><h2>Tags</h2><table class="tags"><thead><tr><th>tag</th>'
            '<th>platforms</th><th class="num">snapshots</th><th>first seen</th>'
            f"<th>last seen</th></tr></thead><tbody>{rows}</tbody></table></section>")


# --- a tag ----------------------------------------------------------------------------------

def tag_body(section: Section) -> str:
    newest = section.newest.astimezone(UTC).isoformat() if section.newest else ""
    return (f'<header class="masthead"><p class="kicker">tagarchive · live view</p>'
            f"<h1>How #{esc(section.display)} grows</h1>"
            f'<p class="meta" id="live-status" aria-live="polite">{section.snapshots:,} '
            f"snapshots, the newest {_moment(section.newest)}</p></header>"
            f'<main><div id="live" data-tag="{esc(section.tag)}" data-newest="{esc(newest)}" '
            f'data-snapshots="{section.snapshots}">{section.html}</div></main>')


# --- the SQL box ----------------------------------------------------------------------------

def sql_body(sql: str, result: SqlResult | None, error: str | None, *, limit: int,
             csv_limit: int, timeout: float, columns: dict[str, list[tuple[str, str]]]) -> str:
    shown = sql if sql else EXAMPLE_SQL
    out = ['<header class="masthead"><p class="kicker">tagarchive · live view</p>'
           "<h1>SQL over the archive</h1>"
           f'<p class="meta">DuckDB SQL over the views of <code>tagarchive query</code>: one '
           f"read-only statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE), stopped after "
           f"{timeout:g} s, {limit:,} rows shown, up to {csv_limit:,} in the CSV.</p>"
           "</header><main>",
           '<form class="sql" method="get" action="/sql">'
           '<label for="q">SQL</label>'
           f'<textarea id="q" name="q" rows="8" spellcheck="false">{esc(shown)}</textarea>'
           '<div class="buttons"><button type="submit" id="run">Run</button>'
           '<button type="submit" id="csv" formaction="/sql.csv">Download CSV</button></div>'
           "</form>"]
    if error is not None:
        out.append(f'<p class="problem" id="sql-error" role="alert">{esc(error)}</p>')
    if result is not None:
        count = len(result.rows)
        if result.truncated:
            summary = (f"The first {count:,} rows are shown; the result has more. "
                       f'<a href="/sql.csv?{esc(urlencode({"q": sql}))}">Download CSV</a> '
                       f"gives up to {csv_limit:,}.")
        else:
            summary = f"{count:,} row{'s' if count != 1 else ''}."
        out.append(f'<p class="meta" id="sql-summary" data-rows="{count}" '
                   f'data-truncated="{str(result.truncated).lower()}">{summary} '
                   f"({result.seconds:.2f} s)</p>")
        out.append(_table(result.columns, result.rows, css="result", types=result.types))
    out.append(_views(columns))
    out.append("</main>")
    return "\n".join(out)


def _views(columns: dict[str, list[tuple[str, str]]]) -> str:
    items = "".join(
        f'<details><summary><code>{esc(view)}</code></summary><p class="columns">'
        + ", ".join(f"<code>{esc(name)}</code> <span class=\"type\">{esc(kind)}</span>"
                    for name, kind in cols) + "</p></details>"
        for view, cols in columns.items())
    return ('<section class="views"><h2>The views</h2><p class="note">Every column is '
            "described in docs/data.md; recipes are in docs/analysis.md.</p>"
            f"{items}</section>")


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str,
           types: Sequence[str] | None = None) -> str:
    numeric = [bool(types) and any(t in types[i] for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL"))
               for i in range(len(columns))] if types else [False] * len(columns)
    num = ' class="num"'
    head = "".join(f"<th{num if numeric[i] else ''}>{esc(c)}</th>"
                   for i, c in enumerate(columns))
    body = "".join(
        "<tr>" + "".join(
            '<td class="null">NULL</td>' if v is None else
            f"<td{num if numeric[i] else ''}>{esc(cell_text(v))}</td>"
            for i, v in enumerate(row)) + "</tr>"
        for row in rows)
    return (f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def error_body(title: str, message: str) -> str:
    return (f'<header class="masthead"><h1>{esc(title)}</h1></header><main>'
            f'<p class="problem" role="alert">{esc(message)}</p>'
            '<p><a href="/">Back to the archive</a></p></main>')
