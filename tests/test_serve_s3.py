"""`tagarchive serve` over an S3 root (moto on loopback): the index and a tag page load in
Chromium, the charts hold the Parquet's points, and the SQL box reads the same views."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser

from storage import open_dataset
from tests.analysis_helpers import write_archive
from tests.s3_helpers import S3Bucket
from tests.serve_helpers import browser, start_serve, visit  # noqa: F401
from tests.test_report_browser import CHARTS_JS, expected_points


def test_index_tag_page_and_sql_over_an_s3_root(
        browser: Browser, s3_server: S3Bucket, tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    root = s3_server.url
    write_archive(root)  # the writer takes an s3:// root as well
    snapshots = open_dataset(root, "snapshots").to_table().to_pylist()
    server = start_serve("--root", root, "--refresh", "0.5", cwd=tmp_path_factory.mktemp("s3"),
                         env=s3_server.env)
    seen = visit(browser, server)
    try:
        seen.page.goto(server.url)
        listed = seen.page.eval_on_selector_all("table.tags tr[data-tag]",
                                                "rows => rows.map(r => r.dataset.tag)")
        assert sorted(listed) == sorted({r["tag"] for r in snapshots})
        seen.page.click("table.tags a[href='/tag/wall']")
        seen.page.wait_for_url(server.origin + "/tag/wall")
        charts = seen.page.evaluate(CHARTS_JS)
        assert {"views-linear", "growth-hour"} <= {c["chart"] for c in charts}
        for chart in charts:
            got = {(p, x, int(v)) for p, x, v in chart["points"]}
            assert got == expected_points(root, "wall", chart), chart["chart"]

        seen.page.goto(server.origin + "/sql?" + urlencode(
            {"q": "select count(*) from snapshots where tag = 'wall'"}))
        cells = seen.page.eval_on_selector_all("table.result tbody td", "cs => cs.map(c => "
                                               "c.textContent)")
        assert cells == [str(sum(1 for r in snapshots if r["tag"] == "wall"))]
        assert seen.refused == []
        assert all(url.startswith(server.origin + "/") for url in seen.requests)
        assert seen.problems == []
    finally:
        seen.close()
        server.stop()
