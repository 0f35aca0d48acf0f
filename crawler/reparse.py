"""Reading the raw archive back: every page the adapters read, rebuilt from its WARC records.

This is what makes a stored number provable (the record it came from can be parsed again) and
what `reparse` runs today's parsers over, without the network.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from crawler.platforms.base import Captured, Page
from crawler.tags import TagRef
from storage.archive import ARCHIVE_DIR, RecordRef, read_meta
from storage.fs import as_s3_root, is_remote, list_files, read_bytes

logger = logging.getLogger(__name__)
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
    """Published WARC files under the root, filtered by partition (temp files never).

    For an s3:// root these are ``bucket/prefix/archive/...`` paths of its filesystem.
    """
    if is_remote(root):
        s3 = as_s3_root(root)
        found = []
        for path, _size in list_files(s3, ARCHIVE_DIR):
            directory, _, name = path.rpartition("/")
            match = _PARTITION.search(directory)
            if match is None or not name.endswith(".warc.gz") or name.startswith("."):
                continue
            if _wanted(match, since, until, platforms):
                found.append(PurePosixPath(path))
        return found  # type: ignore[return-value]
    base = Path(root) / ARCHIVE_DIR
    files = []
    for directory in sorted(base.glob("platform=*/date=*")):
        match = _PARTITION.search(directory.as_posix())
        if match is None:
            continue
        if not _wanted(match, since, until, platforms):
            continue
        files.extend(sorted(directory.glob("*.warc.gz")))
    return files


def _wanted(match: re.Match[str], since: date | None, until: date | None,
            platforms: set[str] | None) -> bool:
    platform, day = match.group(1), date.fromisoformat(match.group(2))
    if platforms and platform not in platforms:
        return False
    return not ((since and day < since) or (until and day > until))


def _headers(record: Any) -> dict[str, str]:
    http = record.http_headers
    return {k.lower(): v for k, v in http.headers} if http is not None else {}


def _status(record: Any) -> int:
    code = record.http_headers.get_statuscode() if record.http_headers is not None else "200"
    return int(code)  # a damaged status line raises ValueError: an unreadable record


class UnreadableRecord(ValueError):
    """An archive record whose headers do not say which page it was (damaged or foreign)."""


def archived_pages(root: str | Path, files: list[Path] | None = None,
                   problems: dict[str, int] | None = None) -> Iterator[ArchivedPage]:
    """Every adapter-read page in the archive, in file order.

    A damaged file is read up to the damage and a record with unusable headers is skipped;
    each is logged with its file and counted in `problems` ("unreadable_file",
    "unreadable_record"), never raised: one bad file must not stop a reparse of the rest.
    """
    from warcio.archiveiterator import ArchiveIterator

    s3 = as_s3_root(root) if is_remote(root) else None
    root = Path(root) if s3 is None else root
    problems = {} if problems is None else problems
    for path in files if files is not None else archive_files(root):
        responses: dict[str, Captured] = {}
        try:
            if s3 is not None:  # one small object: read whole, then parsed as a local file
                key = PurePosixPath(path).as_posix()
                rel: Any = PurePosixPath(s3.relative(key))
                opened: Any = io.BytesIO(read_bytes(s3, key))
            else:
                rel = path.relative_to(root)
                opened = open(path, "rb")  # noqa: SIM115 - closed by the with below
            with opened as handle:
                records = iter(ArchiveIterator(handle))
                while True:
                    try:
                        record = next(records)
                        body = record.content_stream().read()
                    except StopIteration:
                        break
                    # warcio and zlib fail on damage with many types, their own bugs included
                    except Exception as exc:  # noqa: BLE001
                        logger.warning("archive %s is damaged; read up to the damage: %s",
                                       path, _one_line(exc))
                        problems["unreadable_file"] = problems.get("unreadable_file", 0) + 1
                        break
                    try:
                        page = _page(record, body, responses, rel)
                    except UnreadableRecord as exc:
                        logger.warning("archive %s: skipped a record: %s", path, exc)
                        problems["unreadable_record"] = problems.get("unreadable_record", 0) + 1
                        continue
                    if page is not None:
                        yield page
        except OSError as exc:
            logger.warning("archive %s cannot be read: %s", path, exc.strerror or exc)
            problems["unreadable_file"] = problems.get("unreadable_file", 0) + 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _page(record: Any, body: bytes, responses: dict[str, Captured],
          rel: Path) -> ArchivedPage | None:
    """The page one record holds; a captured response is kept for its page and gives None."""
    try:
        record_id = record.rec_headers.get_header("WARC-Record-ID")
        url = record.rec_headers.get_header("WARC-Target-URI")
        meta = read_meta(record)
        when = datetime.strptime(record.rec_headers.get_header("WARC-Date") or "",
                                 "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        status = _status(record)
        headers = _headers(record)
    except (ValueError, TypeError, AttributeError) as exc:
        raise UnreadableRecord(_one_line(exc)) from None
    if not isinstance(record_id, str) or not isinstance(url, str):
        raise UnreadableRecord("no WARC-Record-ID or WARC-Target-URI")
    text = body.decode("utf-8", errors="replace")
    if "Step" not in meta:
        # a captured response, read with the page that fetched it
        responses[record_id] = Captured(url=url, status=status, headers=headers, body=text)
        return None
    platform, tag, step = meta.get("Platform"), meta.get("Tag") or {}, meta.get("Step")
    state, run_id = meta.get("State") or {}, meta.get("Run-Id", "")
    captures = meta.get("Captures", [])
    if not (isinstance(platform, str) and isinstance(step, str) and isinstance(tag, dict)
            and isinstance(state, dict) and isinstance(run_id, str)
            and isinstance(captures, list) and all(isinstance(i, str) for i in captures)):
        raise UnreadableRecord("tagarchive headers of the wrong shape")
    try:
        ref = TagRef(name=tag.get("name"), id=tag.get("id"))
    except (ValueError, TypeError) as exc:
        raise UnreadableRecord(_one_line(exc)) from None
    rendered = record.rec_type == "resource"
    captured = tuple(responses.pop(i) for i in captures if i in responses)
    page = Page(url=url, status=200 if rendered else status,
                headers={} if rendered else headers, text=text,
                observed_at=when, rendered=rendered, captured=captured)
    return ArchivedPage(platform=platform, tag=ref, step=step, state=state, run_id=run_id,
                        page=page, ref=RecordRef(rel.as_posix(), record_id))


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
    from crawler.platforms import UnknownPlatformError, platform_class
    from crawler.platforms.base import PlatformError, TagResult
    from crawler.run import RunState
    from pipelines.dedupe import DedupePipeline
    from pipelines.normalize import NormalizePipeline
    from pipelines.store import StorePipeline
    from pipelines.validate import ValidatePipeline

    root = root if is_remote(root) else Path(root)
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

    failures = report.failures
    for archived in archived_pages(root, archive_files(root, since, until, platforms), failures):
        report.pages += 1
        try:
            adapter = cache.get(archived.platform)
            if adapter is None:
                adapter = cache[archived.platform] = platform_class(archived.platform)()
            result = adapter.handle(archived.step, archived.page, archived.tag, archived.state)
        except PlatformError as exc:
            failures[str(exc.outcome)] = failures.get(str(exc.outcome), 0) + 1
            continue
        except (UnknownPlatformError, LookupError) as exc:  # a platform or step not known today
            logger.warning("reparse: %s in %s", exc, archived.ref.file)
            failures["unknown_step"] = failures.get("unknown_step", 0) + 1
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
