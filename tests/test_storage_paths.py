"""Output paths: sanitized partition values, root containment, run ids."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import (
    SchemaError,
    UnsafePathError,
    check_partition_value,
    new_run_id,
    partition_path,
    safe_partition_value,
    utc_day,
)


@pytest.mark.parametrize(
    "value",
    ["tiktok", "xiaohongshu", "x.com", "bluesky-social", "2026-01-23", "a", "A_b-9", "v" * 64],
)
def test_safe_values_pass_unchanged(value: str) -> None:
    assert safe_partition_value(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        "../../x",
        "..\\..\\x",
        "a/b",
        "/etc",
        "%2F",
        "a%2Fb",
        "\x00",
        "tiktok\x00",
        "x" * 65,
        "x" * 300,
        "C:\\x",
        "C:",
        ".hidden",
        "trailing.",
        "with space",
        "tik\ntok",
        "tiktok\n",
        "日本語",
        "ｔｉｋｔｏｋ",  # full-width letters: look ASCII, are not
        "k=v",
        "a*b",
        "~",
    ],
)
def test_hostile_values_are_rejected_not_fixed(value: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_partition_value(value)


@pytest.mark.parametrize("value", [None, 7, b"tiktok", Path("tiktok")])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(UnsafePathError):
        safe_partition_value(value)  # type: ignore[arg-type]


def test_unsafe_error_is_a_value_error_with_one_line() -> None:
    with pytest.raises(ValueError) as info:
        safe_partition_value("x" * 300 + "\n")
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "20260123", "tiktok", "2026-1-1"])
def test_date_partition_must_be_a_real_iso_day(value: str) -> None:
    with pytest.raises(UnsafePathError):
        check_partition_value("date", value)
    assert check_partition_value("date", "2024-02-29") == "2024-02-29"


def test_partition_path_layout(tmp_path: Path) -> None:
    path = partition_path(tmp_path, "snapshots", {"date": "2026-01-23", "platform": "tiktok"})
    assert path == tmp_path / "snapshots" / "platform=tiktok" / "date=2026-01-23"
    assert partition_path(tmp_path, "runs", {"date": "2026-01-23"}) == (
        tmp_path / "runs" / "date=2026-01-23"
    )
    assert not path.exists()  # building a path creates nothing


def test_partition_path_checks_dataset_and_keys(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="unknown dataset"):
        partition_path(tmp_path, "../snapshots", {"platform": "x", "date": "2026-01-01"})
    with pytest.raises(SchemaError, match="partitioned by"):
        partition_path(tmp_path, "runs", {"platform": "x", "date": "2026-01-01"})
    with pytest.raises(SchemaError, match="partitioned by"):
        partition_path(tmp_path, "snapshots", {"date": "2026-01-01"})
    with pytest.raises(UnsafePathError):
        partition_path(tmp_path, "snapshots", {"platform": "../../x", "date": "2026-01-01"})


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "snapshots").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the output root"):
        partition_path(root, "snapshots", {"platform": "tiktok", "date": "2026-01-23"})
    # A symlink deeper down is caught too.
    (root / "posts").mkdir()
    (root / "posts" / "platform=tiktok").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        partition_path(root, "posts", {"platform": "tiktok", "date": "2026-01-23"})


def test_root_that_is_itself_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    path = partition_path(link, "snapshots", {"platform": "tiktok", "date": "2026-01-23"})
    assert path == link / "snapshots" / "platform=tiktok" / "date=2026-01-23"


@settings(
    max_examples=400,
    deadline=None,
    database=None,  # write nothing outside tmp_path
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=st.text(max_size=80) | st.sampled_from(["..", ".", "../x", "a/../..", "%2e%2e"]))
def test_any_text_is_rejected_or_stays_inside_root(tmp_path: Path, value: str) -> None:
    try:
        safe = safe_partition_value(value)
    except UnsafePathError:
        return
    assert safe == value  # accepted values are never altered
    assert os.sep not in safe
    assert "/" not in safe
    assert safe not in (".", "..")
    path = partition_path(tmp_path, "snapshots", {"platform": safe, "date": "2026-01-23"})
    real_root = os.path.realpath(tmp_path)
    assert os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
    assert os.path.normpath(path).startswith(str(tmp_path / "snapshots") + os.sep)


def test_new_run_id_format_and_uniqueness() -> None:
    now = datetime(2026, 1, 23, 15, 5, 1, tzinfo=timezone(timedelta(hours=1)))
    run_id = new_run_id(now)
    assert re.fullmatch(r"20260123T140501Z-[0-9a-f]{8}", run_id)
    assert safe_partition_value(run_id) == run_id
    assert len({new_run_id() for _ in range(2000)}) == 2000
    with pytest.raises(ValueError, match="naive"):
        new_run_id(datetime(2026, 1, 23))


def test_utc_day_uses_the_utc_calendar() -> None:
    late_in_shanghai = datetime(2026, 1, 24, 2, 0, tzinfo=timezone(timedelta(hours=8)))
    assert utc_day(late_in_shanghai) == "2026-01-23"
    assert utc_day(datetime(2026, 1, 23, 23, 59, 59, tzinfo=UTC)) == "2026-01-23"
    with pytest.raises(ValueError):
        utc_day(datetime(2026, 1, 23))
