"""`tagarchive serve` in real headless Chromium: pages from the server only, charts that hold the
Parquet's points, a snapshot showing up without a reload, and the SQL box.

Expected values are read from the Parquet with pyarrow (tests/test_report_browser.py's
`expected_points`, the report test's own reading), never from the server.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser

from crawler.serve.pages import tag_href
from storage import DatasetWriter, open_dataset
from tests.analysis_helpers import XSS_TAG, snapshot, write_archive
from tests.serve_helpers import Served, Visit, browser, start_serve, visit  # noqa: F401
from tests.test_report_browser import CHARTS_JS, expected_points
from tests.wait_helpers import wait_until

SQL_ROWS, CSV_ROWS, SQL_TIMEOUT = 50, 120, 3
LIVE = "live"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_archive(tmp_path_factory.mktemp("serve") / "data")
    with DatasetWriter(data, "20250114T000000Z-cccccccc") as writer:
        for hours, views in ((0, 1_000), (1, 2_000)):
            writer.add("snapshots", snapshot("tiktok", LIVE, hours, views))
    return data


@pytest.fixture(scope="module")
def served(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve("--root", str(root), "--refresh", "0.3",
                         "--sql-timeout", str(SQL_TIMEOUT), "--sql-rows", str(SQL_ROWS),
                         "--csv-rows", str(CSV_ROWS), cwd=tmp_path_factory.mktemp("serve-cwd"))
    yield server
    server.stop()


@pytest.fixture
def seen(browser: Browser, served: Served) -> Iterator[Visit]:  # noqa: F811
    opened = visit(browser, served)
    yield opened
    opened.close()
    # nothing left this origin, and nothing the CSP refused (a refusal is a console error)
    assert opened.refused == []
    assert all(url.startswith(served.origin + "/") for url in opened.requests), opened.requests
    assert opened.problems == []
    assert opened.dialogs == []


def snapshot_rows(root: Path) -> list[dict[str, Any]]:
    return open_dataset(root, "snapshots").to_table().to_pylist()


def check_charts(seen: Visit, root: Path, tag: str) -> list[dict[str, Any]]:
    charts: list[dict[str, Any]] = seen.page.evaluate(CHARTS_JS)
    assert charts, "no chart on the page"
    for chart in charts:
        assert chart["tag"] == tag
        got = {(p, x, int(v)) for p, x, v in chart["points"]}
        assert len(got) == len(chart["points"]), f"{chart['chart']}: a point drawn twice"
        assert got == expected_points(root, tag, chart), chart["chart"]
        assert chart["height"] > 100, f"{chart['chart']} is not laid out"
    return charts


def test_index_and_tag_pages_come_from_the_server_and_hold_the_parquet(
        seen: Visit, served: Served, root: Path) -> None:
    response = seen.page.goto(served.url)
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    listed = seen.page.eval_on_selector_all("table.tags tr[data-tag]",
                                            "rows => rows.map(r => r.dataset.tag)")
    assert sorted(listed) == sorted({r["tag"] for r in snapshot_rows(root)})
    alerts = seen.page.get_attribute("section.alerts [data-alerts]", "data-alerts")
    assert alerts == "none"  # the archive has no alerts dataset

    seen.page.click("table.tags a[href='/tag/wall']")
    seen.page.wait_for_url(served.origin + "/tag/wall")
    charts = check_charts(seen, root, "wall")
    assert {"views-linear", "views-log", "growth-hour", "growth-day", "posts-per-day"} <= \
        {c["chart"] for c in charts}
    platforms = {p for c in charts for p, _x, _v in c["points"]}
    assert platforms == {r["platform"] for r in snapshot_rows(root) if r["tag"] == "wall"}
    # each card's colour, which the CSP lets through only by the script's CSSOM route
    cards = seen.page.eval_on_selector_all(
        ".card", "cs => cs.map(c => [c.dataset.style, getComputedStyle(c).borderTopColor])")
    assert len(cards) == 2
    for style, computed in cards:
        red, green, blue = (int(style.split("#")[1][i:i + 2], 16) for i in (0, 2, 4))
        assert computed == f"rgb({red}, {green}, {blue})"

    seen.page.goto(served.origin + tag_href(XSS_TAG))
    assert seen.page.locator("h2").all_inner_texts() == [f"#{XSS_TAG}"]
    check_charts(seen, root, XSS_TAG)
    assert seen.page.title() == f"#{XSS_TAG} · tagarchive"


def test_a_snapshot_written_while_the_page_is_open_appears_without_a_reload(
        seen: Visit, served: Served, root: Path) -> None:
    seen.page.goto(served.origin + f"/tag/{LIVE}")
    tiktok_views = ("() => [...document.querySelectorAll('figure[data-chart=\"views-linear\"] "
                    "[data-platform=\"tiktok\"][data-v]')].map(e => [e.dataset.x, e.dataset.v])")
    before = seen.page.evaluate(tiktok_views)
    assert len(before) == 2
    seen.page.evaluate("() => { window.tagarchiveTestMark = 'same page' }")

    with DatasetWriter(root, "20250114T020000Z-dddddddd") as writer:
        writer.add("snapshots", snapshot("tiktok", LIVE, 2, 3_500_000))
    after = wait_until(lambda: (points := seen.page.evaluate(tiktok_views)) and
                       len(points) == 3 and points, timeout=60,
                       what="the new snapshot to be drawn")
    assert ["2025-01-14T02:00:00+00:00", "3500000"] in after
    assert seen.page.evaluate("() => window.tagarchiveTestMark") == "same page"
    assert seen.navigations == [served.origin + f"/tag/{LIVE}"]
    check_charts(seen, root, LIVE)  # every chart, not only the one waited on
    assert "3 snapshots" in seen.page.inner_text("#live-status")


def expected_errors(seen: Visit, count: int) -> None:
    """The browser logs each refused or stopped statement's 400: exactly `count` of them are
    expected, and taken off the problems the fixture checks."""
    answered = [p for p in seen.problems if "status of 400" in p]
    assert len(answered) == count
    seen.problems[:] = [p for p in seen.problems if p not in answered]


def result_rows(seen: Visit) -> list[list[str]]:
    rows: list[list[str]] = seen.page.eval_on_selector_all(
        "table.result tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    return rows


def test_sql_box_answers_a_select_and_downloads_it_as_csv(
        seen: Visit, served: Served, root: Path) -> None:
    sql = ("select platform, count(*) as snapshots, max(views) as top from snapshots "
           "where tag = 'wall' group by platform order by platform")
    expected: dict[str, list[int]] = defaultdict(list)
    for r in snapshot_rows(root):
        if r["tag"] == "wall" and r["views"] is not None:
            expected[r["platform"]].append(r["views"])
    want = [[p, str(len(v)), str(max(v))] for p, v in sorted(expected.items())]

    seen.page.goto(served.origin + "/sql")
    seen.page.fill("#q", sql)
    seen.page.click("#run")
    seen.page.wait_for_selector("#sql-summary")
    assert result_rows(seen) == want
    assert seen.page.get_attribute("#sql-summary", "data-truncated") == "false"

    with seen.page.expect_download() as download:
        seen.page.click("#csv")
    path = download.value.path()
    assert path is not None
    assert list(csv.reader(io.StringIO(Path(path).read_text("utf-8")))) == \
        [["platform", "snapshots", "top"], *want]


def test_sql_box_refuses_writes_even_hidden_after_a_select(
        seen: Visit, served: Served, root: Path) -> None:
    before = sorted(p for p in root.rglob("*"))
    for sql in ("insert into snapshots (tag) values ('x')",
                "copy (select * from snapshots) to 'leak.csv'",
                "attach 'leak.duckdb' as leak",
                "create table leak as select * from snapshots",
                "select 1; copy (select 1) to 'leak.csv'",
                "select count(*) from snapshots; drop view snapshots"):
        response = seen.page.goto(served.origin + "/sql?" + urlencode({"q": sql}))
        assert response is not None
        assert response.status == 400, sql
        assert seen.page.locator("#sql-error").count() == 1, sql
        assert seen.page.locator("table.result").count() == 0, sql
    assert sorted(p for p in root.rglob("*")) == before
    assert not list(root.parent.rglob("leak*"))
    expected_errors(seen, 6)
    seen.page.goto(served.origin + "/sql?" + urlencode({"q": "select count(*) from snapshots"}))
    assert result_rows(seen) == [[str(len(snapshot_rows(root)))]]


def test_sql_results_are_capped_and_a_slow_query_is_stopped(
        seen: Visit, served: Served) -> None:
    seen.page.goto(served.origin + "/sql?" + urlencode({"q": "select range as n from range(500)"}))
    assert result_rows(seen) == [[str(n)] for n in range(SQL_ROWS)]
    assert seen.page.get_attribute("#sql-summary", "data-truncated") == "true"
    assert f"The first {SQL_ROWS} rows are shown" in seen.page.inner_text("#sql-summary")
    status, headers, body = served.get("/sql.csv?" + urlencode({"q": "select range as n "
                                                                      "from range(500)"}))
    assert status == 200
    assert headers["x-tagarchive-truncated"] == "true"
    assert body.decode().splitlines() == ["n", *(str(n) for n in range(CSV_ROWS))]

    seen.page.goto(served.origin + "/sql")
    seen.page.fill("#q", "select sum(a.range * b.range) from range(1000000000) a, "
                         "range(100000) b")
    seen.page.click("#run")
    seen.page.wait_for_selector("#sql-error", timeout=60_000)
    assert re.search(rf"stopped after {SQL_TIMEOUT} s", seen.page.inner_text("#sql-error"))
    expected_errors(seen, 1)
    seen.page.goto(served.origin + "/sql?" + urlencode({"q": "select 42 as answer"}))
    assert result_rows(seen) == [["42"]]
