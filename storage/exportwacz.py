"""The raw records behind exported rows, packaged as a WACZ (py-wacz) that ReplayWeb.page opens.

py-wacz writes the WACZ; two things in its output change from run to run, and this module fixes
both after the fact so the same records give the same bytes: the date of every zip entry (the
time of writing, or a file's mtime) becomes the export's `created` time, and `created` inside
the WACZ's datapackage.json becomes the same, its digest (datapackage-digest.json) recomputed.
Nothing else differs (checked by tests/test_export.py exporting twice). The plain WARC records,
decrypted in memory, are written for py-wacz in a private (0700) temporary folder inside the
export folder, removed after.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage.exportfiles import safe_target, write_bytes

ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)  # the earliest date a zip entry can carry


@dataclass(frozen=True)
class WaczPage:
    """One page ReplayWeb.page lists: the record an exported row was read from."""

    page_id: str
    url: str
    ts: str  # the record's WARC-Date
    title: str


class WaczError(Exception):
    """py-wacz refused the records (its own message, one line)."""


def pages_jsonl(pages: Sequence[WaczPage], title: str) -> bytes:
    lines = [json.dumps({"format": "json-pages-1.0", "id": "pages", "title": title},
                        ensure_ascii=False)]
    lines += [json.dumps({"id": p.page_id, "url": p.url, "ts": p.ts, "title": p.title},
                         ensure_ascii=False) for p in pages]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build_wacz(out: Path, relative: str, warcs: Sequence[tuple[str, bytes]],
               pages: Sequence[WaczPage], title: str, description: str,
               created: datetime) -> Path:
    """Write `out/relative`: the WARC files `warcs` (name, bytes) and the page list."""
    from wacz.main import main as wacz_main

    target = safe_target(out, relative)
    scratch = Path(tempfile.mkdtemp(prefix=".wacz-", dir=out))  # 0700, as mkdtemp makes it
    try:
        inputs = []
        for name, data in warcs:
            path = scratch / name
            path.write_bytes(data)
            inputs.append(str(path))
        (scratch / "pages.jsonl").write_bytes(pages_jsonl(pages, title))
        raw = scratch / "raw.wacz"
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            code = wacz_main(["create", "-o", str(raw), "--pages", str(scratch / "pages.jsonl"),
                              "--copy-pages", "--title", title, "--desc", description,
                              *inputs])
        if code:
            lines = log.getvalue().strip().splitlines() or ["py-wacz failed"]
            raise WaczError(lines[-1])
        return write_bytes(out, str(target.relative_to(out)), _stable(raw.read_bytes(), created))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stable(wacz: bytes, created: datetime) -> bytes:
    """The same WACZ with fixed entry dates and `created`, so equal records give equal bytes."""
    moment = max(created.astimezone(UTC), ZIP_EPOCH)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    when = moment.timetuple()[:6]
    result = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(wacz)) as source, \
            zipfile.ZipFile(result, "w") as target:
        entries = [(info, source.read(info)) for info in source.infolist()]
        package = next(data for info, data in entries if info.filename == "datapackage.json")
        described = json.loads(package)
        described["created"] = stamp
        package = json.dumps(described, indent=2).encode("utf-8")
        digest = json.dumps({"path": "datapackage.json",
                             "hash": "sha256:" + hashlib.sha256(package).hexdigest()},
                            indent=2).encode("utf-8")
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=when)
            fixed.compress_type = info.compress_type
            fixed.create_system = 3  # unix, whatever the machine
            fixed.external_attr = 0o644 << 16
            data = {"datapackage.json": package,
                    "datapackage-digest.json": digest}.get(info.filename, data)
            target.writestr(fixed, data)
    return result.getvalue()
