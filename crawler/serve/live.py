"""The archive as the web view reads it: opened once, noticed when it changes.

Every `refresh` seconds at most, a request lists the datasets' files (a directory walk, or one
LIST per dataset on S3); when the listing differs, the archive's views are re-created and the
data generation goes up. What the pages show (tags, a tag's report section, its newest
snapshot, the SQL box's datasets) is computed once per generation and kept, so a page polling
every few seconds costs a listing, not a query.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from crawler.report import NothingToReport, ReportRequest, build_report, render_html
from storage.analysis import fold_tag
from storage.backends import backend_for
from storage.reading import open_dataset
from storage.schemas import DATASETS

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from storage.analysis import Archive

T = TypeVar("T")
# Report sections kept per generation: the tags people have open, not the whole archive.
_SECTIONS_KEPT = 32
ALERTS_DATASET = "alerts"
ALERTS_SHOWN = 20
# The time an alert row is ordered by (the first of these it has), and the columns shown.
_ALERT_TIMES = ("sent_at", "observed_at")
_ALERT_COLUMNS = ("sent_at", "state", "alert", "kind", "watch", "platform", "tag", "counter",
                  "value", "message")
# The report page's inline style attributes (a card's colour, a legend swatch): a strict CSP
# forbids them, so they travel as data-style and serve.js sets them through the CSSOM, which
# CSP allows. Text and attribute values in the page are escaped (`"` is &quot;), so this
# matches real attributes only.
_STYLE_ATTRIBUTE = re.compile(r'(\s)style="')


@dataclass(frozen=True)
class Section:
    """One tag's report section as HTML, and the newest snapshot it shows."""

    tag: str
    display: str
    html: str
    newest: datetime | None
    snapshots: int


@dataclass(frozen=True)
class Alerts:
    """The `alerts` dataset's recent rows; `present` is false when it has none (no alert is
    configured, or none has fired yet)."""

    present: bool
    columns: list[str]
    rows: list[dict[str, Any]]


def tag_section(page: str) -> str:
    """The `<section class="tag">` of a one-tag report page, styles as data-style."""
    start = page.find('<section class="tag"')
    end = page.rfind("</section>")
    if start < 0 or end < start:
        raise RuntimeError("the report page has no tag section (crawler/report/page.py changed)")
    return _STYLE_ATTRIBUTE.sub(r'\1data-style="', page[start:end + len("</section>")])


