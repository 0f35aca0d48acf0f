"""Reading the raw archive back: every page the adapters read, rebuilt from its WARC records.

This is what makes a stored number provable (the record it came from can be parsed again) and
what `reparse` runs today's parsers over, without the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from crawler.platforms.base import Captured, Page
from crawler.tags import TagRef
from storage.archive import ARCHIVE_DIR, RecordRef, read_meta

_PARTITION = re.compile(r"platform=([^/]+)/date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class ArchivedPage:
    """One page as the adapter saw it, with where it is archived."""

    platform: str
    tag: TagRef
    step: str
    state: dict[str, Any]
    run_id: str
    page: Page
    ref: RecordRef


def archive_files(root: str | Path, since: date | None = None, until: date | None = None,
                  platforms: set[str] | None = None) -> list[Path]:
    """Published WARC files under the root, filtered by partition (temp files never)."""
    base = Path(root) / ARCHIVE_DIR
    files = []
    for directory in sorted(base.glob("platform=*/date=*")):
        match = _PARTITION.search(directory.as_posix())
        if match is None:
            continue
        platform, day = match.group(1), date.fromisoformat(match.group(2))
        if platforms and platform not in platforms:
            continue
        if (since and day < since) or (until and day > until):
            continue
        files.extend(sorted(directory.glob("*.warc.gz")))
    return files


def _headers(record: Any) -> dict[str, str]:
    http = record.http_headers
    return {k.lower(): v for k, v in http.headers} if http is not None else {}


def _status(record: Any) -> int:
    code = record.http_headers.get_statuscode() if record.http_headers is not None else "200"
    return int(code)


def archived_pages(root: str | Path, files: list[Path] | None = None) -> Iterator[ArchivedPage]:
    """Every adapter-read page in the archive, in file order."""
    from warcio.archiveiterator import ArchiveIterator

    root = Path(root)
    for path in files if files is not None else archive_files(root):
        responses: dict[str, Captured] = {}
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                record_id = record.rec_headers.get_header("WARC-Record-ID")
                meta = read_meta(record)
                body = record.content_stream().read()
                url = record.rec_headers.get_header("WARC-Target-URI")
                when = datetime.strptime(record.rec_headers.get_header("WARC-Date"),
                                         "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                text = body.decode("utf-8", errors="replace")
                if "Step" not in meta:
                    # a captured response, read with the page that fetched it
                    responses[record_id] = Captured(url=url, status=_status(record),
                                                    headers=_headers(record), body=text)
                    continue
                rendered = record.rec_type == "resource"
                captured = tuple(responses.pop(i) for i in meta.get("Captures", [])
                                 if i in responses)
                page = Page(url=url, status=200 if rendered else _status(record),
                            headers={} if rendered else _headers(record), text=text,
                            observed_at=when, rendered=rendered, captured=captured)
                tag = meta.get("Tag") or {}
                yield ArchivedPage(
                    platform=meta["Platform"], tag=TagRef(name=tag.get("name"), id=tag.get("id")),
                    step=meta["Step"], state=meta.get("State") or {}, run_id=meta.get("Run-Id", ""),
                    page=page, ref=RecordRef(path.relative_to(root).as_posix(), record_id))


@dataclass
class ReparseReport:
    """What a reparse read and wrote."""

    run_id: str
    pages: int = 0
    snapshots: int = 0
    posts: int = 0
    activity: int = 0
    rejects: int = 0
    failures: dict[str, int] | None = None


class _OfflineCrawler:
    """Just what the pipelines read from a crawler: settings, stats and the run (on `spider`)."""

    def __init__(self, run: Any) -> None:
        from types import SimpleNamespace

        from scrapy.settings import Settings
        from scrapy.statscollectors import MemoryStatsCollector

        self.settings = Settings({"STATS_DUMP": False})
        self.stats = MemoryStatsCollector(self)  # type: ignore[arg-type]
        self.spider = SimpleNamespace(run=run)


def reparse(root: str | Path, *, since: date | None = None, until: date | None = None,
            platforms: set[str] | None = None, compact_after: bool = True,
            adapters: dict[str, Any] | None = None) -> ReparseReport:
    """Run today's adapters over the archive, without the network, and supersede the old rows.

    The new rows keep each page's observation time and archive pointer; they go through the same
    normalize/validate/dedupe/store pipelines. Compaction (key: platform, tag, observed_at; the
    later file wins) then drops the rows they supersede, so each observation is stored once.
    """
    from scrapy.exceptions import DropItem

    from crawler.items import items_from_result
    from crawler.platforms import platform_class
    from crawler.platforms.base import PlatformError, TagResult
    from crawler.run import RunState
    from pipelines.dedupe import DedupePipeline
    from pipelines.normalize import NormalizePipeline
    from pipelines.store import StorePipeline
    from pipelines.validate import ValidatePipeline

    root = Path(root)
    run = RunState(out=str(root), jobs=[], command="reparse", archive_enabled=False)
    crawler = _OfflineCrawler(run)
    stages = [cls(crawler) for cls in (NormalizePipeline, ValidatePipeline, DedupePipeline,
                                       StorePipeline)]
    report = ReparseReport(run_id=run.run_id, failures={})
    cache: dict[str, Any] = dict(adapters or {})

    def push(item: Any) -> None:
        try:
            for stage in stages:
                item = stage.process_item(item)
        except DropItem:
            pass

    for archived in archived_pages(root, archive_files(root, since, until, platforms)):
        report.pages += 1
        adapter = cache.get(archived.platform)
        if adapter is None:
            adapter = cache[archived.platform] = platform_class(archived.platform)()
        try:
            result = adapter.handle(archived.step, archived.page, archived.tag, archived.state)
        except PlatformError as exc:
            report.failures[str(exc.outcome)] = report.failures.get(str(exc.outcome), 0) + 1
            continue
        if not isinstance(result, TagResult):
            continue  # an intermediate step (search before topic page): nothing to store
        tag = archived.tag.normalized if archived.tag.name is not None else None
        for item in items_from_result(result, tag,
                                      archive=(archived.ref.file, archived.ref.record_id)):
            push(item)
    stats = crawler.stats.get_stats()
    report.snapshots = int(stats.get("tagarchive/stored/snapshots", 0))
    report.posts = int(stats.get("tagarchive/stored/posts", 0))
    report.activity = int(stats.get("tagarchive/stored/activity", 0))
    report.rejects = int(stats.get("tagarchive/rejected", 0))
    record = run.record(stats, datetime.now(UTC), "finished")
    run.writer.add("runs", record)
    run.close_storage()
    if compact_after and report.pages:
        from storage.compact import compact

        compact(root, datasets=["snapshots", "posts", "activity"], include_today=True)
    return report
