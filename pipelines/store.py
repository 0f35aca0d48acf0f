"""Store: hand each item to `storage/` as a row of its dataset (a thin hand-off)."""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

from crawler.items import ActivityItem, PageItems, PostItem, SnapshotItem
from crawler.platforms.base import Outcome
from pipelines import RunPipeline
from storage import DATASETS, SCHEMA_VERSION

_DATASET = {SnapshotItem: "snapshots", PostItem: "posts", ActivityItem: "activity"}


def _columns(dataset: str) -> tuple[str, ...]:
    return tuple(DATASETS[dataset].schema.names)


class StorePipeline(RunPipeline):
    """Last pipeline: buffers rows in the run's DatasetWriter, which flushes by rows and time."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.columns = {cls: tuple(c for c in _columns(ds) if c in {f.name for f in fields(cls)})
                        for cls, ds in _DATASET.items()}
        # one C call reads every column of an item (a Python-level getattr per column was the
        # pipeline's largest own cost); every item class has more than one stored column
        self._getters = {cls: attrgetter(*cols) for cls, cols in self.columns.items()}

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            # one add_many per dataset: the writer's lock and flush check once per page
            rows: dict[str, list[dict[str, Any]]] = {}
            for one in item.items:
                dataset = _DATASET.get(type(one))
                if dataset is not None:
                    rows.setdefault(dataset, []).append(self._row(one, dataset))
            for dataset, batch in rows.items():
                self.run.writer.add_many(dataset, batch)
                self.stats.inc_value(f"tagarchive/stored/{dataset}", len(batch))
            for one in item.items:
                self._stored(one)
            return item
        dataset = _DATASET.get(type(item))
        if dataset is None:
            return item
        self.run.writer.add(dataset, self._row(item, dataset))
        self.stats.inc_value(f"tagarchive/stored/{dataset}")
        self._stored(item)
        return item

    def _row(self, item: Any, dataset: str) -> dict[str, Any]:
        cls = type(item)
        row = dict(zip(self.columns[cls], self._getters[cls](item), strict=True))
        row["platform"] = item.platform
        # activity is partitioned by its own day; observations by when they were seen
        when = item.day if dataset == "activity" else item.observed_at
        row["date"] = when.strftime("%Y-%m-%d")
        row["run_id"] = self.run.run_id
        row["schema_version"] = SCHEMA_VERSION
        return row

    def _stored(self, item: Any) -> None:
        if isinstance(item, SnapshotItem):
            self.run.set_outcome(item.platform, item.job_key or item.tag, Outcome.STORED)
