"""Archive retention: explicit, by age and size, oldest first, with a dry run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.cli.archive import parse_size
from crawler.cli.main import main
from storage.archive import prune

TODAY = datetime(2026, 11, 23, tzinfo=UTC)


def make_archive(root: Path) -> dict[str, Path]:
    files = {}
    for day in ("2026-08-01", "2026-11-01", "2026-11-22"):
        for platform in ("tiktok", "mastodon"):
            path = root / "archive" / f"platform={platform}" / f"date={day}" / f"r-{day}.warc.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 1000)
            files[f"{platform}/{day}"] = path
    return files


def test_prune_by_age_removes_only_older_days(tmp_path: Path) -> None:
    files = make_archive(tmp_path)
    report = prune(tmp_path, max_age_days=30, today=TODAY)
    assert sorted(p.name for p in report.removed) == ["r-2026-08-01.warc.gz"] * 2
    assert not files["tiktok/2026-08-01"].exists()
    assert not files["tiktok/2026-08-01"].parent.exists()  # empty day directory removed
    assert files["tiktok/2026-11-01"].exists()
    assert files["mastodon/2026-11-22"].exists()
    assert report.kept_files == 4
    assert report.removed_bytes == 2000


def test_prune_by_size_keeps_the_newest(tmp_path: Path) -> None:
    files = make_archive(tmp_path)
    report = prune(tmp_path, max_bytes=2500, today=TODAY)
    assert report.kept_bytes <= 2500
    assert report.kept_files == 2
    assert files["tiktok/2026-11-22"].exists()
    assert files["mastodon/2026-11-22"].exists()


def test_dry_run_deletes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = make_archive(tmp_path)
    assert main(["archive", "prune", "--root", str(tmp_path), "--max-size", "2K",
                 "--dry-run"]) == 0
    assert "would remove 4 WARC files" in capsys.readouterr().out
    assert all(p.exists() for p in files.values())


def test_prune_needs_a_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "prune", "--root", str(tmp_path)]) == 2
    assert "needs --max-age, --max-size or both" in capsys.readouterr().err
    assert main(["archive", "prune", "--root", str(tmp_path), "--max-size", "lots"]) == 2


def test_sizes() -> None:
    assert parse_size("500M") == 500 * 1024**2
    assert parse_size("1.5G") == int(1.5 * 1024**3)
    assert parse_size("2048") == 2048
