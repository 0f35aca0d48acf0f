"""The notebook API (storage.analysis) on a small archive written here with known answers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from crawler.text.tags import normalize_tag
from storage import (
    ArchiveNotFoundError,
    SchemaError,
    UnsupportedRootError,
    fold_tag,
    open_archive,
)
from storage.analysis import find_gaps
from tests.analysis_helpers import (
    HOUR,
    RUN_FAILED,
    T0,
    TIKTOK_WALL,
    WALL_POSTS,
    XHS_WALL,
    XSS_TAG,
    write_archive,
)


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
        assert str(frame["views"].dtype) == "Int64"
        assert str(frame["posts"].dtype) == "Int64"
        assert frame["views_semantics"].tolist()[:1] in (["exact"], ["rounded"])
        assert str(frame["observed_at"].dtype) == "datetime64[us, UTC]"
        total = sum(v for _h, v in TIKTOK_WALL) + sum(v for _h, v, _t in XHS_WALL) + 42 + 4_200
        assert frame["posts"].isna().all()
        assert frame["views"].sum() == total
        polars_frame = archive.polars("snapshots")
        assert polars_frame.schema["views"] == pl.Int64
        assert polars_frame.schema["date"] == pl.Date
        lazy = archive.scan("snapshots").filter(pl.col("platform") == "xiaohongshu").collect()
        assert lazy.schema["date"] == pl.Date
        assert lazy["views"].to_list() == [
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
        latest = archive.latest("wall").select("platform, views, views_semantics").fetchall()
        assert latest == [("tiktok", 150_000_000, "exact"), ("xiaohongshu", 130_000_002, "exact")]


def test_languages_count_each_post_once_on_its_first_day(archive_root: Path) -> None:
    first: dict[tuple[str, str], tuple[float, str | None]] = {}
    for platform, post_id, hours, lang, _tags in WALL_POSTS:
        first.setdefault((platform, post_id), (hours, lang))
    counts: dict[tuple[str, object, str], int] = {}
    for (platform, _id), (hours, lang) in first.items():
        key = (platform, (T0 + hours * HOUR).date(), lang or "unknown")
        counts[key] = counts.get(key, 0) + 1
    with open_archive(archive_root) as archive:
        rows = archive.languages("#WALL").fetchall()
    assert {(p, d, lang): n for p, d, lang, n, _share in rows} == counts
    for platform, day, _lang, n, share in rows:
        day_total = sum(c for (p, d, _l), c in counts.items() if (p, d) == (platform, day))
        assert share == pytest.approx(n / day_total)


def test_co_tags_rank_the_tags_the_same_posts_carry(archive_root: Path) -> None:
    carriers: dict[tuple[str, str], set[str]] = {}
    for platform, post_id, _hours, _lang, tags in WALL_POSTS:
        for co_tag in tags:
            if co_tag != "wall":
                carriers.setdefault((platform, co_tag), set()).add(post_id)
    want = sorted(((p, t, len(ids)) for (p, t), ids in carriers.items()),
                  key=lambda r: (r[0], -r[2], r[1]))
    with open_archive(archive_root) as archive:
        assert archive.co_tags("wall").fetchall() == want
        assert archive.co_tags("wall", limit=1).fetchall() == [
            next(r for r in want if r[0] == p) for p in ("tiktok", "xiaohongshu")]


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
        assert first["before_first"]
        assert first["previous_at"] is None
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
    assert not (clean.gaps)
    assert not (clean.failed)
    assert not (clean.unhealthy_runs)
    assert not (clean.rejects)


def test_gaps_need_a_schedule_to_compare_with() -> None:
    moments = [T0, T0 + HOUR, T0 + 20 * HOUR]
    assert find_gaps("tiktok", moments) == []  # two intervals say nothing about the cadence
    assert find_gaps("tiktok", [T0] * 5) == []
