"""The output root full or read-only, on a real small filesystem where the machine allows it.

Two branches, chosen at run time by what the machine can do, each testing something real:
- `tmpfs`: as root with mount rights, a size-limited tmpfs is mounted under tmp_path (full disk:
  the kernel's ENOSPC), and remounted read-only (the kernel's EROFS).
- `simulated`: elsewhere (CI runners without root, or TAGARCHIVE_FAULTS_SIMULATE=1), the crawl
  runs under tests/fault_boot.py, which makes file writes under the root raise
  OSError(ENOSPC / EROFS) at `open()` and at pyarrow's Parquet writer; the archive, writer,
  spider and CLI above them are the real code.
Either way: the run fails with exit 3 and one named line, every file already there is intact
and readable, and no partial file is visible. The branch that ran is printed (pytest -s).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from replica.server import ReplicaServer
from tests.crawl_helpers import ROOT, CrawlResult, crawl, snapshots
from tests.wait_helpers import reap, wait_until

pytestmark = pytest.mark.filterwarnings("error")


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


@contextlib.contextmanager
def small_fs(path: Path, size: str) -> Iterator[str]:
    """Mount a tmpfs of `size` at `path` if this machine allows it; yields the branch name."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if os.environ.get("TAGARCHIVE_FAULTS_SIMULATE") or not _run(*mount):
        yield "simulated"
        return
    try:
        yield "tmpfs"
    finally:
        _run("mount", "-o", "remount,rw", str(path))
        if not _run("umount", str(path)):
            _run("umount", "-l", str(path))


def crawl_under_fault(replica: ReplicaServer, out: Path, branch: str, code: int,
                      *args: str) -> CrawlResult:
    """The crawl, with writes refused by fault_boot when no real filesystem could be used."""
    if branch == "tmpfs":
        return crawl(replica, out, *args)
    cmd = [sys.executable, "-m", "tests.fault_boot", errno.errorcode[code], "crawl", *args,
           "--out", str(out), "--replica", replica.url, "--delay", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), timeout=180,
                          env={**os.environ, "TAGARCHIVE_FAULT_ROOT": str(out)})
    return CrawlResult(proc.returncode, proc.stdout, proc.stderr)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".tagarchive" not in p.parts}


def assert_visible_files_whole(root: Path) -> int:
    """Every file a reader sees is complete: Parquet footers read, WARC files pass warcio."""
    visible = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
               and ".tagarchive" not in p.parts]
    warcs = []
    for path in visible:
        assert path.name.endswith((".parquet", ".warc.gz")), path
        if path.suffix == ".parquet":
            pq.read_metadata(path)
        else:
            warcs.append(str(path))
    if warcs:
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", *warcs],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    return len(visible)


