"""The crawl's item rules applied offline, page by page, as the pipelines apply them in a crawl.

`reparse` (reparse.py) calls these: the rules are the plain functions of crawler/rules/, the
rows go to the reparse's own DatasetWriter and the outcomes to its `RunState`, with no Scrapy
crawler in between.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from crawler.items import SnapshotItem
from crawler.platforms.base import Outcome
from crawler.rules import (
    DATASET_OF,
    Rows,
    TagMemo,
    dedupe_key,
    item_kind,
    item_problems,
    normalize_item,
    reject_row,
)
from crawler.rules.privacy import Privacy

if TYPE_CHECKING:
    from crawler.services.reparse import ArchivedPage
    from storage import DatasetWriter

# the clock skew and bound validate allow by default (TAGARCHIVE_CLOCK_SKEW, _MAX_COUNT)
_SKEW = timedelta(seconds=300)
_MAX_COUNT = 10**15

class _RunDedupe:
    """The dedupe keys seen per original run: a reparse repeats each crawl's own dedupe.

    A live crawl drops repeats within its run (a topic asked for by name and by id, a post shown
    twice); each run is its own observation. One set over the whole archive would keep only the
    first run's observation of each tag and post. A run's files sit together in its
    (platform, day) partition and in the next one when it ran over midnight, so a run not seen
    for a whole partition is finished and its keys are let go (memory stays one partition's).
    """

    def __init__(self) -> None:
        # run -> (its seen dedupe keys, the index of the partition it was last met in)
        self._runs: dict[str, tuple[set[tuple[str | None, ...]], int]] = {}
        self._partition: str | None = None
        self._index = 0

    def for_page(self, archived: ArchivedPage) -> set[tuple[str | None, ...]]:
        partition = PurePosixPath(archived.ref.file).parent.as_posix()
        if partition != self._partition:
            self._partition, self._index = partition, self._index + 1
            self._runs = {k: v for k, v in self._runs.items() if v[1] >= self._index - 1}
        run = archived.run_id or archived.ref.file  # an archive without run ids: one per file
        seen = self._runs[run][0] if run in self._runs else set()
        self._runs[run] = (seen, self._index)
        return seen


class OfflineRules:
    """The crawl's item rules (crawler/rules/) over one page's items, as the pipelines apply
    them: normalize, validate (rejects written), dedupe, store; counts kept as a crawl's stats.
    """

    def __init__(self, run: Any, writer: DatasetWriter, privacy: Privacy | None = None) -> None:
        self.run = run
        self.writer = writer
        self.privacy = privacy or Privacy("keep")
        self.stats: dict[str, int] = {}
        self.tags = TagMemo()
        self.rows = Rows()
        self.dedupe = _RunDedupe()

    def count(self, key: str, by: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + by

    def judge(self, items: list[Any], archived: ArchivedPage) -> list[Any]:
        """The items to store; each stage runs over the whole page before the next."""
        items = [self.privacy.apply(normalize_item(item, self.tags)) for item in items]
        now = datetime.now(UTC)  # one page's items are judged at one instant
        items = [item for item in items if self._valid(item, now)]
        seen = self.dedupe.for_page(archived)
        return [item for item in items if self._first(item, seen)]

    def _valid(self, item: Any, now: datetime) -> bool:
        kind = item_kind(item)
        if kind is None:
            return True
        reasons = item_problems(item, now, _MAX_COUNT, _SKEW)
        if not reasons:
            return True
        self.writer.add("rejects", reject_row(item, kind, reasons, now, self.run.run_id))
        self.count("tagarchive/rejected")
        if kind == "snapshot" and item.platform:
            self.run.set_outcome(item.platform, item.job_key or item.tag or "", Outcome.REJECTED,
                                 "; ".join(reasons))
        return False

    def _first(self, item: Any, seen: set[tuple[str | None, ...]]) -> bool:
        key = dedupe_key(item)
        if key is None:
            return True
        if key in seen:
            if isinstance(item, SnapshotItem) and item.job_key:
                self.run.set_outcome(item.platform, item.job_key, Outcome.STORED,
                                     "same topic as another requested tag")
            return False
        seen.add(key)
        return True

    def store(self, items: list[Any]) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            dataset = DATASET_OF.get(type(item))
            if dataset is not None:
                rows.setdefault(dataset, []).append(self.rows.row(item, dataset, self.run.run_id))
        for dataset, batch in rows.items():
            self.writer.add_many(dataset, batch)
            self.count(f"tagarchive/stored/{dataset}", len(batch))
        for item in items:
            if isinstance(item, SnapshotItem):
                self.run.set_outcome(item.platform, item.job_key or item.tag, Outcome.STORED)
