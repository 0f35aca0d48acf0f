"""The back-end map: a root's URI scheme picks its back-end (storage/backends/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import DatasetWriter, open_dataset
from storage.backends import SCHEMES, LocalBackend, S3Backend, backend_for, scheme_of
from storage.fs import BadRootError, S3Root
from tests.compact_helpers import DAY, snapshot


@pytest.mark.parametrize(("root", "scheme", "kind"), [
    ("data", "", LocalBackend),
    (Path("/srv/data"), "", LocalBackend),
    ("file:///srv/data", "file", LocalBackend),
    ("s3://bucket/prefix", "s3", S3Backend),
    ("S3://bucket", "s3", S3Backend),
    (S3Root("bucket", "p"), "s3", S3Backend),
    ("gs://bucket", "", LocalBackend),  # unknown schemes stay local paths, as they always were
    ("C:\\data", "", LocalBackend),
])
def test_the_scheme_picks_the_backend(root: object, scheme: str, kind: type) -> None:
    assert scheme_of(root) == scheme
    assert isinstance(backend_for(root), kind)
    assert backend_for(root) is SCHEMES[scheme]


def test_only_s3_is_remote() -> None:
    assert [name for name, b in SCHEMES.items() if b.remote] == ["s3"]


def test_a_file_url_is_the_directory_it_names(tmp_path: Path) -> None:
    local = backend_for(tmp_path.as_uri())
    assert local.location(tmp_path.as_uri()) == tmp_path
    with DatasetWriter(tmp_path, "20260110T000000Z-aaaaaaaa") as writer:
        writer.add_many("snapshots", [snapshot("a", DAY)])
    assert open_dataset(tmp_path.as_uri(), "snapshots").count_rows() == 1
    assert local.exists(tmp_path.as_uri(), "snapshots")
    assert not local.exists(tmp_path, "posts")
    (path, size), = local.list_files(tmp_path, "snapshots")
    assert path.endswith(".parquet")
    assert path.startswith(str(tmp_path / "snapshots"))
    assert size == Path(path).stat().st_size


def test_a_bad_s3_root_is_refused_by_its_backend() -> None:
    with pytest.raises(BadRootError):
        backend_for("s3://Bad_Bucket").location("s3://Bad_Bucket")
    assert backend_for("s3://bucket/p").url("s3://bucket/p/") == "s3://bucket/p"


def test_walk_state_of_an_s3_root_lives_in_a_local_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGARCHIVE_STATE_DIR", str(tmp_path))
    assert backend_for("s3://bucket/a/b").state_root("s3://bucket/a/b") == \
        str(tmp_path / "s3" / "bucket" / "a" / "b")
    assert backend_for("data/").state_root("data/") == "data/"  # a local root holds its own


def test_a_local_root_is_prepared_and_resolved(tmp_path: Path) -> None:
    from storage.analysis import resolve_root
    from storage.errors import ArchiveNotFoundError, StorageError

    local = backend_for(tmp_path)
    out = tmp_path / "new" / "root"
    assert local.prepare(str(out)) == str(out)
    assert out.is_dir()
    (tmp_path / "a-file").touch()
    with pytest.raises(StorageError, match="cannot create output root"):
        local.prepare(str(tmp_path / "a-file" / "below"))
    with pytest.raises(ArchiveNotFoundError, match="none of"):
        local.resolve(str(out))
    (out / "snapshots").mkdir()
    assert local.is_dir(out, "snapshots")
    assert not local.is_dir(out, "posts")
    assert resolve_root(out.as_uri()) == str(out)  # file:// is a local root


def test_a_local_shipper_publishes_in_place(tmp_path: Path) -> None:
    shipper = backend_for(tmp_path).shipper(tmp_path)
    assert shipper.scratch == tmp_path
    tmp, final = tmp_path / ".f.warc.gz.tmp", tmp_path / "f.warc.gz"
    tmp.write_bytes(b"x")
    shipper.seal(tmp, final)  # renamed while open
    assert final.read_bytes() == b"x"
    assert not tmp.exists()
    assert shipper.ship([(tmp, final)], []) == [final]


def test_an_s3_shipper_keeps_its_scratch_while_files_wait(tmp_path: Path) -> None:
    shipper = backend_for("s3://bucket/p").shipper("s3://bucket/p")
    try:
        assert shipper.scratch.is_dir()
        assert shipper.scratch != tmp_path
        waiting = shipper.scratch / "archive" / "f.warc.gz"
        shipper.hold([(waiting, waiting)])  # a later file failed to close: uploaded next time
        shipper.close()
        assert shipper.scratch.is_dir()
    finally:
        import shutil

        shutil.rmtree(shipper.scratch)


def test_compaction_and_pruning_take_a_file_url(tmp_path: Path) -> None:
    from storage.archive import prune
    from storage.compact import compact
    from tests.compact_helpers import NOW

    for run in (1, 2):
        with DatasetWriter(tmp_path, f"20260110T00000{run}Z-aaaaaaaa") as writer:
            writer.add_many("snapshots", [snapshot(f"t{run}", DAY)])
    report = compact(tmp_path.as_uri(), ["snapshots"], now=NOW)
    assert report.errors == []
    assert report.datasets["snapshots"].compacted == 1
    assert open_dataset(tmp_path, "snapshots").count_rows() == 2
    warc = tmp_path / "archive" / "platform=tiktok" / "date=2026-01-10" / "r-0001.warc.gz"
    warc.parent.mkdir(parents=True)
    warc.write_bytes(b"x")
    assert prune(tmp_path.as_uri(), max_bytes=0, dry_run=True).removed == [warc]


def test_every_backend_has_its_compaction() -> None:
    import storage.compact as compaction

    assert {b.name for b in SCHEMES.values()} == set(compaction._BY_BACKEND)