class LiveArchive:
    """An opened archive as the web view reads it; closing it closes the archive."""

    def __init__(self, archive: Archive, refresh: float) -> None:
        self.archive = archive
        self.root = self.archive.root
        self.refresh = refresh
        self.generation = 0
        self.listing_error: str | None = None
        self._lock = threading.RLock()
        self._checked = time.monotonic()
        self._signature = self._listing()
        self._kept: dict[str, Any] = {}
        self._sections: OrderedDict[str, Section | str] = OrderedDict()

    def close(self) -> None:
        self.archive.close()

    # --- noticing new files ----------------------------------------------------------------

    def _listing(self) -> int:
        backend = backend_for(self.root)
        names = [*DATASETS, *([ALERTS_DATASET] if ALERTS_DATASET not in DATASETS else [])]
        return hash(tuple((name, tuple(backend.list_files(self.root, name))) for name in names))

    def current(self) -> int:
        """The data generation, after looking for new files if `refresh` seconds have passed."""
        with self._lock:
            if time.monotonic() - self._checked < self.refresh:
                return self.generation
            self._checked = time.monotonic()
            try:
                signature = self._listing()
            except OSError as exc:  # S3 unreachable for a moment: keep showing what we have
                self.listing_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return self.generation
            self.listing_error = None
            if signature != self._signature:
                self.archive.refresh()  # may raise: then the next request tries again
                self._signature = signature
                self.generation += 1
                self._kept.clear()
                self._sections.clear()
            return self.generation

    def _once(self, key: str, make: Callable[[], T]) -> T:
        """`make()` once per generation (the caller holds the lock)."""
        if key not in self._kept:
            self._kept[key] = make()
        value: T = self._kept[key]
        return value

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        table: pa.Table = self.archive.con.sql(sql, params=params).to_arrow_table()  # duckdb: Any
        return table.to_pylist()

    # --- what the pages show ---------------------------------------------------------------

    def tags(self) -> list[dict[str, Any]]:
        """Every tag with snapshots: display name, platforms, count, first and last seen."""
        with self._lock:
            self.current()
            return self._once("tags", lambda: self._rows(
                "select tag, any_value(tag_display) as tag_display, list(distinct platform "
                "order by platform) as platforms, count(*) as snapshots, min(observed_at) as "
                "first_seen, max(observed_at) as last_seen from snapshots group by tag "
                "order by last_seen desc, tag"))

    def newest(self, tag: str) -> tuple[datetime | None, int]:
        """The time of a tag's newest snapshot and how many it has."""
        folded = fold_tag(tag)
        with self._lock:
            self.current()
            row = self._once(f"newest:{folded}", lambda: self._rows(
                "select max(observed_at) as newest, count(*) as snapshots from snapshots "
                "where tag = ?", [folded])[0])
            return row["newest"], int(row["snapshots"])

    def section(self, tag: str) -> Section:
        """A tag's report section (raises NothingToReport for a tag without snapshots)."""
        folded = fold_tag(tag)
        with self._lock:
            self.current()
            kept = self._sections.get(folded)
            if kept is None:
                try:
                    report = build_report(self.archive, ReportRequest(tags=[folded]))
                    newest, count = self.newest(folded)
                    kept = Section(folded, report.tags[0].display,
                                   tag_section(render_html(report)), newest, count)
                except NothingToReport as exc:
                    kept = str(exc)
                self._sections[folded] = kept
                while len(self._sections) > _SECTIONS_KEPT:
                    self._sections.popitem(last=False)
            self._sections.move_to_end(folded)
            if isinstance(kept, str):
                raise NothingToReport(kept)
            return kept

    def datasets(self) -> dict[str, ds.Dataset]:
        """Every dataset as a pyarrow dataset, for the SQL box's locked connections."""
        with self._lock:
            self.current()
            return self._once("datasets", lambda: {
                name: open_dataset(self.root, name) for name in DATASETS})

    def columns(self) -> dict[str, list[tuple[str, str]]]:
        """Each view's columns and their types, as `query` shows them."""
        with self._lock:
            self.current()
            return self._once("columns", lambda: {
                name: [(r["column_name"], r["column_type"])
                       for r in self._rows(f'describe "{name}"')]
                for name in DATASETS})

    def alerts(self, limit: int = ALERTS_SHOWN) -> Alerts:
        """The most recent rows of the `alerts` dataset, the columns a reader needs first."""
        if ALERTS_DATASET not in DATASETS:
            return Alerts(False, [], [])
        schema = DATASETS[ALERTS_DATASET].schema
        names = [f.name for f in schema]
        order = next((n for n in _ALERT_TIMES if n in names), None)
        by = f' order by "{order}" desc nulls last' if order else ""
        shown = [n for n in _ALERT_COLUMNS if n in names] or names
        with self._lock:
            self.current()
            rows = self._once(f"alerts:{limit}", lambda: self._rows(
                f'select * from "{ALERTS_DATASET}"{by} limit {int(limit)}'))
        if not rows:
            return Alerts(False, shown, [])
        out = []
        for row in rows:
            kept = {n: row[n] for n in shown}
            deliveries = row.get("deliveries")
            if deliveries is not None:  # each target's result: how many took the message
                sent = sum(1 for d in deliveries if d.get("ok"))
                kept["delivered"] = f"{sent} of {len(deliveries)}"
            out.append(kept)
        return Alerts(True, list(out[0]), out)
