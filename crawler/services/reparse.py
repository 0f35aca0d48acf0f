"""Reading the raw archive back: every page the adapters read, rebuilt from its WARC records.

This is what makes a stored number provable (the record it came from can be parsed again) and
what `reparse` runs today's parsers over, without the network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from crawler.platforms.base import Captured, Outcome, Page
from crawler.text.tags import TagRef
from storage.archive import ARCHIVE_DIR, RecordRef, read_meta
from storage.backends import backend_for

logger = logging.getLogger(__name__)
_PARTITION = re.compile(r"platform=(?P<platform>[^/]+)/date=(?P<day>\d{4}-\d{2}-\d{2})$")
# what WARC-Tagarchive-Fetched-By may say (crawler/extensions/archive.py): the ways a
# signing session fetches (docs/access.md); plain and rendered pages carry no such header
SIGNED_FETCHES = ("signed_http", "in_page_fetch")
# a published WARC file, plain or age-encrypted (.age); its path from the root (`rel`) ends
# every path a back-end lists
_FILE = re.compile(rf"(?P<rel>{ARCHIVE_DIR}/platform=(?P<platform>[^/]+)/"
                   r"date=(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>[^/]+\.warc\.gz(?:\.age)?))$")


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
    # how the page came, when the archive says (WARC-Tagarchive-Fetched-By: signed_http,
    # in_page_fetch); None in older archives and for plain or rendered pages
    fetched_by: str | None = None

    @property
    def fetched(self) -> str:
        """`snapshots.fetched_by` as the crawl stored it: the archive's word, else the record
        type's (a rendered page is a `resource` record, anything else a plain response)."""
        return self.fetched_by or ("render" if self.page.rendered else "http")


def archive_files(root: str | Path, since: date | None = None, until: date | None = None,
                  platforms: set[str] | None = None) -> list[PurePath]:
    """Published WARC files under the root, filtered by partition (temp files never), as the
    root's back-end lists them: local paths, or ``bucket/prefix/archive/...`` for an s3:// root
    (nothing to open locally: `archived_pages` reads them through the back-end)."""
    found: list[PurePath] = []
    for path, _size in backend_for(root).list_files(root, ARCHIVE_DIR):
        match = _FILE.search(path)
        if match is None or match["name"].startswith("."):
            continue
        if _wanted(match, since, until, platforms):
            found.append(PurePath(path))
    return found


def _wanted(match: re.Match[str], since: date | None, until: date | None,
            platforms: set[str] | None) -> bool:
    platform, day = match["platform"], date.fromisoformat(match["day"])
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


def archived_pages(root: str | Path, files: Sequence[PurePath] | None = None,
                   problems: dict[str, int] | None = None,
                   skipped: list[SkippedPage] | None = None,
                   identities: Sequence[Any] | None = None) -> Iterator[ArchivedPage]:
    """Every adapter-read page in the archive, in file order (encrypted files decrypted in
    memory with `identities`, storage/archivekeys.py; one that cannot be is unreadable).

    A damaged file is read up to the damage and a record with unusable headers is skipped;
    each is logged with its file and counted in `problems` ("unreadable_file",
    "unreadable_record"), never raised: one bad file must not stop a reparse of the rest.
    Each is also named in `skipped` when given.
    """
    from warcio.archiveiterator import ArchiveIterator

    from storage.archivekeys import open_warc

    backend = backend_for(root)
    problems = {} if problems is None else problems

    def problem(reason: str, rel: Any, record: str | None, detail: str) -> None:
        problems[reason] = problems.get(reason, 0) + 1
        if skipped is not None:
            match = _PARTITION.search(PurePosixPath(str(rel)).parent.as_posix())
            skipped.append(SkippedPage(str(rel), record, match["platform"] if match else None,
                                       None, reason, detail))

    for path in files if files is not None else archive_files(root):
        responses: dict[str, Captured] = {}
        match = _FILE.search(path.as_posix())
        rel = PurePosixPath(match["rel"] if match else path.name)  # the path records name
        try:
            with open_warc(backend, root, str(path), identities) as handle:
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
                        problem("unreadable_file", rel, None,
                                f"damaged; read up to the damage: {_one_line(exc)}")
                        break
                    try:
                        page = _page(record, body, responses, rel)
                    except UnreadableRecord as exc:
                        logger.warning("archive %s: skipped a record: %s", path, exc)
                        problem("unreadable_record", rel, _record_id(record), str(exc))
                        continue
                    if page is not None:
                        yield page
        except OSError as exc:
            logger.warning("archive %s cannot be read: %s", path, exc.strerror or exc)
            problem("unreadable_file", rel, None, f"cannot be read: {exc.strerror or exc}")


