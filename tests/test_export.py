"""`tagarchive export`: a Data Package frictionless and py-wacz accept, byte-stable, confined to
--out, dehydrated on request. The input is a real crawl of the replica (Mastodon, two tags)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from jsonschema import Draft7Validator
from warcio.archiveiterator import ArchiveIterator

from replica.server import ReplicaServer
from storage import open_dataset
from storage.archivepick import check_archive_file
from storage.errors import UnsafePathError
from storage.schemas import SEMANTICS
from tests.crawl_helpers import FIXTURES, crawl, run_cli

BIN = Path(sys.executable).parent
TAGS = ("tiktokrefugee", "python")
# the commit recorded: fixed, as other commits may land in this clone between two exports
PINNED = {"TAGARCHIVE_GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567"}


@pytest.fixture(scope="module")
def crawled(replica_server: ReplicaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    replica_server.world.clear_variants()
    root = tmp_path_factory.mktemp("crawled")
    result = crawl(replica_server, root, "mastodon", *TAGS)
    assert result.code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def exported(crawled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "package"
    result = run_cli("export", "--root", str(crawled), "--out", str(out), "--wacz",
                     "--author", "Doe, Jane", "--title", "Two tags on Mastodon", env=PINNED)
    assert result.code == 0, result.stderr
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_frictionless_validates_the_package(exported: Path) -> None:
    done = subprocess.run([str(BIN / "frictionless"), "validate", "--json",
                           "datapackage.json"], cwd=exported, capture_output=True, text=True,
                          timeout=300)
    report = json.loads(done.stdout)
    assert report["valid"] is True, done.stdout[-3000:]
    assert done.returncode == 0


def test_every_file_has_its_sha256_and_size(exported: Path) -> None:
    package = json.loads((exported / "datapackage.json").read_text())
    listed = {r["path"]: r for r in package["resources"]}
    on_disk = set(files_of(exported)) - {"datapackage.json"}
    assert set(listed) == on_disk
    for path, resource in listed.items():
        assert resource["hash"] == "sha256:" + sha256(exported / path)
        assert resource["bytes"] == (exported / path).stat().st_size


def test_table_schemas_carry_types_descriptions_and_semantics(crawled: Path,
                                                             exported: Path) -> None:
    package = json.loads((exported / "datapackage.json").read_text())
    snapshots = next(r for r in package["resources"] if r["name"] == "snapshots")
    fields = {f["name"]: f for f in snapshots["schema"]["fields"]}
    assert fields["views"]["type"] == "integer"
    assert fields["observed_at"]["type"] == "datetime"
    assert fields["caveats"]["type"] == "array"
    assert fields["views_semantics"]["constraints"]["enum"] == list(SEMANTICS)
    # the meanings are docs/data.md's own words
    data_doc = (Path(__file__).parent.parent / "docs" / "data.md").read_text()
    assert "the window a `window` counter" in fields["window_start"]["description"]
    assert "the window a `window` counter" in data_doc
    assert "`exact`" in fields["posts_semantics"]["description"]
    assert set(package["tagarchive:counter_semantics"]) == set(SEMANTICS)
    # the mode the crawls' runs rows record (the default: pseudonymize)
    modes = {r["privacy"] for r in open_dataset(crawled, "runs").to_table().to_pylist()}
    assert package["tagarchive:privacy"]["mode"] == modes.pop()
    assert not modes


def test_sources_runs_and_tool_come_from_the_data(crawled: Path, exported: Path) -> None:
    package = json.loads((exported / "datapackage.json").read_text())
    run_ids = set(open_dataset(crawled, "runs").to_table()["run_id"].to_pylist())
    assert {r["run_id"] for r in package["tagarchive:runs"]} == run_ids
    assert {s["title"] for s in package["sources"]} == {f"mastodon #{t}" for t in TAGS}
    assert package["tagarchive:tool"]["git_commit"] == PINNED["TAGARCHIVE_GIT_COMMIT"]
    rows = pq.read_table(exported / "data" / "snapshots.parquet")
    assert sorted(rows["tag"].to_pylist()) == sorted(TAGS)


def test_citation_cff_is_valid_cff_1_2_0(exported: Path) -> None:
    schema = json.loads((FIXTURES / "cff" / "schema-1.2.0.json").read_text())
    citation = yaml.safe_load((exported / "CITATION.cff").read_text())
    errors = [e.message for e in Draft7Validator(schema).iter_errors(citation)]
    assert errors == []
    assert citation["authors"] == [{"family-names": "Doe", "given-names": "Jane"}]
    assert citation["title"] == "Two tags on Mastodon"


def test_wacz_validates_and_holds_the_records_rows_point_to(crawled: Path,
                                                            exported: Path) -> None:
    wacz = exported / "archive" / "records.wacz"
    done = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(wacz)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    snapshots = open_dataset(crawled, "snapshots").to_table().to_pylist()
    with zipfile.ZipFile(wacz) as archive:
        pages = [json.loads(line) for line in
                 archive.read("pages/pages.jsonl").decode().splitlines()[1:]]
        warcs = b"".join(archive.read(n) for n in archive.namelist()
                         if n.startswith("archive/"))
    targets = {r.rec_headers.get_header("WARC-Record-ID"):
               r.rec_headers.get_header("WARC-Target-URI")
               for r in ArchiveIterator(BytesIO(warcs))}
    wanted = {s["archive_record"] for s in snapshots}
    assert wanted <= set(targets)
    # each record a row was read from is a page ReplayWeb.page lists
    assert {targets[r] for r in wanted} <= {p["url"] for p in pages}


def test_exporting_twice_gives_identical_files(crawled: Path, exported: Path,
                                               tmp_path: Path) -> None:
    again = tmp_path / "again"
    result = run_cli("export", "--root", str(crawled), "--out", str(again), "--wacz",
                     "--author", "Doe, Jane", "--title", "Two tags on Mastodon", env=PINNED)
    assert result.code == 0, result.stderr
    assert files_of(again) == files_of(exported)


def test_dehydrate_keeps_ids_and_counters_only(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "dry"
    result = run_cli("export", "--root", str(crawled), "--out", str(out), "--dehydrate")
    assert result.code == 0, result.stderr
    posts = pq.read_table(out / "data" / "posts.parquet")
    for gone in ("text", "author_id", "author_name", "url", "archive_file"):
        assert gone not in posts.column_names
    original = open_dataset(crawled, "posts").to_table()
    assert sorted(posts["post_id"].to_pylist()) == sorted(original["post_id"].to_pylist())
    secrets = {v for c in ("text", "author_id", "author_name") for v in
               original[c].to_pylist() if v and len(v) > 3}
    assert secrets  # the replica served authors and text: the test can fail
    everything = b"".join((out / p).read_bytes() for p in files_of(out))
    leaked = [s for s in secrets if s.encode() in everything]
    assert leaked == []


def test_a_hostile_tag_writes_nothing_anywhere(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "inside" / "out"
    result = run_cli("export", "--root", str(crawled), "--out", str(out),
                     "--tag", "../../escaped", "--tag", "python/../../../x")
    assert result.code == 1  # no row has such a tag
    assert "no rows match" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inside", "out"]


def test_a_link_planted_in_out_is_refused(crawled: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "datapackage.json").write_text("{}")  # looks like an earlier export
    (out / "data").symlink_to(outside)
    result = run_cli("export", "--root", str(crawled), "--out", str(out), "--tag", "python")
    assert result.code == 3, result.stderr
    assert "outside" in result.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("value", ["../../etc/passwd", "archive/platform=../date=2026-01-01/x"
                                   ".warc.gz", "archive/platform=a/date=2026-01-01/../../x"
                                   ".warc.gz", "/etc/passwd"])
def test_a_hostile_archive_file_value_never_becomes_a_path(value: str) -> None:
    with pytest.raises(UnsafePathError):
        check_archive_file(value)


def test_a_folder_that_is_not_an_export_is_not_overwritten(crawled: Path,
                                                           tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("export", "--root", str(crawled), "--out", str(tmp_path))
    assert result.code == 2
    assert "not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
