"""The raw archive: valid WARC, no secrets, and every stored number traces to its record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from crawler.platforms import platform_class
from crawler.platforms.base import TagResult
from crawler.services.reparse import archived_pages
from replica.server import ReplicaServer
from tests.crawl_helpers import crawl


def test_every_stored_number_traces_to_a_valid_warc_record(replica: ReplicaServer,
                                                           tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "tiktokrefugee", "ssr")
    replica.world.set_variant("tiktok", "TikTok难民", "csr")
    # rendered, so that rendered records are checked too (tests/test_signing_e2e.py: signed ones)
    result = crawl(replica, tmp_path, "tiktok,xiaohongshu", "tiktokrefugee", "TikTok难民",
                   extra=("-s", "TAGARCHIVE_SIGNING_ENABLED=0"))
    assert result.code == 0, result.stderr[-2000:]
    files = sorted(tmp_path.glob("archive/platform=*/date=*/*.warc.gz"))
    assert {f.parent.parent.name for f in files} == {"platform=tiktok", "platform=xiaohongshu"}
    assert not list(tmp_path.glob("archive/**/*.tmp"))
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", *map(str, files)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    index = subprocess.run([sys.executable, "-m", "warcio.cli", "index", str(files[0])],
                           capture_output=True, text=True)
    assert index.returncode == 0
    assert '"warc-type"' in index.stdout

    pages = {p.ref.record_id: p for p in archived_pages(tmp_path)}
    rows = duckdb.sql(
        f"select platform, tag, views, posts, discussions, participants, archive_file, "
        f"archive_record from read_parquet('{tmp_path}/snapshots/**/*.parquet', "
        f"hive_partitioning=true)").fetchall()
    assert len(rows) == 4
    for platform, tag, views, posts, discussions, participants, file, record in rows:
        assert (tmp_path / file).is_file()
        archived = pages[record]  # the pointer names a record the adapter read
        assert archived.platform == platform
        # parsing the archived bytes again gives exactly the stored numbers
        adapter = platform_class(platform)(replica.base_url(platform))
        again = adapter.handle(archived.step, archived.page, archived.tag, archived.state)
        assert isinstance(again, TagResult)
        got = again.snapshot
        for name, stored in (("views", views), ("posts", posts),
                             ("discussions", discussions), ("participants", participants)):
            if stored is not None:
                assert int(got[name]) == stored, (platform, tag, name)
    # rendered pages keep the JSON they fetched, linked from the DOM record
    rendered = [p for p in pages.values() if p.page.rendered]
    assert rendered
    assert all(p.page.captured for p in rendered)


def test_no_archive_option(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "quiet", "ssr")
    result = crawl(replica, tmp_path, "tiktok", "quiet", extra=("--no-archive",))
    assert result.code == 0
    assert not (tmp_path / "archive").exists()
    row = duckdb.sql(f"select archive_file from read_parquet('{tmp_path}/snapshots/**/*.parquet',"
                     f" hive_partitioning=true)").fetchall()
    assert row == [(None,)]
