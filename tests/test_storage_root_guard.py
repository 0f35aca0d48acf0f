"""Nothing tagarchive writes or deletes leaves the output root: `.tagarchive` and what is under it
must be real directories, and symlinked dataset, partition and archive folders are refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from crawler.cli.main import main
from storage.errors import StorageError, UnsafePathError
from tests.compact_helpers import data_files, hours, publish, rows, snapshot, tree


def archive(root: Path) -> set[str]:
    """Three files in one past partition: something for compaction to do."""
    for run, moment in enumerate(hours(3), start=1):
        publish(root, run, "snapshots", [snapshot("a", moment, views=run)])
    return data_files(root)


def outside_with_files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_bytes(b"someone else's file")
    (outside / "job-dir").mkdir()
    (outside / "job-dir" / "job.json").write_bytes(b'{"partition": "platform=x/date=2026-01-10"}')
    return outside, snapshot_of(outside)


def snapshot_of(directory: Path) -> dict[str, bytes]:
    return {path: (directory / path).read_bytes() for path in tree(directory)}


def compact_cli(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["compact", "--root", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


# --- the guard itself ---------------------------------------------------------------------------


def test_state_paths_must_be_real_directories_of_the_root(tmp_path: Path) -> None:
    from storage.paths import ensure_state_path, state_path

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    assert state_path(root, "compact", "snapshots") == root / ".tagarchive/compact/snapshots"
    (root / ".tagarchive/compact").mkdir(parents=True)
    assert ensure_state_path(root, root / ".tagarchive/compact/x") == root / ".tagarchive/compact/x"
    for bad in ("..", ".", ""):
        with pytest.raises(UnsafePathError):
            state_path(root, "compact", bad, "x")
    with pytest.raises(UnsafePathError, match="not under"):
        ensure_state_path(root, root / "snapshots")
    # a link at any level, even one pointing inside the root
    (root / ".tagarchive/compact/snapshots").symlink_to(root, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        state_path(root, "compact", "snapshots", "job")
    (root / ".tagarchive/compact").rename(tmp_path / "old")
    (root / ".tagarchive/compact").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        state_path(root, "compact")


def test_a_root_that_is_itself_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    archive(tmp_path / "link")
    assert main(["compact", "--root", str(tmp_path / "link")]) == 0
    assert len(data_files(real)) == 1


# --- compaction ---------------------------------------------------------------------------------


def test_a_symlinked_compact_scratch_is_refused_and_what_it_points_at_is_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    files = archive(root)
    outside, before = outside_with_files(tmp_path)
    (root / ".tagarchive").mkdir()
    (root / ".tagarchive/compact").symlink_to(outside, target_is_directory=True)

    code, out, err = compact_cli(root, capsys)

    assert code == 3
    (line,) = err.splitlines()
    assert line.startswith("tagarchive: error: refusing ")
    assert "symbolic link" in line
    assert "leftover" not in out
    assert snapshot_of(outside) == before
    assert data_files(root) == files


def test_a_symlinked_dataset_scratch_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    files = archive(root)
    outside, before = outside_with_files(tmp_path)
    (root / ".tagarchive/compact").mkdir(parents=True)
    (root / ".tagarchive/compact/snapshots").symlink_to(outside, target_is_directory=True)
    code, _, err = compact_cli(root, capsys)
    assert code == 3
    assert len(err.splitlines()) == 1
    assert snapshot_of(outside) == before
    assert data_files(root) == files


def test_a_scratch_pointing_into_the_root_itself_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # inside the root, but compaction would take the dataset's folders for leftover jobs
    root = tmp_path / "root"
    files = archive(root)
    expected = rows(root, "snapshots")
    (root / ".tagarchive/compact").mkdir(parents=True)
    (root / ".tagarchive/compact/snapshots").symlink_to(root / "snapshots",
                                                        target_is_directory=True)
    code, _, _ = compact_cli(root, capsys)
    assert code == 3
    assert data_files(root) == files
    assert rows(root, "snapshots") == expected


def test_a_symlinked_job_is_unlinked_never_followed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    archive(root)
    outside, before = outside_with_files(tmp_path)
    scratch = root / ".tagarchive/compact/snapshots"
    scratch.mkdir(parents=True)
    (scratch / "20260110T000000Z-00000000-00001").symlink_to(outside / "job-dir",
                                                            target_is_directory=True)
    code, _, _ = compact_cli(root, capsys)
    assert code == 0
    assert list(scratch.iterdir()) == []  # the link went
    assert snapshot_of(outside) == before  # not what it pointed at
    assert len(data_files(root)) == 1


def test_a_symlinked_state_directory_is_refused_and_nothing_is_written_outside(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    files = archive(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".tagarchive").symlink_to(outside, target_is_directory=True)

    code, _, err = compact_cli(root, capsys)

    assert code == 3
    (line,) = err.splitlines()
    assert "symbolic link" in line
    assert str(root / ".tagarchive") in line
    assert tree(outside) == set()
    assert list(outside.iterdir()) == []
    assert data_files(root) == files


def test_a_symlinked_quarantine_is_refused_before_anything_moves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    files = archive(root)
    bad = root / "snapshots/platform=tiktok/date=2026-01-10/part-empty.parquet"
    bad.write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".tagarchive").mkdir()
    (root / ".tagarchive/quarantine").symlink_to(outside, target_is_directory=True)
    code, _, _ = compact_cli(root, capsys)
    assert code == 3
    assert list(outside.iterdir()) == []
    assert bad.exists()
    assert data_files(root) == files | {bad.relative_to(root).as_posix()}


def test_a_symlinked_dataset_folder_leading_out_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    archive(elsewhere)
    outside = elsewhere / "snapshots"
    before = snapshot_of(outside)
    root = tmp_path / "root"
    root.mkdir()
    (root / "snapshots").symlink_to(outside, target_is_directory=True)
    code, _, err = compact_cli(root, capsys)
    assert code == 3
    assert "outside the output root" in err
    assert len(err.splitlines()) == 1
    assert snapshot_of(outside) == before
    assert not (root / ".tagarchive").exists()


def test_a_symlinked_partition_folder_is_left_alone_and_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    archive(elsewhere)
    outside = elsewhere / "snapshots/platform=tiktok"
    before = snapshot_of(outside)
    root = tmp_path / "root"
    (root / "snapshots").mkdir(parents=True)
    (root / "snapshots/platform=tiktok").symlink_to(outside, target_is_directory=True)
    code, _, err = compact_cli(root, capsys)
    assert code == 3
    (line,) = err.splitlines()
    assert line.startswith("tagarchive: error: snapshots platform=tiktok: is a symbolic link")
    assert snapshot_of(outside) == before


# --- backfill, the demo, archive prune ----------------------------------------------------------


def test_backfill_refuses_a_symlinked_state_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.platforms.timeline import Window
    from crawler.spiders.walks import WalkStore

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / ".tagarchive").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        WalkStore(root, "mastodon", "python", Window(date(2025, 1, 1), date(2025, 1, 3)))

    code = main(["backfill", "mastodon", "python", "--since", "2025-01-01", "--until",
                 "2025-01-03", "--out", str(root), "--replica", "http://127.0.0.1:9", "--quiet"])

    err = capsys.readouterr().err
    assert code == 3
    (line,) = err.splitlines()
    assert "symbolic link" in line
    assert list(outside.iterdir()) == []


def test_backfill_refuses_a_symlinked_walk_folder(tmp_path: Path) -> None:
    from crawler.platforms.timeline import Window
    from crawler.spiders.walks import WalkStore

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / ".tagarchive/backfill").mkdir(parents=True)
    outside.mkdir()
    (root / ".tagarchive/backfill/mastodon").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        WalkStore(root, "mastodon", "python", Window(date(2025, 1, 1), date(2025, 1, 3)))


def test_the_demo_cookie_jar_stays_in_the_root(tmp_path: Path) -> None:
    from crawler.services.demo import DEMO_COOKIES, _cookie_jar

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / ".tagarchive").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link"):
        _cookie_jar(str(root))
    assert list(outside.iterdir()) == []

    (root / ".tagarchive").unlink()
    (root / ".tagarchive").mkdir()
    target = outside / "precious.txt"
    target.write_text("keep me")
    (root / ".tagarchive/demo-cookies.txt").symlink_to(target)
    with pytest.raises(StorageError, match="symbolic link"):
        _cookie_jar(str(root))
    assert target.read_text() == "keep me"

    (root / ".tagarchive/demo-cookies.txt").unlink()
    jar = _cookie_jar(str(root))
    assert jar == root / ".tagarchive/demo-cookies.txt"
    assert jar.read_text() == DEMO_COOKIES


def test_the_demo_refusing_its_root_is_exit_3_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import crawler.services.demo as demo

    def refused(**_kwargs: object) -> int:
        raise StorageError(f"{tmp_path}/.tagarchive is a symbolic link")

    monkeypatch.setattr(demo, "run_demo", refused)
    assert main(["demo", "--out", str(tmp_path)]) == 3
    message = f"{tmp_path}/.tagarchive is a symbolic link"
    assert capsys.readouterr().err == f"tagarchive: error: {message}\n"


def test_archive_prune_refuses_a_symlinked_archive_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    day = outside / "platform=tiktok/date=2020-01-01"
    day.mkdir(parents=True)
    (day / "r-0001.warc.gz").write_bytes(b"x" * 100)
    (day / ".r-0002.warc.gz.tmp").write_bytes(b"x" * 100)
    root.mkdir()
    (root / "archive").symlink_to(outside, target_is_directory=True)
    before = snapshot_of(outside)
    code = main(["archive", "prune", "--root", str(root), "--max-age", "1d"])
    err = capsys.readouterr().err
    assert code == 3
    assert "outside the output root" in err
    assert len(err.splitlines()) == 1
    assert snapshot_of(outside) == before

    (root / "archive").unlink()
    (root / "archive").mkdir()
    (root / "archive/platform=tiktok").symlink_to(outside / "platform=tiktok",
                                                  target_is_directory=True)
    assert main(["archive", "prune", "--root", str(root), "--max-age", "1d"]) == 3
    assert snapshot_of(outside) == before
