"""Store: hand each item to `storage/` as a row of its dataset (a thin hand-off)."""

from __future__ import annotations

from typing import Any

from crawler.items import PageItems, SnapshotItem
from crawler.platforms.base import Outcome
from crawler.rules.rows import DATASET_OF, Rows
from crawler.signals import send_outcome
from pipelines import RunPipeline, validated


class StorePipeline(RunPipeline):
    """Last pipeline: buffers rows in the run's DatasetWriter, which flushes by rows and time."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.rows = Rows()

    def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItems):
            # one add_many per dataset: the writer's lock and flush check once per page
            run_id = self.run.run_id
            rows: dict[str, list[dict[str, Any]]] = {}
            for one in item.items:
                dataset = DATASET_OF.get(type(one))
                if dataset is not None:
                    rows.setdefault(dataset, []).append(self.rows.row(one, dataset, run_id))
            for dataset, batch in rows.items():
                self.run.writer.add_many(dataset, batch)
                self.stats.inc_value(f"tagarchive/stored/{dataset}", len(batch))
            for one in item.items:
                self._stored(one)
            return item
        dataset = DATASET_OF.get(type(item))
        if dataset is None:
            return item
        self.run.writer.add(dataset, self.rows.row(item, dataset, self.run.run_id))
        self.stats.inc_value(f"tagarchive/stored/{dataset}")
        self._stored(item)
        return item

    def _stored(self, item: Any) -> None:
        if isinstance(item, SnapshotItem):
            send_outcome(self.crawler.signals, validated(item.platform, "platform"),
                         item.job_key or validated(item.tag, "tag"), Outcome.STORED)
