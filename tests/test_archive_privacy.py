"""The raw archive is private: owner-only modes, encryption at rest to age recipients (reparse
and export read it with the identity, nothing without it), retention from the config."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from crawler.cli.main import main
from crawler.services.runner import watch_environment
from crawler.services.scheduler import ScheduleService
from crawler.services.watchconfig import load_config
from crawler.services.watchvalues import ConfigError
from replica.server import ReplicaServer
from storage import open_dataset
from storage.archive import ArchiveWriter
from storage.archivekeys import RECIPIENTS_ENV
from tests.crawl_helpers import run_cli

BIN = Path(sys.executable).parent
WHEN = datetime(2026, 11, 23, 12, tzinfo=UTC)
COUNTERS = ("views", "posts", "discussions", "participants")


def modes(root: Path) -> dict[str, int]:
    """Mode bits of everything under root/archive, by path relative to root."""
    found = {"archive": stat.S_IMODE(os.stat(root / "archive").st_mode)}
    for path in (root / "archive").rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def write_one(root: Path, recipients: list[str] | None = None) -> str:
    writer = ArchiveWriter(root, "20261123T120000Z-0a0b0c0d", recipients=recipients)
    ref = writer.write_response("mastodon", url="https://m.example/api/v1/tags/x", status=200,
                                headers={"Content-Type": "application/json"},
                                body=b'{"name": "x", "secret_text": "Alice wrote this"}',
                                observed_at=WHEN, meta={"Step": "tag", "Platform": "mastodon"})
    writer.close()
    return ref.file


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_files_0600_and_folders_0700_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_one(tmp_path)
    finally:
        os.umask(previous)
    found = modes(tmp_path)
    assert len(found) == 4  # archive/, platform=, date=, one file
    for path, mode in found.items():
        assert mode == (0o600 if path.endswith(".warc.gz") else 0o700), (path, oct(mode))


def test_archive_secure_tightens_an_old_archive(tmp_path: Path) -> None:
    day = tmp_path / "archive" / "platform=tiktok" / "date=2026-01-01"
    day.mkdir(parents=True)
    old = day / "r-0001.warc.gz"
    old.write_bytes(b"raw")
    for path in (tmp_path / "archive", day.parent, day):
        path.chmod(0o755)
    old.chmod(0o644)
    assert main(["archive", "secure", "--root", str(tmp_path)]) == 0
    assert set(modes(tmp_path).values()) == {0o700, 0o600}


def test_archive_secure_encrypts_plain_files_and_cat_decrypts(tmp_path: Path,
                                                              capsysbinary: pytest.CaptureFixture
                                                              [bytes]) -> None:
    rel = write_one(tmp_path)
    plain = (tmp_path / rel).read_bytes()
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"# test\n{identity}\n")
    assert main(["archive", "secure", "--root", str(tmp_path), "--recipient",
                 str(identity.to_public())]) == 0
    assert not (tmp_path / rel).exists()
    sealed = (tmp_path / (rel + ".age")).read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert b"Alice" not in sealed
    capsysbinary.readouterr()
    # the rows' old pointer still finds the file, under its .age name
    assert main(["archive", "cat", "--root", str(tmp_path), rel, "--identity", str(key)]) == 0
    assert capsysbinary.readouterr().out == plain
    assert main(["archive", "cat", "--root", str(tmp_path), rel]) == 2


@pytest.fixture(scope="module")
def encrypted(replica_server: ReplicaServer,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real crawl with the archive encrypted to a fresh age key; its identity file."""
    replica_server.world.clear_variants()
    root = tmp_path_factory.mktemp("encrypted")
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path_factory.mktemp("keys") / "key.txt"
    key.write_text(f"{identity}\n")
    result = run_cli("crawl", "mastodon", "tiktokrefugee", "python", "--out", str(root),
                     "--replica", replica_server.url, "--delay", "0",
                     env={RECIPIENTS_ENV: str(identity.to_public())})
    assert result.code == 0, result.stderr
    return root, key


def snapshot_values(root: Path) -> list[tuple[object, ...]]:
    rows = open_dataset(root, "snapshots").to_table().to_pylist()
    return sorted((r["tag"], r["observed_at"], *(r[c] for c in COUNTERS),
                   *(r[f"{c}_semantics"] for c in COUNTERS)) for r in rows)


def test_a_crawl_leaves_only_encrypted_files(encrypted: tuple[Path, Path]) -> None:
    root, _key = encrypted
    files = [p for p in (root / "archive").rglob("*") if p.is_file()]
    assert files
    assert all(p.name.endswith(".warc.gz.age") for p in files), files
    assert all(p.read_bytes().startswith(b"age-encryption.org/v1\n") for p in files)
    posts = open_dataset(root, "posts").to_table()
    texts = [t for t in posts["text"].to_pylist() if t and len(t) > 12]
    assert texts
    sealed = b"".join(p.read_bytes() for p in files)
    assert not any(t.encode() in sealed for t in texts)
    assert all(m in (0o600, 0o700) for m in modes(root).values())


