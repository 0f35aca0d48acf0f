"""The raw archive: what each crawl received, as WARC files, so every number can be traced back.

Layout: `<root>/archive/platform=<p>/date=<d>/<run_id>-<seq>.warc.gz`, partitioned like the
data. Each file is written under a hidden `.tmp` name and renamed into place when it is closed
(at every data flush, so a Parquet row never points into an unpublished file). The writer holds
an flock on its open `.tmp` file; one that nobody holds and that has not changed for
`STALE_TEMP_AGE` was left by a killed crawl, and `clean_stale_temps()` (run by `archive prune`
and by a whole-root `compact`) deletes it.

Records per fetched page:
- plain HTTP: a `response` record (status line, headers, the body as received; Content-Encoding
  dropped because the body is stored decoded);
- rendered: one `response` record for each JSON response the page fetched for itself (captured
  XHR), then a `resource` record holding the rendered DOM, linked to them by
  `WARC-Concurrent-To`.
The record the adapter read (the response, or the DOM record) carries `WARC-Tagarchive-*`
headers: platform, tag, step, step state and run id, which is all `reparse` needs to run the
adapter again offline. Cookies, Set-Cookie and Authorization headers are never written, and
registered secrets are redacted from bodies.

Privacy (storage/archivekeys.py, docs/privacy.md): folders are created 0700 and files 0600,
whatever the umask. With age recipients (the `recipients` argument, else
$TAGARCHIVE_ARCHIVE_RECIPIENTS) each file grows in memory instead of under its `.tmp` name and is
written encrypted, as `<run_id>-<seq>.warc.gz.age`, when it is published: the plaintext never
touches the disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any

from storage.archivekeys import (
    create_private,
    encrypt_bytes,
    make_private_dirs,
    parse_recipients,
    recipients_from_env,
    write_private,
)
from storage.backends import backend_for
from storage.errors import OutputNotWritableError
from storage.fs import delete, list_files
from storage.locks import claim_file, file_in_use
from storage.paths import check_partition_value, ensure_inside_root, utc_day

ARCHIVE_DIR = "archive"
SECRET_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization",
                            "x-csrf-token", "x-ig-www-claim"})
DROPPED_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
HEADER_PREFIX = "WARC-Tagarchive-"
# gzip level of each record. warcio fixes 9; on the replica's TikTok pages level 6 (zlib's
# default) made files 1.6% larger and spent 25-30% less CPU compressing (level 3: 11% larger).
COMPRESS_LEVEL = 6
# A hidden .warc.gz.tmp file no writer holds a lock on is a killed crawl's leftover once it has
# not changed for this long (the age alone decides where flock does not exist: Windows, some
# network filesystems; a live crawl renames its files at every data flush, every 30 s or so).
STALE_TEMP_AGE = timedelta(hours=1)
_TEMP_NAME = re.compile(r"\..+\.warc\.gz(\.age)?\.tmp")
# Published WARC files: plain, or encrypted to age recipients.
WARC_SUFFIXES = (".warc.gz", ".warc.gz.age")
# An encrypted file grows in memory: past this many bytes it is published early (a new one
# starts), so a crawl's memory stays bounded between data flushes.
MAX_MEMORY_FILE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where one record lives: a path relative to the output root, and its WARC-Record-ID."""

    file: str
    record_id: str


def _clean_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items()
            if k.lower() not in SECRET_HEADERS and k.lower() not in DROPPED_HEADERS]


def _record_writer(handle: IO[bytes], level: int) -> Any:
    """A warcio WARCWriter that writes each record as one gzip member at `level`."""
    from io import BytesIO

    from warcio.warcwriter import WARCWriter

    class _Writer(WARCWriter):  # type: ignore[misc]  # warcio is untyped: its base is Any
        def write_record(self, record: Any, params: Any = None) -> None:
            plain = BytesIO()
            self._write_warc_record(plain, record)  # gzip=False: headers, digests, block
            data = memoryview(zlib.compress(plain.getvalue(), level, wbits=31))  # 31: gzip
            while data:  # a short write is followed by another, which raises if the disk is full
                data = data[self.out.write(data):]
            self.out.flush()

    return _Writer(handle, gzip=False, warc_version="1.1")


