"""`reparse` keeps how each archived page was fetched (`snapshots.fetched_by`): a response a
signing session signed (`signed_http`) or fetched in its page (`in_page_fetch`) says so in its
WARC record (`WARC-Tagarchive-Fetched-By`), and an archive written before that header existed
is read as it always was (`render` for a rendered page, `http` otherwise).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crawler.services.reparse import archived_pages, reparse
from replica.server import ReplicaServer
from storage import duckdb_connect
from storage.archive import ArchiveWriter
from tests.crawl_helpers import crawl


def _fetched_by(root: Path) -> dict[tuple[str, str], list[str]]:
    """Every stored snapshot's fetched_by, per (platform, tag), as compaction left them."""
    found: dict[tuple[str, str], list[str]] = {}
    for platform, tag, fetched in duckdb_connect(root).execute(
            "select platform, tag, fetched_by from snapshots order by observed_at").fetchall():
        found.setdefault((platform, tag), []).append(fetched)
    return found


def test_a_signed_crawl_reparsed_keeps_signed_http_and_in_page_fetch(
        replica: ReplicaServer, tmp_path: Path) -> None:
    # Xiaohongshu by name is signed (signed_http); Douyin is fetched in its page (in_page_fetch);
    # TikTok's server-rendered tag page is a plain request (http)
    replica.world.set_variant("tiktok", "refetch", "ssr")
    result = crawl(replica, tmp_path, "xiaohongshu,douyin,tiktok", "refetch")
    assert result.code == 0, result.stderr[-3000:]
    crawled = _fetched_by(tmp_path)
    assert crawled == {("xiaohongshu", "refetch"): ["signed_http"],
                       ("douyin", "refetch"): ["in_page_fetch"],
                       ("tiktok", "refetch"): ["http"]}

    # the archive says so on the record each snapshot was read from
    by_record = {p.ref.record_id: p.fetched_by for p in archived_pages(tmp_path)}
    stored = duckdb_connect(tmp_path).execute(
        "select fetched_by, archive_record from snapshots").fetchall()
    for fetched, record in stored:
        assert by_record[record] == (None if fetched == "http" else fetched)

    report = reparse(tmp_path)
    assert report.snapshots == 3
    assert _fetched_by(tmp_path) == crawled  # superseded with the same label, not "http"


def test_an_archive_without_the_header_reads_as_before(tmp_path: Path) -> None:
    when = datetime(2025, 1, 10, 12, tzinfo=UTC)
    writer = ArchiveWriter(tmp_path, "20250110T120000Z-old")
    meta = {"Platform": "tiktok", "Tag": {"name": "old", "id": None}, "Step": "tag_page",
            "State": {}, "Run-Id": "20250110T120000Z-old"}
    writer.write_response("tiktok", url="https://www.tiktok.com/tag/old", status=200,
                          headers={"content-type": "text/html"}, body=b"<html></html>",
                          observed_at=when, meta=meta)
    writer.write_rendered("tiktok", url="https://www.tiktok.com/tag/old", dom="<html></html>",
                          observed_at=when, meta=dict(meta, Step="rendered"), captured=[])
    writer.write_response("tiktok", url="https://www.tiktok.com/api/x", status=200,
                          headers={}, body=b"{}", observed_at=when,
                          meta=dict(meta, Step="api_detail", **{"Fetched-By": "signed_http"}))
    writer.write_response("tiktok", url="https://www.tiktok.com/api/y", status=200,
                          headers={}, body=b"{}", observed_at=when,
                          meta=dict(meta, Step="api_items", **{"Fetched-By": "teleported"}))
    writer.close()
    problems: dict[str, int] = {}
    pages = list(archived_pages(tmp_path, problems=problems))
    assert [(p.step, p.fetched_by, p.fetched) for p in pages] == [
        ("tag_page", None, "http"), ("rendered", None, "render"),
        ("api_detail", "signed_http", "signed_http")]
    assert problems == {"unreadable_record": 1}  # a label no crawl writes: named, not trusted