def test_reparse_needs_the_identity_and_gives_the_same_rows(encrypted: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    root, key = encrypted
    before = snapshot_values(root)
    refused = run_cli("reparse", "--root", str(root))
    assert refused.code == 2
    assert refused.stderr.count("\n") == 1
    assert "is encrypted" in refused.stderr or "are encrypted" in refused.stderr
    assert "--identity" in refused.stderr
    stranger = tmp_path / "other.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    wrong = run_cli("reparse", "--root", str(root), "--identity", str(stranger))
    assert wrong.code == 3
    assert "cannot decrypt" in wrong.stderr
    done = run_cli("reparse", "--root", str(root), "--identity", str(key))
    assert done.code == 0, done.stderr
    assert re.search(r": [1-9]\d* archived pages -> 2 snapshots", done.stdout), done.stdout
    assert snapshot_values(root) == before


def test_export_wacz_of_an_encrypted_archive(encrypted: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    root, key = encrypted
    refused = run_cli("export", "--root", str(root), "--out", str(tmp_path / "a"), "--wacz")
    assert refused.code == 2
    assert "--identity" in refused.stderr
    result = run_cli("export", "--root", str(root), "--out", str(tmp_path / "b"), "--wacz",
                     "--identity", str(key))
    assert result.code == 0, result.stderr
    done = subprocess.run([str(BIN / "wacz"), "validate", "-f",
                           str(tmp_path / "b" / "archive" / "records.wacz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
    leftovers = [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the private scratch folder of plain records is gone


def old_archive(root: Path, today: datetime) -> dict[int, Path]:
    files = {}
    for age in (1, 40, 400):
        day = (today - timedelta(days=age)).date().isoformat()
        path = root / "archive" / "platform=mastodon" / f"date={day}" / f"r-{age}.warc.gz.age"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        files[age] = path
    return files


def config_file(tmp_path: Path, archive: str) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'out = "data"\n[archive]\n{archive}\n[watches.w]\nplatforms = ["mastodon"]'
                    '\ntags = ["python"]\nevery = "1h"\n')
    return path


def test_prune_takes_max_age_from_the_config(tmp_path: Path) -> None:
    files = old_archive(tmp_path / "data", datetime.now(UTC))
    config = config_file(tmp_path, 'max_age = "30d"')
    assert main(["archive", "prune", "--config", str(config)]) == 0
    assert [age for age, p in files.items() if p.exists()] == [1]


def test_the_scheduler_applies_max_age_after_a_fire(tmp_path: Path) -> None:
    files = old_archive(tmp_path / "data", datetime.now(UTC))
    config = load_config(config_file(tmp_path, 'max_age = "90d"'))
    fired: list[str] = []

    class Runner:
        in_flight = contextlib.nullcontext  # the real runner's drain() accounting

        def fire(self, name: str, *_: object) -> None:
            fired.append(name)

    service = ScheduleService(config, runner=Runner(), install_signals=False)  # type: ignore[arg-type]
    service.on_fire("w")
    assert fired == ["w"]
    assert [age for age, p in files.items() if p.exists()] == [1, 40]


def test_the_scheduler_gives_its_crawls_the_recipients(tmp_path: Path) -> None:
    public = str(pyrage.x25519.Identity.generate().to_public())
    config = load_config(config_file(tmp_path, f'recipients = ["{public}"]'))
    env = watch_environment(config, config.watch("w"), {})
    assert env[RECIPIENTS_ENV] == public


@pytest.mark.parametrize(("line", "problem"), [
    ('max_age = "36h"', "whole days"),
    ('recipients = ["age1notakey"]', "not an age recipient"),
    ('recipients = "age1x"', "list of public keys"),
    ("max_days = 3", "unknown key"),
])
def test_bad_archive_settings_fail_the_config(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(config_file(tmp_path, line))


def test_an_encrypted_file_grown_large_in_memory_is_published_early(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.archive as archive
    from storage.archivepick import read_archive_file, record_spans

    monkeypatch.setattr(archive, "MAX_MEMORY_FILE", 1)  # every record starts a new file
    identity = pyrage.x25519.Identity.generate()
    writer = ArchiveWriter(tmp_path, "20261123T120000Z-0a0b0c0d",
                           recipients=[str(identity.to_public())])
    refs = [writer.write_response("mastodon", url=f"https://m.example/{i}", status=200,
                                  headers={}, body=b"{}", observed_at=WHEN, meta={"Step": "t"})
            for i in range(3)]
    assert len(writer.published) == 2  # the first two, published when the next one came
    writer.close()
    assert len({r.file for r in refs}) == 3
    for ref in refs:
        spans = record_spans(read_archive_file(tmp_path, ref.file, [identity]))
        assert [s.record_id for s in spans] == [ref.record_id]