class _OpenFile:
    def __init__(self, final: Path, tmp: Path, handle: IO[bytes], writer: Any) -> None:
        self.final, self.tmp, self.handle, self.writer = final, tmp, handle, writer


class ArchiveWriter:
    """Appends WARC records per (platform, day) and publishes the files atomically."""

    def __init__(self, root: str | Path, run_id: str,
                 redact: Callable[[str], str] | None = None,
                 compresslevel: int = COMPRESS_LEVEL,
                 recipients: Sequence[str] | None = None) -> None:
        # The files grow in a local directory: the root itself, or for an s3:// root a scratch
        # directory with the same layout whose files are uploaded once closed (storage/backends/).
        self._shipper = backend_for(root).shipper(root)
        self.root = self._shipper.scratch
        self.run_id = check_partition_value("run_id", run_id)
        self.redact = redact
        self.compresslevel = compresslevel
        # local files as Paths; on an S3 root, the uploaded object keys as PurePosixPaths
        self.published: list[PurePath] = []
        self._open: dict[tuple[str, str], _OpenFile] = {}
        self._seq = 0
        self._lock = threading.Lock()
        # age recipients: given, else from the environment; none, no encryption
        self._recipients = parse_recipients(
            recipients_from_env() if recipients is None else recipients)

    def _file(self, platform: str, day: str) -> _OpenFile:
        key = (platform, day)
        current = self._open.get(key)
        if current is not None and not (self._recipients
                                        and current.handle.tell() >= MAX_MEMORY_FILE):
            return current
        if current is not None:  # an encrypted file grown large in memory: publish it now
            del self._open[key]
            self.published.extend(self._shipper.ship(self._seal([current]), self.published))
        platform_dir = f"platform={check_partition_value('platform', platform)}"
        day_dir = f"date={check_partition_value('date', day)}"
        directory = ensure_inside_root(self.root, self.root / ARCHIVE_DIR / platform_dir / day_dir)
        self._seq += 1
        suffix = WARC_SUFFIXES[1] if self._recipients else WARC_SUFFIXES[0]
        final = directory / f"{self.run_id}-{self._seq:04d}{suffix}"
        tmp = directory / f".{final.name}.tmp"
        try:
            make_private_dirs(self.root, directory)  # 0700 each, whatever the umask
            if self._recipients:  # grows in memory, written encrypted when published
                handle: IO[bytes] = io.BytesIO()
            else:
                handle = os.fdopen(create_private(tmp), "wb")  # 0600; closed in rotate
                claim_file(handle.fileno())  # live: clean_stale_temps() leaves it alone
        except OSError as exc:
            raise OutputNotWritableError(exc.errno, f"archive not writable: {directory}",
                                         exc.strerror) from exc
        opened = _OpenFile(final, tmp, handle, _record_writer(handle, self.compresslevel))
        self._open[key] = opened
        return opened

    def _body(self, body: bytes) -> bytes:
        if self.redact is None or not body:
            return body
        text = body.decode("utf-8", errors="surrogateescape")
        clean = self.redact(text)
        return body if clean == text else clean.encode("utf-8", errors="surrogateescape")

    def _write(self, opened: _OpenFile, record: Any) -> RecordRef:
        good = opened.handle.tell()  # warcio flushes after each record: this is exact
        try:
            opened.writer.write_record(record)
        except OSError as exc:  # a full disk: keep the file ending on its last whole record
            self._cut_back(opened, good)
            raise OutputNotWritableError(exc.errno, f"archive not writable: {opened.final}",
                                         exc.strerror) from exc
        record_id = record.rec_headers.get_header("WARC-Record-ID")
        return RecordRef(opened.final.relative_to(self.root).as_posix(), record_id)

    def _cut_back(self, opened: _OpenFile, size: int) -> None:
        """Drop a partly written record from the end of an open file; a file left without any
        record is removed rather than published empty."""
        with contextlib.suppress(OSError):
            opened.handle.close()  # the descriptor is closed even when this last flush fails
        if size == 0:
            self._open = {k: v for k, v in self._open.items() if v is not opened}
            with contextlib.suppress(OSError):
                opened.tmp.unlink()
            return
        with contextlib.suppress(OSError):  # if even this fails, the file stays hidden (.tmp)
            os.truncate(opened.tmp, size)
            opened.handle = open(opened.tmp, "ab")  # noqa: SIM115 - closed in rotate (0600)
            claim_file(opened.handle.fileno())
            opened.writer = _record_writer(opened.handle, self.compresslevel)

    def _response(self, writer: Any, url: str, status: int, headers: dict[str, str],
                  body: bytes, when: datetime, extra: dict[str, str]) -> Any:
        from http import HTTPStatus
        from io import BytesIO

        from warcio.statusandheaders import StatusAndHeaders

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        body = self._body(body)
        http = StatusAndHeaders(f"{status} {reason}", _clean_headers(headers) + [
            ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
        return writer.create_warc_record(
            url, "response", payload=BytesIO(body), length=len(body), http_headers=http,
            warc_headers_dict={"WARC-Date": _warc_date(when), **extra})

    def write_response(self, platform: str, *, url: str, status: int, headers: dict[str, str],
                       body: bytes, observed_at: datetime,
                       meta: dict[str, Any]) -> RecordRef:
        """Archive a page fetched over plain HTTP; returns the record the adapter read."""
        with self._lock:
            opened = self._file(platform, utc_day(observed_at))
            record = self._response(opened.writer, url, status, headers, body, observed_at,
                                    _meta_headers(meta))
            return self._write(opened, record)

    def write_rendered(self, platform: str, *, url: str, dom: str,
                       captured: list[dict[str, Any]], observed_at: datetime,
                       meta: dict[str, Any]) -> RecordRef:
        """Archive a rendered page: its captured responses, then its DOM linked to them."""
        from io import BytesIO

        with self._lock:
            opened = self._file(platform, utc_day(observed_at))
            ids = []
            for cap in captured:
                record = self._response(opened.writer, cap["url"], int(cap["status"]),
                                        cap.get("headers") or {},
                                        cap.get("body", "").encode("utf-8"), observed_at,
                                        {f"{HEADER_PREFIX}Page": url})
                ids.append(self._write(opened, record).record_id)
            body = self._body(dom.encode("utf-8"))
            extra = {"WARC-Date": _warc_date(observed_at), **_meta_headers(meta),
                     f"{HEADER_PREFIX}Captures": json.dumps(ids)}
            if ids:
                extra["WARC-Concurrent-To"] = ids[0]
            record = opened.writer.create_warc_record(
                url, "resource", payload=BytesIO(body), length=len(body),
                warc_content_type="text/html; charset=utf-8", warc_headers_dict=extra)
            return self._write(opened, record)

    def rotate(self) -> list[PurePath]:
        """Close and publish every open file (the next record starts a new one)."""
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        published = self._shipper.ship(self._seal(opened), self.published)
        self.published.extend(published)
        return published

    def _seal(self, opened: list[_OpenFile]) -> list[tuple[Path, Path]]:
        """Close each file and put it under its final name: (tmp, final) pairs to ship."""
        closed: list[tuple[Path, Path]] = []
        for item in opened:
            try:
                if self._recipients:
                    self._seal_encrypted(item)
                else:
                    try:
                        item.handle.flush()
                        os.fsync(item.handle.fileno())
                        self._shipper.seal(item.tmp, item.final)
                    finally:
                        item.handle.close()
            except OSError as exc:
                self._shipper.hold(closed)  # those closed before it go with the next rotate
                raise OutputNotWritableError(exc.errno, f"archive not writable: {item.final}",
                                             exc.strerror) from exc
            closed.append((item.tmp, item.final))
        return closed

    def _seal_encrypted(self, item: _OpenFile) -> None:
        """Write the file's records, encrypted, under its hidden temp name, then its final one."""
        assert isinstance(item.handle, io.BytesIO)
        data = encrypt_bytes(item.handle.getvalue(), self._recipients)
        try:
            write_private(item.tmp, data)
        except OSError:
            with contextlib.suppress(OSError):
                item.tmp.unlink()  # no partial file is left (nor, as ever, published)
            raise
        item.handle.close()
        self._shipper.seal(item.tmp, item.final)

    def close(self) -> list[PurePath]:
        published = self.rotate()
        self._shipper.close()
        return published


def _meta_headers(meta: dict[str, Any]) -> dict[str, str]:
    return {f"{HEADER_PREFIX}{key}": value if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
            for key, value in meta.items()}


def _warc_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_meta(record: Any) -> dict[str, Any]:
    """The `WARC-Tagarchive-*` headers of a record, JSON values decoded."""
    meta: dict[str, Any] = {}
    for name, value in record.rec_headers.headers:
        if name.startswith(HEADER_PREFIX):
            key = name[len(HEADER_PREFIX):]
            try:
                meta[key] = json.loads(value)
            except ValueError:
                meta[key] = value
    return meta


@dataclass(frozen=True)
class PruneReport:
    """What a retention pass removed (or would remove, in a dry run) and what it kept."""

    # local files as Paths; on an S3 root, object keys as PurePosixPaths
    removed: list[PurePath]
    removed_bytes: int
    kept_files: int
    kept_bytes: int
    dry_run: bool
    # hidden .warc.gz.tmp files of killed crawls, removed (or, in a dry run, that would be)
    stale_temps: list[Path] = field(default_factory=list)


def _day_dirs(root: str | Path) -> Iterator[Path]:
    """Every ``archive/platform=*/date=*`` folder of a local root, checked to be inside it
    (a symlinked one leading elsewhere raises UnsafePathError: nothing there is ours)."""
    root = backend_for(root).location(root)  # a file:// root is the directory it names
    base = Path(os.path.abspath(root)) / ARCHIVE_DIR
    if not os.path.lexists(base):
        return
    ensure_inside_root(root, base)
    for platform_dir in sorted(base.glob("platform=*")):
        ensure_inside_root(root, platform_dir)
        if not platform_dir.is_dir():
            continue
        for day_dir in sorted(platform_dir.glob("date=*")):
            ensure_inside_root(root, day_dir)
            if day_dir.is_dir():
                yield day_dir


def published_files(root: str | Path) -> list[tuple[str, PurePath, int]]:
    """Every published WARC file, plain or encrypted, as (day, path, size), oldest day first:
    local Paths, or on an S3 root the object keys (PurePosixPaths)."""
    backend = backend_for(root)
    files: list[tuple[str, PurePath, int]] = []
    if backend.remote:  # the same selection over the listed objects
        s3 = backend.location(root)
        for key, size in list_files(s3, ARCHIVE_DIR):
            parts = s3.relative(key).split("/")
            if (len(parts) == 4 and parts[1].startswith("platform=")
                    and parts[2].startswith("date=") and parts[3].endswith(WARC_SUFFIXES)
                    and not parts[3].startswith(".")):
                files.append((parts[2].removeprefix("date="), PurePosixPath(key), size))
    else:
        for day_dir in _day_dirs(root):
            for path in sorted(day_dir.iterdir()):
                if (path.name.endswith(WARC_SUFFIXES) and not path.name.startswith(".")
                        and path.is_file()):
                    day = path.parent.name.removeprefix("date=")
                    files.append((day, path, path.stat().st_size))
    files.sort(key=lambda f: (f[0], f[1].name))
    return files


def clean_stale_temps(root: str | Path, *, min_age: timedelta = STALE_TEMP_AGE,
                      now: datetime | None = None, dry_run: bool = False) -> list[Path]:
    """Delete the hidden ``.warc.gz.tmp`` files killed crawls left under ``archive/``.

    A file goes when no live writer holds its lock (storage.locks.claim_file) and it has not
    changed for ``min_age``; the age also covers the instant between a writer creating its file
    and locking it, and writers of older versions, which take no lock. Returns what went (or,
    with ``dry_run``, what would). S3 roots have none: files are written locally, then uploaded.
    """
    if backend_for(root).remote:  # its files are written in a scratch directory, then uploaded
        return []
    moment = (now or datetime.now(UTC)).timestamp()
    cutoff = moment - min_age.total_seconds()
    day_dirs = list(_day_dirs(root))  # every folder checked before anything is deleted
    removed: list[Path] = []
    for day_dir in day_dirs:
        with os.scandir(day_dir) as entries:
            temps = sorted(e.path for e in entries
                           if _TEMP_NAME.fullmatch(e.name) and e.is_file(follow_symlinks=False))
        for path in temps:
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue  # renamed into place or removed meanwhile
            try:
                if os.fstat(fd).st_mtime > cutoff or file_in_use(fd):
                    continue  # a live crawl's, or young enough to be one
                if not dry_run:
                    os.unlink(path)  # while holding its lock: no writer can take it back
                removed.append(Path(path))
            except OSError:
                continue
            finally:
                os.close(fd)
    return removed


def prune(root: str | Path, *, max_age_days: int | None = None, max_bytes: int | None = None,
          today: datetime | None = None, dry_run: bool = False) -> PruneReport:
    """Delete the oldest archive files beyond an age (by partition day) and/or a total size.

    Rows keep their `archive_file` pointer; after pruning, those older records are gone, which
    is why this is only done by an explicit command, or by the scheduler after each run when
    the config sets `[archive] max_age`. Oldest days go first; within a day, files go in name
    order (run ids sort by time). Encrypted files (`.warc.gz.age`) count like plain ones.
    """
    if max_age_days is None and max_bytes is None:
        raise ValueError("give a maximum age, a maximum size, or both")
    backend = backend_for(root)
    s3 = backend.location(root) if backend.remote else None
    files = published_files(root)
    doomed: set[PurePath] = set()
    if max_age_days is not None:
        cutoff = ((today or datetime.now(UTC)).date()).toordinal() - max_age_days
        from datetime import date as _date

        doomed.update(p for day, p, _ in files if _date.fromisoformat(day).toordinal() < cutoff)
    if max_bytes is not None:
        total = sum(size for _, p, size in files if p not in doomed)
        for _, entry, size in files:
            if total <= max_bytes:
                break
            if entry not in doomed:
                doomed.add(entry)
                total -= size
    removed = [p for _, p, _ in files if p in doomed]
    removed_bytes = sum(size for _, p, size in files if p in doomed)
    stale = clean_stale_temps(root, dry_run=dry_run)  # file ages: the real clock
    if not dry_run and s3 is not None:
        for entry in removed:
            delete(s3, entry.as_posix())
    elif not dry_run:
        for entry in removed:
            path = Path(entry)  # a local root: every entry came from a glob as a Path
            path.unlink()
            for directory in (path.parent, path.parent.parent):
                try:
                    directory.rmdir()  # only when empty
                except OSError:
                    break
    return PruneReport(removed=removed, removed_bytes=removed_bytes,
                       kept_files=len(files) - len(removed),
                       kept_bytes=sum(s for _, _, s in files) - removed_bytes, dry_run=dry_run,
                       stale_temps=stale)
