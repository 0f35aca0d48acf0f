"""Reading back the archive records that rows point to: `archive_file` + `archive_record`.

A row's `archive_file` is data, not a path to trust: it must have the archive's own shape
(`archive/platform=<p>/date=<day>/<name>.warc.gz[.age]`, each part a safe path value) and lie
inside the root, else UnsafePathError. A plain file encrypted later by `tagarchive archive secure`
is found under its `.age` name. Records are returned as the exact bytes archived (each record is
one gzip member), so their WARC digests still hold wherever they are copied.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.archive import ARCHIVE_DIR, HEADER_PREFIX
from storage.archivekeys import ENCRYPTED_SUFFIX, open_warc
from storage.backends import backend_for
from storage.errors import UnsafePathError
from storage.paths import check_partition_value, ensure_inside_root, safe_partition_value

if TYPE_CHECKING:
    import pyrage

_REL = re.compile(rf"{ARCHIVE_DIR}/platform=([^/]+)/date=([^/]+)/([^/]+?)(\.warc\.gz(?:\.age)?)")


def check_archive_file(rel: str) -> str:
    """`rel` if it has the shape of an archive file path relative to the root; else
    UnsafePathError (a hostile `archive_file` value never becomes a path)."""
    match = _REL.fullmatch(rel) if isinstance(rel, str) else None
    if match is None:
        raise UnsafePathError(f"not an archive file path: {str(rel)[:120]!r}")
    check_partition_value("platform", match.group(1))
    check_partition_value("date", match.group(2))
    safe_partition_value(match.group(3))
    return rel


def locate(root: Any, rel: str) -> str:
    """The file `rel` names as its back-end opens it (its `.age` twin when only that exists);
    FileNotFoundError when neither is there (pruned, or never published)."""
    check_archive_file(rel)
    backend = backend_for(root)
    candidates = [rel] if rel.endswith(ENCRYPTED_SUFFIX) else [rel, rel + ENCRYPTED_SUFFIX]
    for candidate in candidates:
        if backend.exists(root, *candidate.split("/")):
            if backend.remote:
                path: str = backend.location(root).path(candidate)
                return path
            local = Path(backend.location(root), candidate)
            ensure_inside_root(backend.location(root), local)
            return str(local)
    raise FileNotFoundError(f"{rel}: not in the archive (pruned, or never published)")


def read_archive_file(root: Any, rel: str,
                      identities: Sequence[pyrage._Identity] | None = None) -> bytes:
    """The WARC bytes of one archive file, decrypted in memory when it is encrypted."""
    path = locate(root, rel)
    with open_warc(backend_for(root), root, path, identities) as handle:
        return handle.read()


@dataclass(frozen=True)
class RecordSpan:
    """One record of a WARC file: where its gzip member lies, and what links it to others."""

    record_id: str
    offset: int
    length: int
    url: str
    date: str
    rec_type: str
    captures: tuple[str, ...]  # the captured responses a rendered page's DOM record names
    mime: str


def record_spans(data: bytes) -> list[RecordSpan]:
    """Every record of a WARC file's bytes, in file order."""
    from warcio.archiveiterator import ArchiveIterator

    spans = []
    iterator = ArchiveIterator(io.BytesIO(data))
    for record in iterator:
        headers = record.rec_headers
        captures = headers.get_header(f"{HEADER_PREFIX}Captures") or "[]"
        try:
            linked = tuple(str(c) for c in json.loads(captures))
        except (ValueError, TypeError):
            linked = ()
        http = record.http_headers
        mime = (http.get_header("Content-Type") if http is not None
                else headers.get_header("Content-Type")) or ""
        iterator.read_to_end(record)
        spans.append(RecordSpan(
            record_id=headers.get_header("WARC-Record-ID") or "",
            offset=iterator.get_record_offset(), length=iterator.get_record_length(),
            url=headers.get_header("WARC-Target-URI") or "",
            date=headers.get_header("WARC-Date") or "", rec_type=record.rec_type,
            captures=linked, mime=mime.split(";")[0].strip()))
    return spans


def pick(data: bytes, wanted: Iterable[str]) -> tuple[list[RecordSpan], bytes]:
    """The records named (and the captured responses a rendered page's record links to), in
    file order, and their bytes as archived, concatenated: a valid WARC file of its own."""
    spans = record_spans(data)
    want = set(wanted)
    for span in spans:
        if span.record_id in want:
            want.update(span.captures)
    chosen = [s for s in spans if s.record_id in want]
    return chosen, b"".join(data[s.offset:s.offset + s.length] for s in chosen)


def record_payload(data: bytes, record_id: str) -> bytes:
    """The payload (HTTP body, or the rendered DOM) of one record; KeyError if absent."""
    from warcio.archiveiterator import ArchiveIterator

    for record in ArchiveIterator(io.BytesIO(data)):
        if record.rec_headers.get_header("WARC-Record-ID") == record_id:
            payload: bytes = record.content_stream().read()
            return payload
    raise KeyError(f"no record {record_id} in this file")