def test_a_full_disk_fails_the_run_by_name_and_keeps_every_earlier_file(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for tag in ("before", "after"):
        replica.world.set_variant("tiktok", tag, "ssr")
    with small_fs(out, "2m") as branch:
        print(f"storage fault branch: {branch}")
        first = crawl(replica, out, "tiktok", "before")
        assert first.code == 0, first.stderr[-2000:]
        earlier = digests(out)
        if branch == "tmpfs":  # leave a few bytes: the next run's first write hits ENOSPC
            filler = out / ".filler"
            with contextlib.suppress(OSError), open(filler, "wb") as handle:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            with contextlib.suppress(OSError), open(filler, "ab") as handle:
                while True:
                    handle.write(b"\0" * 512)
                    handle.flush()

        result = crawl_under_fault(replica, out, branch, errno.ENOSPC, "tiktok", "after")

        assert result.code == 3, (result.code, result.stderr[-3000:])
        assert "No space left on device" in result.stderr
        errors = [line for line in result.stderr.splitlines()
                  if line.startswith("tagarchive: ")]
        assert any(line.startswith("tagarchive: storage error: ") for line in errors), errors
        assert "Traceback" not in result.stderr
        if branch == "tmpfs":
            (out / ".filler").unlink()
        now = digests(out)
        assert {k: now[k] for k in earlier} == earlier  # nothing earlier lost or changed
        assert assert_visible_files_whole(out) >= len(earlier)
        assert [r["tag"] for r in snapshots(out)] == ["before"]


def test_a_read_only_output_fails_by_name_before_and_during_a_crawl(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for tag in ("before", "after"):
        replica.world.set_variant("tiktok", tag, "ssr")
    with small_fs(out, "4m") as branch:
        print(f"storage fault branch: {branch}")
        first = crawl(replica, out, "tiktok", "before")
        assert first.code == 0, first.stderr[-2000:]
        earlier = digests(out)
        if branch == "tmpfs":
            assert _run("mount", "-o", "remount,ro", str(out))
            result = crawl(replica, out, "tiktok", "after")
            # refused before any page is fetched: the root itself is not writable
            assert result.code == 3, result.stderr[-2000:]
            assert result.stderr.strip().splitlines() == [
                f"tagarchive: error: output root {out} is not writable"]
            # ... and made read-only while a crawl waits for its page: the kernel's EROFS
            assert _run("mount", "-o", "remount,rw", str(out))
            # its page is held until the root is read-only (seconds: a hang guard)
            replica.faults.add("slow", "/tiktok/tag/after", times=1, seconds=600)
            with open(tmp_path / "ro.log", "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "crawler.cli", "crawl", "tiktok", "after", "--out",
                     str(out), "--replica", replica.url, "--delay", "0"],
                    cwd=ROOT, stdout=log, stderr=log)
            try:
                wait_until(lambda: replica.faults.fired["slow"], 120,
                           "the crawl to wait for its page")
                assert _run("mount", "-o", "remount,ro", str(out))
                replica.faults.clear()  # the page arrives now
                assert proc.wait(timeout=120) == 3
            finally:
                reap(proc)
            mid_run = (tmp_path / "ro.log").read_text()
            assert "Read-only file system" in mid_run
            assert "Traceback" not in mid_run
        else:
            result = crawl_under_fault(replica, out, branch, errno.EROFS, "tiktok", "after")
            # the root looks writable, every write is refused: the storage error is named
            assert result.code == 3, result.stderr[-2000:]
            assert "Read-only file system" in result.stderr
            assert "Traceback" not in result.stderr
        assert digests(out) == earlier
        assert assert_visible_files_whole(out) == len(earlier)


def test_a_record_that_does_not_fit_is_cut_off_and_the_file_stays_valid(tmp_path: Path) -> None:
    """The archive's own recovery, record by record: whole records before and after a failure."""
    from datetime import UTC, datetime

    from warcio.archiveiterator import ArchiveIterator

    from storage.archive import ArchiveWriter

    archive = ArchiveWriter(tmp_path, "20260110T000000Z-0000abcd")
    at = datetime(2026, 1, 10, tzinfo=UTC)

    def page(n: int) -> dict:
        return {"url": f"http://x.test/{n}", "status": 200, "headers": {}, "observed_at": at,
                "body": b"<p>%d</p>" % n * 500, "meta": {"Step": "s"}}

    archive.write_response("tiktok", **page(1))
    [opened] = archive._open.values()
    real_write = opened.handle.write
    spent = {"n": 0}

    def fills_up(data: bytes) -> int:  # half a record lands, then the disk is full
        if spent["n"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        spent["n"] = 1
        return real_write(bytes(data)[: len(data) // 2])

    opened.handle.write = fills_up
    with pytest.raises(OSError, match="No space left on device"):
        archive.write_response("tiktok", **page(2))
    archive.write_response("tiktok", **page(3))  # space came back
    [published] = archive.rotate()

    with open(published, "rb") as handle:
        urls = [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(handle)]
    assert urls == ["http://x.test/1", "http://x.test/3"]
    assert assert_visible_files_whole(tmp_path) == 1
