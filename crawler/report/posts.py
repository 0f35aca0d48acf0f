"""The report's section on the posts seen under a tag: languages by day, co-occurring tags, and
how many posts were seen against the total the platform reports."""

from __future__ import annotations

from html import escape as esc
from typing import Any

from crawler.report.labels import format_exact, platform_title, semantics_sign
from crawler.report.model import TagReport

# languages shown as their own column per platform; the rest are summed as "other"
TOP_LANGUAGES = 4
DAYS_SHOWN = 14


def posts_section(tag: TagReport) -> str:
    """Languages per day, co-occurring tags and posts seen, per platform with posts."""
    platforms = sorted({r["platform"] for r in tag.languages}
                       | {r["platform"] for r in tag.co_tags})
    out = ["<h3>Posts under the tag</h3>",
           '<p class="note">Each post counted once, on the day it was first seen. Languages '
           "are detected from the text (<code>posts.lang</code>; “unknown” when the text is too "
           "short to say); co-occurring tags are those the same posts carry.</p>"]
    if not platforms:
        out.append('<p class="note">No posts stored for this tag.</p>')
    for platform in platforms:
        out.append(f"<h4>{esc(platform_title(platform))}</h4>")
        out.append(_languages_table([r for r in tag.languages if r["platform"] == platform]))
        out.append(_co_tags([r for r in tag.co_tags if r["platform"] == platform]))
    out.append(_seen_table(tag))
    return "\n".join(out)


def _languages_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["lang"]] = totals.get(r["lang"], 0) + r["posts"]
    top = sorted(totals, key=lambda lang: (-totals[lang], lang))[:TOP_LANGUAGES]
    days = sorted({r["day"] for r in rows})[-DAYS_SHOWN:]
    head = "".join(f'<th class="num">{esc(lang)}</th>' for lang in top)
    body = []
    for day in days:
        shares = {r["lang"]: r["share"] for r in rows if r["day"] == day}
        posts = sum(r["posts"] for r in rows if r["day"] == day)
        other = 1.0 - sum(shares.get(lang, 0.0) for lang in top)
        cells = "".join(f'<td class="num">{shares.get(lang, 0.0):.0%}</td>' for lang in top)
        body.append(f'<tr><th>{esc(day.isoformat())}</th><td class="num">{posts:,}</td>{cells}'
                    f'<td class="num">{max(other, 0.0):.0%}</td></tr>')
    return ('<table class="languages"><thead><tr><th>day</th><th class="num">posts</th>'
            f'{head}<th class="num">other</th></tr></thead><tbody>{"".join(body)}'
            "</tbody></table>")


def _co_tags(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="note">No other tags in these posts.</p>'
    items = "".join(f"<li>#{esc(r['co_tag'])} <span class=\"small\">({r['posts']:,} posts)"
                    "</span></li>" for r in rows)
    return f'<p class="note">Tags carried by the same posts:</p><ul class="cotags">{items}</ul>'


def _seen_table(tag: TagReport) -> str:
    rows = []
    for row in tag.latest:
        posts = row.get("posts")
        reported = ("–" if posts is None
                    else semantics_sign(row.get("posts_semantics")) + format_exact(posts))
        cap = row.get("visibility_cap")
        seen = row.get("posts_seen")
        rows.append(f"<tr><th>{esc(platform_title(row['platform']))}</th>"
                    f'<td class="num">{"–" if seen is None else format_exact(seen)}</td>'
                    f'<td class="num">{esc(reported)}</td>'
                    f'<td class="num">{"–" if cap is None else format_exact(cap)}</td></tr>')
    return ('<p class="note">Posts seen in the latest observation, beside the total the platform '
            "reports and the most it shows under one tag or query.</p>"
            '<table class="seen"><thead><tr><th>platform</th><th class="num">posts seen</th>'
            '<th class="num">reported total</th><th class="num">visibility cap</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")
