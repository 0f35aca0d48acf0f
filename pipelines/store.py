"""Store: hand each item to `storage/` as a row of its dataset (a thin hand-off)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from crawler.items import ActivityItem, PostItem, SnapshotItem
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

    def process_item(self, item: Any) -> Any:
        dataset = _DATASET.get(type(item))
        if dataset is None:
            return item
        row = {name: getattr(item, name) for name in self.columns[type(item)]}
        row["platform"] = item.platform
        # activity is partitioned by its own day; observations by when they were seen
        when = item.day if dataset == "activity" else item.observed_at
        row["date"] = when.strftime("%Y-%m-%d")
        row["run_id"] = self.run.run_id
        row["schema_version"] = SCHEMA_VERSION
        self.run.writer.add(dataset, row)
        self.stats.inc_value(f"tagarchive/stored/{dataset}")
        if dataset == "snapshots":
            self.run.set_outcome(item.platform, item.job_key or item.tag, Outcome.STORED)
        return item