def _record_id(record: Any) -> str | None:
    try:
        found = record.rec_headers.get_header("WARC-Record-ID")
    except (AttributeError, TypeError, ValueError):
        return None
    return found if isinstance(found, str) else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _page(record: Any, body: bytes, responses: dict[str, Captured],
          rel: PurePath) -> ArchivedPage | None:
    """The page one record holds; a captured response is kept for its page and gives None."""
    try:
        record_id = record.rec_headers.get_header("WARC-Record-ID")
        url = record.rec_headers.get_header("WARC-Target-URI")
        meta = read_meta(record)
        when = datetime.strptime(record.rec_headers.get_header("WARC-Date") or "",
                                 "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        status = _status(record)
        headers = _headers(record)
    # RecursionError: a JSON header nested thousands deep
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
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
    fetched_by = meta.get("Fetched-By")
    if not (isinstance(platform, str) and isinstance(step, str) and isinstance(tag, dict)
            and isinstance(state, dict) and isinstance(run_id, str)
            and isinstance(captures, list) and all(isinstance(i, str) for i in captures)
            and (fetched_by is None or fetched_by in SIGNED_FETCHES)):
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
                        page=page, ref=RecordRef(rel.as_posix(), record_id),
                        fetched_by=fetched_by)


@dataclass(frozen=True)
class SkippedPage:
    """An archived page a reparse could not parse again, and why; named in its summary."""

    file: str
    record: str | None
    platform: str | None
    tag: str | None
    reason: str  # layout_changed, error, unknown_step, unreadable_record, unreadable_file
    detail: str

    @property
    def where(self) -> str:
        return f"{self.file} {self.record}" if self.record else self.file

    def line(self) -> str:
        what = " ".join(x for x in (self.platform, self.tag) if x)
        return f"{self.where}: {what + ': ' if what else ''}{self.reason}: {self.detail}"

    def outcome(self) -> dict[str, str | None]:
        """Its entry in the reparse's `runs.outcomes` (one per page, the page in `detail`)."""
        return {"platform": self.platform, "tag": self.tag, "status": self.reason,
                "detail": f"{self.where}: {self.detail}"[:1000]}


# Pages named one by one (report, stderr, runs row); the rest are counted and logged.
MAX_NAMED = 100


