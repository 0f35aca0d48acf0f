"""The notebook API (storage.analysis) on a small archive written here with known answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from crawler.text.tags import normalize_tag
from storage import (
    ArchiveNotFoundError,
    DatasetWriter,
    SchemaError,
    UnsupportedRootError,
    fold_tag,
    open_archive,
    utc_day,
)
from storage.analysis import find_gaps

T0 = datetime(2025, 1, 14, tzinfo=UTC)
HOUR = timedelta(hours=1)
RUN_OK = "20250114T000000Z-aaaaaaaa"
RUN_FAILED = "20250114T120000Z-bbbbbbbb"
XSS_TAG = "<script>alert(1)</script>\"'&"
# tiktok "wall": hourly, then ten hours of silence; the silence is the one gap.
TIKTOK_WALL = [(0, 500_000), (1, 900_000), (2, 2_000_000), (3, 12_000_000), (13, 150_000_000)]
# xiaohongshu "wall": already above 100M when first seen, the first value parsed from "1.2亿".
XHS_WALL = [(0.5, 120_000_000, "1.2亿"), (2.5, 130_000_002, None)]


def snapshot(platform: str, tag: str, hours: float, views: int | None, *,
             text: str | None = None, discussions: int | None = None) -> dict[str, Any]:
    observed = T0 + hours * HOUR
    return {"platform": platform, "date": utc_day(observed), "tag": tag, "tag_display": tag,
            "observed_at": observed, "views": views, "views_text": text,
            "views_approx": text is not None, "discussions": discussions,
            "source": "rendered_dom" if text else "api"}


def write_archive(root: Path) -> Path:
    """A two-platform archive with a gap, an approximate value, activity, a reject, a failed
    run, and a tag that is an XSS attempt."""
    with DatasetWriter(root, RUN_OK) as writer:
        for hours, views in TIKTOK_WALL:
            writer.add("snapshots", snapshot("tiktok", "wall", hours, views))
        for hours, views, text in XHS_WALL:
            writer.add("snapshots", snapshot("xiaohongshu", "wall", hours, views, text=text,
                                             discussions=views // 40))
        writer.add("snapshots", snapshot("tiktok", XSS_TAG, 1, 42))
        writer.add("snapshots", snapshot("tiktok", XSS_TAG, 2, 4_200))
        for day, posts, coverage, seen in ((date(2025, 1, 12), 10, "complete", 0),
                                           (date(2025, 1, 13), 100, "lower_bound", 0),
                                           (date(2025, 1, 13), 120, "lower_bound", 1)):
            writer.add("activity", {"platform": "tiktok", "date": day.isoformat(), "tag": "wall",
                                    "day": day, "posts": posts, "participants": posts // 2,
                                    "coverage": coverage, "source": "api",
                                    "observed_at": T0 + seen * HOUR})
        writer.add("rejects", {"date": "2025-01-14", "rejected_at": T0 + 2 * HOUR,
                               "platform": "tiktok", "item_type": "snapshot", "tag": "wall",
                               "reasons": ["views: negative (-5)"], "raw": "{}"})
        writer.add("runs", run_row(RUN_OK, 0, "ok", "stored"))
    with DatasetWriter(root, RUN_FAILED) as writer:
        writer.add("runs", run_row(RUN_FAILED, 12, "failed", "not_found"))
    return root


def run_row(run_id: str, hours: float, verdict: str, status: str) -> dict[str, Any]:
    started = T0 + hours * HOUR
    return {"date": utc_day(started), "run_id": run_id, "command": "crawl", "argv": [],
            "platforms": ["tiktok"], "tags": ["wall"], "started_at": started,
            "finished_at": started + timedelta(seconds=30), "duration_s": 30.0,
            "snapshots": 1, "posts": 0, "activity": 0, "rejects": 0, "requests": 1,
            "rendered_requests": 0, "errors": 0 if verdict == "ok" else 2,
            "outcomes": [{"platform": "tiktok", "tag": "wall", "status": status,
                          "detail": "" if status == "stored" else "tag page says 404"}],
            "verdict": verdict, "exit_code": 0 if verdict == "ok" else 1}


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("analysis") / "data")


def test_roots_that_hold_no_archive_say_so(tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotFoundError, match="not a directory"):
        open_archive(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="none of snapshots/"):
        open_archive(tmp_path)  # exists, but is not an archive: a --root one level too high
    with pytest.raises(UnsupportedRootError, match="gs://"):  # s3:// is read: docs/s3.md
        open_archive("gs://bucket/data")
    (tmp_path / "runs").mkdir()
    with open_archive(tmp_path) as archive:  # a fresh root with one empty dataset is fine
        assert archive.sql("select count(*) from snapshots").fetchall() == [(0,)]


def test_frames_keep_the_archive_types(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        frame = archive.pandas("snapshots")
        # posts is null everywhere and views_text mostly: nullable dtypes, never float64/object
        assert str(frame["views"].dtype) == "Int64" and str(frame["posts"].dtype) == "Int64"
        assert str(frame["views_approx"].dtype) == "boolean"
        assert str(frame["observed_at"].dtype) == "datetime64[us, UTC]"
        total = sum(v for _h, v in TIKTOK_WALL) + sum(v for _h, v, _t in XHS_WALL) + 42 + 4_200
        assert frame["posts"].isna().all() and frame["views"].sum() == total
        polars_frame = archive.polars("snapshots")
        assert polars_frame.schema["views"] == pl.Int64
        assert polars_frame.schema["date"] == pl.Date
        lazy = archive.scan("snapshots").filter(pl.col("platform") == "xiaohongshu").collect()
        assert lazy.schema["date"] == pl.Date and lazy["views"].to_list() == [
            120_000_000, 130_000_002]
        relation = archive.series("wall", platforms=["tiktok"])
        assert isinstance(archive.pandas(relation), pd.DataFrame)
        assert archive.arrow(relation).num_rows == len(TIKTOK_WALL)
        with pytest.raises(SchemaError, match="unknown dataset"):
            archive.relation("snapshot")


@pytest.mark.parametrize("raw", [" #TikTok难民 ", "ＴｉｋＴｏｋ难民", "#Straße", "rednote"])
def test_tag_lookup_folds_like_the_crawler(raw: str) -> None:
    assert fold_tag(raw) == normalize_tag(raw)


def test_series_windows_and_latest(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        rows = archive.series("#WALL", since=T0 + HOUR, until=T0 + 3 * HOUR).fetchall()
        assert [(r[0], r[4]) for r in rows] == [("tiktok", 900_000), ("tiktok", 2_000_000),
                                                ("xiaohongshu", 130_000_002)]
        latest = archive.latest("wall").select("platform, views, views_approx").fetchall()
        assert latest == [("tiktok", 150_000_000, False), ("xiaohongshu", 130_000_002, False)]


def test_milestones_bracket_each_crossing(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        rows = archive.arrow(archive.milestones("wall")).to_pylist()
    found = {(r["platform"], r["threshold"]): r for r in rows}
    one_m = found[("tiktok", 1_000_000)]
    assert (one_m["previous_value"], one_m["value"]) == (900_000, 2_000_000)
    assert (one_m["previous_at"], one_m["crossed_at"]) == (T0 + HOUR, T0 + 2 * HOUR)
    assert not one_m["before_first"]
    assert found[("tiktok", 10_000_000)]["value"] == 12_000_000
    assert found[("tiktok", 100_000_000)]["crossed_at"] == T0 + 13 * HOUR
    for threshold in (1_000_000, 10_000_000, 100_000_000):
        first = found[("xiaohongshu", threshold)]
        assert first["before_first"] and first["previous_at"] is None
        assert first["crossed_at"] == T0 + 0.5 * HOUR
    assert len(rows) == 6


def test_growth_per_hour_and_day(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        hourly = archive.growth("wall", every="hour", platforms=["tiktok"]).select(
            "bucket, growth, buckets_spanned").fetchall()
        daily = archive.growth("wall", every="day").select("platform, growth").fetchall()
        with pytest.raises(ValueError, match="every must be"):
            archive.growth("wall", every="week")
    assert hourly == [
        (T0, 0, 1),  # a single observation: nothing seen growing yet
        (T0 + HOUR, 400_000, 1),
        (T0 + 2 * HOUR, 1_100_000, 1),
        (T0 + 3 * HOUR, 10_000_000, 1),
        (T0 + 13 * HOUR, 138_000_000, 10),  # the rise over the silent hours, flagged
    ]
    assert daily == [("tiktok", 149_500_000), ("xiaohongshu", 10_000_002)]


def test_activity_keeps_the_latest_observation_of_a_day(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        rows = archive.activity("wall").select("day, posts, coverage").fetchall()
        assert rows == [(date(2025, 1, 12), 10, "complete"),
                        (date(2025, 1, 13), 120, "lower_bound")]
        assert archive.activity("wall", since=date(2025, 1, 13)).fetchall()[0][1] == date(
            2025, 1, 13)


def test_quality_names_gaps_failures_rejects_and_runs(archive_root: Path) -> None:
    with open_archive(archive_root) as archive:
        quality = archive.quality("wall")
        clean = archive.quality(XSS_TAG)
    [gap] = quality.gaps
    assert (gap.platform, gap.after, gap.before, gap.usual) == (
        "tiktok", T0 + 3 * HOUR, T0 + 13 * HOUR, HOUR)
    assert [(f["run_id"], f["status"]) for f in quality.failed] == [(RUN_FAILED, "not_found")]
    assert [r["run_id"] for r in quality.unhealthy_runs] == [RUN_FAILED]
    assert [r["reasons"] for r in quality.rejects] == [["views: negative (-5)"]]
    assert not (clean.gaps or clean.failed or clean.unhealthy_runs or clean.rejects)


def test_gaps_need_a_schedule_to_compare_with() -> None:
    moments = [T0, T0 + HOUR, T0 + 20 * HOUR]
    assert find_gaps("tiktok", moments) == []  # two intervals say nothing about the cadence
    assert find_gaps("tiktok", [T0] * 5) == []
