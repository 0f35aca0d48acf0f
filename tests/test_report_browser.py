"""The report in real headless Chromium: offline, every chart holds the Parquet's points.

Expected points are computed here from the Parquet with pyarrow and plain Python; the report
computes them with DuckDB, so the two have to agree independently.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from crawler.downloader.chromium import find_chromium, launch_options
from crawler.report import ReportRequest, build_report, write_report
from storage import open_archive, open_dataset
from tests.analysis_helpers import XSS_TAG, demo_workdir, write_archive

CHARTS_JS = """() => [...document.querySelectorAll('figure[data-chart]')].map(f => ({
    chart: f.dataset.chart, tag: f.dataset.tag, source: f.dataset.source, unit: f.dataset.unit,
    shownFrom: f.dataset.shownFrom || null, shownUntil: f.dataset.shownUntil || null,
    height: f.querySelector('svg').getBoundingClientRect().height,
    points: [...f.querySelectorAll('[data-v]')].map(
        e => [e.dataset.platform, e.dataset.x, e.dataset.v]),
}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**launch_options(find_chromium()))
        yield launched
        launched.close()


class OfflinePage:
    """A report opened from disk with every network request refused and recorded."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.attempted: list[str] = []
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("request", lambda r: r.url != self.url and self.attempted.append(r.url))
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url, wait_until="load")

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.attempted.append(route.request.url)
            route.abort()

    def charts(self) -> list[dict[str, Any]]:
        return self.page.evaluate(CHARTS_JS)

    def close(self) -> None:
        self.context.close()


def report_file(root: Path, out: Path, *tags: str) -> Path:
    with open_archive(root) as archive:
        return write_report(build_report(archive, ReportRequest(tags=tags)), out)


def rows(root: Path, dataset: str, tag: str) -> list[dict[str, Any]]:
    return [r for r in open_dataset(root, dataset).to_table().to_pylist() if r["tag"] == tag]


def _iso(x: datetime | date) -> str:
    return x.astimezone(UTC).isoformat() if isinstance(x, datetime) else x.isoformat()


def expected_points(root: Path, tag: str, chart: dict[str, Any]) -> set[tuple[str, str, int]]:
    """What a chart must show, from the Parquet alone."""
    source, unit = chart["source"], chart["unit"]
    if source == "snapshots":
        return {(r["platform"], _iso(r["observed_at"]), r[unit])
                for r in rows(root, "snapshots", tag) if r[unit] is not None}
    if source.startswith("growth-"):
        width = timedelta(hours=1) if source == "growth-hour" else timedelta(days=1)
        return growth(rows(root, "snapshots", tag), unit, width)
    shown_from = date.fromisoformat(chart["shownFrom"]) if chart["shownFrom"] else date.min
    shown_until = date.fromisoformat(chart["shownUntil"]) if chart["shownUntil"] else date.max
    if source == "activity":
        latest: dict[tuple[str, date], dict[str, Any]] = {}
        for r in sorted(rows(root, "activity", tag), key=lambda r: r["observed_at"]):
            latest[(r["platform"], r["day"])] = r
        return {(p, d.isoformat(), r["posts"]) for (p, d), r in latest.items()
                if shown_from <= d <= shown_until and r["posts"] is not None}
    assert source == "posts", source
    with_history = {r["platform"] for r in rows(root, "activity", tag)}
    seen: dict[tuple[str, date], set[str]] = defaultdict(set)
    for r in rows(root, "posts", tag):
        if r["created_at"] is not None and r["platform"] not in with_history:
            seen[(r["platform"], r["created_at"].astimezone(UTC).date())].add(r["post_id"])
    return {(p, d.isoformat(), len(ids)) for (p, d), ids in seen.items()
            if shown_from <= d <= shown_until}


def growth(snapshots: list[dict[str, Any]], unit: str,
           width: timedelta) -> set[tuple[str, str, int]]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = set()
    for platform in {r["platform"] for r in snapshots}:
        series = sorted((r["observed_at"], r[unit]) for r in snapshots
                        if r["platform"] == platform and r[unit] is not None)
        buckets: dict[datetime, list[int]] = defaultdict(list)
        for moment, value in series:
            buckets[epoch + (moment - epoch) // width * width].append(value)
        previous = None
        for start in sorted(buckets):
            values = buckets[start]
            out.add((platform, _iso(start), values[-1] - (values[0] if previous is None
                                                          else previous)))
            previous = values[-1]
    return out


def check_charts(opened: OfflinePage, root: Path, tags: list[str]) -> list[dict[str, Any]]:
    charts = opened.charts()
    for chart in charts:
        assert chart["tag"] in tags
        got = {(p, x, int(v)) for p, x, v in chart["points"]}
        assert len(got) == len(chart["points"]), f"{chart['chart']}: a point drawn twice"
        assert got == expected_points(root, chart["tag"], chart), chart["chart"]
        assert got, f"{chart['tag']} {chart['chart']} is empty"
        assert chart["height"] > 100, f"{chart['chart']} is not laid out"
    return charts


def test_demo_report_renders_offline_with_every_point(
        browser: Browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    data = demo_workdir(tmp_path_factory) / "data"
    tags = ["tiktokrefugee", "tiktok难民"]
    opened = OfflinePage(browser, report_file(data, tmp_path / "report.html", *tags))
    try:
        charts = check_charts(opened, data, tags)
        kinds = {(c["tag"], c["chart"]) for c in charts}
        for tag in tags:
            assert {(tag, "views-linear"), (tag, "views-log"), (tag, "growth-hour"),
                    (tag, "growth-day"), (tag, "sampled-posts")} <= kinds
        assert opened.page.locator("h2").all_inner_texts() == ["#tiktokrefugee", "#TikTok难民"]
        assert opened.page.locator("td.crossed").count() >= 1  # the 100M crossing is tabled
        shot = opened.page.screenshot(full_page=True)
        (tmp_path / "report.png").write_bytes(shot)
        image = Image.open(io.BytesIO(shot)).convert("RGB")
        assert image.width == 1200
        assert image.height > 3000
        colors = image.getcolors(maxcolors=1 << 20)
        assert colors is not None
        assert len(colors) > 200
        assert opened.attempted == []
        assert opened.problems == []
    finally:
        opened.close()


def test_page_text_stays_text_and_activity_is_charted(
        browser: Browser, tmp_path: Path) -> None:
    root = write_archive(tmp_path / "data")
    tags = ["wall", XSS_TAG]
    opened = OfflinePage(browser, report_file(root, tmp_path / "report.html", *tags))
    try:
        check_charts(opened, root, tags)
        assert opened.page.locator("h2").all_inner_texts() == ["#wall", f"#{XSS_TAG}"]
        assert opened.dialogs == []
        assert opened.attempted == []
        assert opened.problems == []
        assert opened.page.locator("figure[data-source='activity'] rect.bar").count() == 2
        assert opened.page.title() == f"How #wall, #{XSS_TAG} grew · tagarchive"
    finally:
        opened.close()