@dataclass
class ReparseReport:
    """What a reparse read and wrote.

    `failures` counts every page that gave no rows, by reason, and splits into two:
    `not_reparsed`, the pages the reparse could not parse again (a hostile or changed page, a
    step unknown today, a damaged record), the first MAX_NAMED of them named in `skipped`; and
    `no_tag_data`, the pages that were the platform's word (a captcha, a login wall, a 404, a
    5xx: any adapter failure but layout_changed), which held no tag data when crawled either.
    """

    run_id: str
    pages: int = 0
    snapshots: int = 0
    posts: int = 0
    activity: int = 0
    rejects: int = 0
    failures: dict[str, int] | None = None
    not_reparsed: dict[str, int] = field(default_factory=dict)
    no_tag_data: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedPage] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when an archived page could not be reparsed (each is named), else 0."""
        from crawler.extensions.runrecord import EXIT_OK, EXIT_TAG_FAILED

        return EXIT_TAG_FAILED if self.not_reparsed else EXIT_OK


def reparse(root: str | Path, *, since: date | None = None, until: date | None = None,
            platforms: set[str] | None = None, compact_after: bool = True,
            adapters: dict[str, Any] | None = None,
            identities: Sequence[Any] | None = None, privacy: str = "pseudonymize",
            pseudonym_key: str | None = None) -> ReparseReport:
    """Run today's adapters over the archive, without the network, and supersede the old rows.
    Encrypted WARC files are read with `identities` (age identities, storage/archivekeys.py).

    Every archived observation is parsed again: the new rows keep each page's observation time
    and archive pointer and go through the crawl's normalize/validate/dedupe/store rules
    (crawler/rules/, applied by offline.py), with each original run deduplicated on its own.
    Compaction (key: platform, tag, observed_at; the later file wins) then drops the rows they
    supersede, so each observation is stored once.

    Whatever the adapter raises or answers for one page (hostile JSON, a step unknown today)
    skips that page only: it is logged, counted in `failures` and named in `skipped` and in the
    run's `runs.outcomes`. A storage failure is raised (StorageError).
    """
    from crawler.extensions.runrecord import RunState
    from crawler.rules.privacy import privacy_for
    from crawler.services.offline import OfflineRules
    from storage import DatasetWriter

    run = RunState(out=str(root), jobs=[], command="reparse")
    # the mode in force now: a project can move to a stricter mode and rebuild its rows
    rule, run.privacy_key = privacy_for(str(root), privacy, pseudonym_key)
    run.privacy = privacy
    writer = DatasetWriter(root, run.run_id)
    passing = _Pass(ReparseReport(run_id=run.run_id, failures={}),
                    OfflineRules(run, writer, rule), adapters)
    for archived in archived_pages(root, archive_files(root, since, until, platforms),
                                   passing.failures, passing.unreadable, identities):
        passing.page(archived)
    passing.name_unreadable()
    writer.add("runs", passing.record(run))
    writer.close()
    if compact_after and passing.report.pages:
        from storage.compact import compact

        compact(root, datasets=["snapshots", "posts", "activity"], include_today=True)
    return passing.report


def _count(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


class _Pass:
    """One reparse over the archive: each page parsed again and judged by the crawl's rules,
    and what became of it counted in the report."""

    def __init__(self, report: ReparseReport, rules: Any,
                 adapters: dict[str, Any] | None) -> None:
        self.report = report
        self.failures: dict[str, int] = report.failures if report.failures is not None else {}
        self.rules = rules
        self.adapters: dict[str, Any] = dict(adapters or {})
        self.unreadable: list[SkippedPage] = []  # damaged records and files archived_pages met

    def name(self, page: SkippedPage) -> bool:
        """Count a page not reparsed; False when past MAX_NAMED (only the log names it)."""
        _count(self.report.not_reparsed, page.reason)
        if len(self.report.skipped) < MAX_NAMED:
            self.report.skipped.append(page)
            return True
        return False

    def skip(self, archived: ArchivedPage, reason: str, detail: str) -> None:
        _count(self.failures, reason)
        page = SkippedPage(archived.ref.file, archived.ref.record_id, archived.platform,
                           _tag_key(archived.tag), reason, detail)
        logger.log(logging.INFO if self.name(page) else logging.WARNING,
                   "reparse: not reparsed: %s", page.line())

    def name_unreadable(self) -> None:
        for page in self.unreadable:  # (archived_pages counted them in failures)
            self.name(page)
        self.unreadable.clear()

    def page(self, archived: ArchivedPage) -> None:
        """Parse one archived page again and store what today's rules keep of it."""
        from storage import StorageError

        self.name_unreadable()
        self.report.pages += 1
        items = self._items(archived)
        if items is None:
            return
        try:
            items = self.rules.judge(items, archived)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a value no rule expected: this page only
            self.skip(archived, str(Outcome.ERROR), _one_line(exc))
            return
        self.rules.store(items)

    def _adapter(self, archived: ArchivedPage) -> Any | None:
        """Today's adapter for the page's platform and step; None (the page skipped) if none."""
        from crawler.platforms import UnknownPlatformError, platform_class

        try:
            adapter = self.adapters.get(archived.platform)
            if adapter is None:
                adapter = self.adapters[archived.platform] = platform_class(archived.platform)()
        except UnknownPlatformError as exc:  # a platform not known today
            self.skip(archived, "unknown_step", str(exc))
            return None
        if not callable(getattr(adapter, f"on_{archived.step}", None)):
            self.skip(archived, "unknown_step", f"{archived.platform}: no step {archived.step!r}")
            return None
        return adapter

    def _items(self, archived: ArchivedPage) -> list[Any] | None:
        """The items the adapter reads from the page today; None when it gives none."""
        from crawler.items import items_from_result
        from crawler.platforms.base import Fetch, PlatformError, TagResult
        from crawler.platforms.timeline import TimelinePage

        adapter = self._adapter(archived)
        if adapter is None:
            return None
        try:
            result = adapter.handle(archived.step, archived.page, archived.tag, archived.state)
            if isinstance(result, (Fetch, TimelinePage)):
                return None  # an intermediate step (search before topic page), a backfill page
            if not isinstance(result, TagResult):
                raise TypeError(f"the adapter answered {type(result).__name__}")
            tag = archived.tag.normalized if archived.tag.name is not None else None
            items: list[Any] = items_from_result(
                result, tag, archive=(archived.ref.file, archived.ref.record_id),
                fetched_by=archived.fetched)
        except PlatformError as exc:
            if exc.outcome == Outcome.LAYOUT_CHANGED:  # today's parser cannot read this page
                self.skip(archived, str(exc.outcome), _one_line_text(exc.detail))
            else:  # the platform's word (captcha, 404, …): no tag data then either
                _count(self.failures, str(exc.outcome))
                _count(self.report.no_tag_data, str(exc.outcome))
            return None
        # hostile JSON (deep nesting, "²" passing isdigit, huge numbers) can raise anything in
        # a parser; the live crawl names such a page layout_changed, and so does this
        except Exception as exc:  # noqa: BLE001
            self.skip(archived, str(Outcome.LAYOUT_CHANGED), _one_line(exc))
            return None
        return items

    def record(self, run: Any) -> dict[str, Any]:
        """The reparse's `runs` row, the pages it could not reparse among its outcomes."""
        report, stats = self.report, self.rules.stats
        report.snapshots = int(stats.get("tagarchive/stored/snapshots", 0))
        report.posts = int(stats.get("tagarchive/stored/posts", 0))
        report.activity = int(stats.get("tagarchive/stored/activity", 0))
        report.rejects = int(stats.get("tagarchive/rejected", 0))
        record: dict[str, Any] = run.record(stats, datetime.now(UTC), "finished")
        if report.not_reparsed:
            record["outcomes"] += [page.outcome() for page in report.skipped]
            more = sum(report.not_reparsed.values()) - len(report.skipped)
            if more:
                record["outcomes"].append({
                    "platform": None, "tag": None, "status": str(Outcome.ERROR),
                    "detail": f"{more} more pages not reparsed (each named in the log)"})
            record["verdict"], record["exit_code"] = "failed", report.exit_code
        return record


def _tag_key(tag: TagRef) -> str | None:
    """The tag as runs name it (`TagJob.key`); as archived when that name does not normalize."""
    from crawler.extensions.runrecord import TagJob

    try:
        return TagJob("", tag).key
    except (ValueError, TypeError, AttributeError):  # a hostile name from the record's headers
        return str(tag.name)


def _one_line_text(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:300] if lines else ""
