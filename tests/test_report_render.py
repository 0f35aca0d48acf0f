"""`tagarchive report` without a browser: numbers as people read them, notes, errors, escaping."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.report import (
    ReportRequest,
    build_report,
    format_cjk,
    format_compact,
    render_html,
)
from storage import DatasetWriter, open_archive
from tests.analysis_helpers import T0, WALL_POSTS, XSS_TAG, write_archive


@pytest.mark.parametrize(
    ("value", "compact", "cjk"),
    [
        (0, "0", "0"),
        (999, "999", "999"),
        (9_999, "9.99K", "9,999"),
        (35_414, "35.4K", "3.5万"),
        (1_346_802, "1.34M", "134.6万"),
        (2_812_480, "2.81M", "281.2万"),
        (99_960_000, "99.9M", "9996万"),  # truncated: never claims 100M early
        (120_999_999, "120M", "1.2亿"),
        (134_605_802, "134M", "1.3亿"),
        (2_042_560_112, "2.04B", "20.4亿"),
        (-4_965, "-4.96K", "-4,965"),
    ],
)
def test_numbers_read_like_the_platforms_show_them(value: int, compact: str, cjk: str) -> None:
    assert format_compact(value) == compact
    assert format_cjk(value) == cjk


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_archive(tmp_path_factory.mktemp("report") / "data")
    # a long activity history: the posts chart shows the busiest 92 days, says what it left out
    with DatasetWriter(root, "20250114T000000Z-cccccccc") as writer:
        for offset in (400, 91, 0):
            day = date(2025, 1, 10) - timedelta(days=offset)
            writer.add("activity", {"platform": "tiktok", "date": day.isoformat(),
                                    "tag": XSS_TAG, "day": day, "posts": 1000 - offset,
                                    "coverage": "complete", "source": "api", "observed_at": T0})
    return root


def page_for(root: Path, *tags: str) -> str:
    with open_archive(root) as archive:
        return render_html(build_report(archive, ReportRequest(tags=tags)))


def test_quality_notes_name_what_went_wrong(root: Path) -> None:
    page = page_for(root, "wall")
    notes = re.search(r'<ul class="quality"[^>]*>(.*?)</ul>', page, re.S)
    assert notes is not None
    text = notes.group(1)
    assert "Gap on TikTok: nothing observed for 10 h" in text
    assert "usual interval is 1 h" in text
    assert "Not observed on TikTok in run 20250114T120000Z-bbbbbbbb" in text
    assert "not_found: tag page says 404" in text
    assert "ended “failed” (exit code 1, 2 errors logged)" in text
    assert "views: negative (-5) (1)" in text
    assert "1 of 9 stored values are not exact" in text
    assert 'data-gaps="1" data-failed="1" data-rejects="1" data-unhealthy="1"' in page


def test_milestones_and_latest_values(root: Path) -> None:
    page = page_for(root, "wall")
    assert "passed 100M views between" in page  # the lede names TikTok's crossing
    assert "already above at the first snapshot" in page  # Xiaohongshu started above 100M
    assert 'data-crossed-at="2025-01-14T02:00:00+00:00"' in page  # TikTok's first 1M
    # the latest table marks each value: the approximate one only in the chart (it is older)
    latest = page[page.index('<table class="latest">'):]
    assert "150,000,000" in latest
    assert "130,000,002" in latest
    assert "≈ rounded" not in latest
    assert "mark exact" in latest
    assert 'class="pt approx"' in page
    assert "shown as 1.2亿" in page


def test_activity_lower_bounds_are_hatched_and_old_days_summarised(root: Path) -> None:
    page = page_for(root, "wall", XSS_TAG)
    assert 'data-source="activity"' in page
    assert re.search(r'class="bar approx"[^>]*data-x="2025-01-13"[^>]*data-v="120"', page)
    assert 'data-shown-from="2024-10-11" data-shown-until="2025-01-10"' in page
    assert "600 other posts, from 7 Dec 2023 to 7 Dec 2023, are not drawn" in page


def test_posts_section_shows_languages_co_tags_and_posts_seen(root: Path) -> None:
    page = page_for(root, "wall")
    section = page[page.index("<h3>Posts under the tag</h3>"):page.index("<h3>First snapshot")]
    # TikTok's first day: posts 1, 2, 3 first seen (en, zh, en): 67% en, 33% zh
    first_day = [p for p in WALL_POSTS if p[0] == "tiktok" and p[2] < 24]
    english = sum(1 for p in first_day if p[3] == "en")
    assert (f'<td class="num">{len(first_day)}</td><td class="num">'
            f"{english / len(first_day):.0%}</td>") in section
    for platform, _id, _h, _lang, tags in WALL_POSTS:
        for co_tag in tags:
            if co_tag != "wall":
                assert f"<li>#{co_tag} " in section, (platform, co_tag)
    assert '<th class="num">posts seen</th>' in section


def test_tags_from_pages_are_text_never_markup(root: Path) -> None:
    page = page_for(root, XSS_TAG)
    assert "<script" not in page
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;" in page
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\';' in page
    # nothing to fetch: no src or href but in-page anchors; xmlns is a name, not a request
    assert not re.search(r'\b(src|href)="(?!#)', page)
    assert not re.search(r"url\((?!#)", page)
    assert set(re.findall(r"https?://[^\"' )]+", page)) == {"http://www.w3.org/2000/svg"}


def test_report_errors_are_one_line(root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r.html")
    cases = [
        (["nosuchtag"], 2, "no snapshots of tag 'nosuchtag' under"),
        (["wall", "--platforms", "tiktk"], 2, "no snapshots from platform 'tiktk'"),
        (["wall", "--since", "yesterday"], 2, "not a date or time: 'yesterday'"),
        (["wall", "--since", "2025-02-01", "--until", "2025-01-01"], 2, "--since must come"),
        (["wall", "--since", "2026-01-01"], 2, "in that period"),
        (["#", "--since", "2026-01-01"], 2, "invalid tag '#'"),
    ]
    for args, code, message in cases:
        assert main(["report", *args, "--root", str(root), "--out", out]) == code, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, (args, err)
        assert message in err, (args, err)
    assert main(["report", "wall", "--root", str(tmp_path / "none"), "--out", out]) == 3
    assert main(["report", "wall", "--root", str(root), "--out",
                 str(tmp_path / "no" / "r.html")]) == 3
    assert "cannot write" in capsys.readouterr().err
    assert not Path(out).exists()


def test_window_and_platforms_narrow_the_report(root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    code = main(["report", "WALL", "--root", str(root), "--out", str(out), "--platforms",
                 "tiktok", "--since", "2025-01-14T01:30", "--until", "2025-01-14"])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"report written to {out}")
    page = out.read_text(encoding="utf-8")
    points = re.findall(r'<circle class="pt[^"]*"[^>]*data-platform="([^"]+)"[^>]*'
                        r'data-x="([^"]+)"[^>]*data-v="(\d+)"', page)
    views = {(p, x, int(v)) for p, x, v in points}
    # --until with a bare day includes that day; --since 01:30 drops the first two hours
    assert {v for _p, _x, v in views} >= {2_000_000, 12_000_000, 150_000_000}
    assert not {v for _p, _x, v in views} & {500_000, 900_000}
    assert {p for p, _x, _v in views} == {"tiktok"}


def test_platform_colours_come_from_the_adapters() -> None:
    from crawler.platforms import REGISTRY
    from crawler.report.labels import _PALETTE, platform_color, platform_title

    order = ["tiktok", "mastodon", "xiaohongshu", "bluesky"]
    assert platform_color("tiktok", order) == REGISTRY["tiktok"].color == "#0e7490"
    assert platform_color("xiaohongshu", order) == REGISTRY["xiaohongshu"].color == "#e11d48"
    # the rest share the palette in the order given, skipping the adapters with a colour
    assert platform_color("mastodon", order) == _PALETTE[0]
    assert platform_color("bluesky", order) == _PALETTE[1]
    assert platform_title("xiaohongshu") == REGISTRY["xiaohongshu"].title
    assert platform_title("unknown-slug") == "unknown-slug"


def test_the_report_package_exports_its_public_names() -> None:
    import crawler.report
    from crawler.report.charts import as_datetime, esc, iso

    for name in crawler.report.__all__:
        assert getattr(crawler.report, name).__module__.startswith("crawler.report."), name
    assert esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert iso(date(2025, 1, 14)) == "2025-01-14"
    assert as_datetime(date(2025, 1, 14)).isoformat() == "2025-01-14T00:00:00+00:00"
