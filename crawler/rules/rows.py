"""Storage rows: an item as a row of its dataset, the columns its Arrow schema names."""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

from crawler.items import ActivityItem, PostItem, SnapshotItem
from storage import DATASETS, SCHEMA_VERSION

DATASET_OF = {SnapshotItem: "snapshots", PostItem: "posts", ActivityItem: "activity"}


def _columns(dataset: str) -> tuple[str, ...]:
    return tuple(DATASETS[dataset].schema.names)


class Rows:
    """Builds storage rows; the column readers are made once, not per item."""

    def __init__(self) -> None:
        self.columns = {cls: tuple(c for c in _columns(ds) if c in {f.name for f in fields(cls)})
                        for cls, ds in DATASET_OF.items()}
        # one C call reads every column of an item (a Python-level getattr per column was the
        # pipeline's largest own cost); every item class has more than one stored column
        self._getters = {cls: attrgetter(*cols) for cls, cols in self.columns.items()}
        # the last partition day formatted: a page's rows share one observation time, and
        # strftime per row was 40% of this method (measured)
        self._when: Any = object()  # nothing a row holds: the first row formats its own
        self._day = ""

    def row(self, item: Any, dataset: str, run_id: str) -> dict[str, Any]:
        """The item's row in `dataset`, partitioned and labelled with the run."""
        cls = type(item)
        row = dict(zip(self.columns[cls], self._getters[cls](item), strict=True))
        row["platform"] = item.platform
        # activity is partitioned by its own day; observations by when they were seen
        when = item.day if dataset == "activity" else item.observed_at
        if when is not self._when:  # the same object: datetimes and dates are immutable
            self._day = when.strftime("%Y-%m-%d")
            self._when = when
        row["date"] = self._day
        row["run_id"] = run_id
        row["schema_version"] = SCHEMA_VERSION
        return row
