"""Buffered, partitioned Parquet writer that publishes each file atomically (temp name + rename)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage.backends import backend_for
from storage.backends.base import Compression
from storage.errors import SchemaError, StorageError
from storage.paths import check_partition_value, utc_day
from storage.schemas import DATASETS, DatasetSpec, get_spec, table_from_rows

logger = logging.getLogger(__name__)

Row = Mapping[str, Any]
# A partition key as the row getter returns it: a str for one key, a tuple for several.
PartitionKey = Any


@dataclass(frozen=True)
class WrittenFile:
    """One Parquet file published by a DatasetWriter."""

    dataset: str
    path: PurePath  # a Path for a local root; ``bucket/prefix/...`` for an s3:// root
    rows: int
    bytes: int


def _load_pandas_shim() -> None:
    """Let pyarrow import pandas now, if it is going to, rather than at the first flush.

    pyarrow's first `pa.array` of a Python sequence asks its lazy pandas shim whether the
    sequence is a pandas object (array.pxi `_is_array_like`), which imports pandas when it is
    installed: 0.2-0.5 s in a fresh process, whatever the rows. A crawl makes its writer when
    the run starts (the store pipeline, on `run_started`, sent at spider_opened), before the
    engine sends its first request; doing the import there keeps it from stalling the event
    loop for that long at the first flush, mid-crawl, with responses waiting. It is the same
    import, paid once per process either way (the crawl benchmark's window, spider_opened ->
    spider_closed, no longer includes it: docs/performance.md). pyarrow remembers the answer,
    so later writers pay nothing.
    """
    pa.array(())


def _raw_json(row: Row) -> str:
    try:
        return json.dumps(dict(row), default=str, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):  # non-str keys mixed with str keys, circular data
        return repr(row)


class DatasetWriter:
    """Buffers rows per (dataset, partition) and publishes each flush as new Parquet files.

    Files are named ``part-<run_id>-<seq:04d>.parquet`` and only ever added, never replaced, so
    many runs can append to one root. A failed write leaves no file behind and keeps its rows
    buffered for the next flush. Rows are kept by reference until written: do not mutate them.
    """

    def __init__(
        self,
        root: str | Path,
        run_id: str,
        *,
        flush_rows: int = 50_000,
        flush_seconds: float = 30.0,
        compression: Compression = "zstd",
        clock: Callable[[], float] = time.monotonic,
        before_flush: Callable[[], None] | None = None,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, got {flush_rows}")
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive, got {flush_seconds}")
        # The root's back-end publishes each file whole: a local directory renames a temp file
        # into place, an s3:// root uploads once under the final key (storage/backends/).
        self._store = backend_for(root).publisher(root)
        self.root: Any = self._store.root
        # The run id is part of every file name, so it must be as safe as a partition value.
        self.run_id = check_partition_value("run_id", run_id)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.compression = compression
        self.files: list[WrittenFile] = []
        self.diverted_rows = 0  # rows moved to `rejects` because they did not fit their schema
        self._clock = clock
        # called before any rows are written, e.g. to publish the raw archive files that the
        # rows point into, so a reader never finds a pointer to an unpublished file
        self._before_flush = before_flush
        # _lock guards the buffers and counters and is never held during file I/O, so a timer
        # thread's flush does not stall add(); _flush_lock lets one flush run at a time.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._key_getters = {name: itemgetter(*s.partition_by) for name, s in DATASETS.items()}
        self._buffers: dict[str, dict[PartitionKey, list[Row]]] = {name: {} for name in DATASETS}
        self._pending = dict.fromkeys(DATASETS, 0)
        self._oldest: dict[str, float | None] = dict.fromkeys(DATASETS)
        self._checked_keys: dict[str, dict[PartitionKey, dict[str, str]]] = {
            name: {} for name in DATASETS
        }
        self._seq = 0
        self._retry_after = -math.inf
        self._closed = False
        _load_pandas_shim()  # a heavy import, before a crawl's requests rather than among them

    # --- adding ---------------------------------------------------------------------------

    def add(self, dataset: str, row: Row) -> list[WrittenFile]:
        """Buffer one row (it must hold its partition keys); returns files a due flush wrote."""
        return self.add_many(dataset, (row,))

    def add_many(self, dataset: str, rows: Iterable[Row]) -> list[WrittenFile]:
        """Buffer rows, all or none; returns the files written if this made a flush due.

        A StorageError raised by the flush this triggers does not undo the add: the rows are
        buffered and will be written by a later flush or close().
        """
        spec = get_spec(dataset)
        rows = rows if isinstance(rows, list | tuple) else list(rows)
        if not rows:
            return []
        try:
            keys = list(map(self._key_getters[dataset], rows))
        except (KeyError, TypeError) as exc:
            missing = next(
                (k for r in rows for k in spec.partition_by if not _has_key(r, k)), repr(exc)
            )
            raise SchemaError(
                f"{dataset} rows must hold their partition keys "
                f"({', '.join(spec.partition_by)}); missing {missing!r}"
            ) from None
        now = self._clock()
        with self._lock:
            if self._closed:
                raise StorageError(f"writer for run {self.run_id} is closed")
            checked = self._checked_keys[dataset]
            try:
                new_keys = set(keys).difference(checked)
            except TypeError:  # unhashable value: check each to name it
                new_keys = set()
                for key in keys:
                    self._partitions(spec, key)
            for key in new_keys:
                checked[key] = self._partitions(spec, key)
            buckets = self._buffers[dataset]
            if keys.count(keys[0]) == len(keys):
                buckets.setdefault(keys[0], []).extend(rows)  # the usual batch: one partition
            else:
                # runs of one partition, as rows usually come, moved in C-level passes
                for key, run in groupby(zip(keys, rows, strict=True), key=itemgetter(0)):
                    buckets.setdefault(key, []).extend(map(itemgetter(1), run))
            if self._oldest[dataset] is None:
                self._oldest[dataset] = now
            self._pending[dataset] += len(rows)
            due = self._due(now)
        if due and self._flush_lock.acquire(blocking=False):
            # Never wait here: if a timer thread is flushing, these rows go in the next flush.
            try:
                return self._flush(due)
            finally:
                self._flush_lock.release()
        return []

    @staticmethod
    def _partitions(spec: DatasetSpec, key: PartitionKey) -> dict[str, str]:
        values = key if len(spec.partition_by) > 1 else (key,)
        return {
            k: check_partition_value(k, v) for k, v in zip(spec.partition_by, values, strict=True)
        }

    # --- flushing ---------------------------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        """Datasets to flush now (call with _lock held)."""
        if now < self._retry_after:
            return []
        due = []
        for name, count in self._pending.items():
            oldest = self._oldest[name]
            if count and (
                count >= self.flush_rows
                or (oldest is not None and now - oldest >= self.flush_seconds)
            ):
                due.append(name)
        return due

    def pending(self, dataset: str | None = None) -> int:
        """Rows buffered and not yet written, for one dataset or all."""
        with self._lock:
            return self._pending[get_spec(dataset).name] if dataset else sum(self._pending.values())

    def maybe_flush(self) -> list[WrittenFile]:
        """Flush the datasets whose row count or buffered age reached the limits (timer entry)."""
        with self._flush_lock:
            with self._lock:
                due = self._due(self._clock())
            return self._flush(due) if due else []

    def flush(self) -> list[WrittenFile]:
        """Write everything buffered now; returns the files written."""
        with self._flush_lock:
            return self._flush(list(DATASETS))

    def _flush(self, datasets: list[str]) -> list[WrittenFile]:
        """Write the given datasets' buffers (call with _flush_lock held)."""
        with self._lock:
            taken = {name: self._buffers[name] for name in datasets if self._buffers[name]}
            for name in taken:
                self._buffers[name] = {}
                self._pending[name] = 0
                self._oldest[name] = None
        written: list[WrittenFile] = []
        try:
            if taken and self._before_flush is not None:
                self._before_flush()
            for name, buckets in taken.items():
                for key in list(buckets):
                    written.extend(self._write_partition(name, key, buckets[key]))
                    del buckets[key]
        except BaseException:
            self._restore(taken)
            raise
        finally:
            with self._lock:
                self.files.extend(written)
        return written

    def _restore(self, taken: dict[str, dict[PartitionKey, list[Row]]]) -> None:
        """Put unwritten rows back in front of anything added meanwhile, and back off."""
        now = self._clock()
        with self._lock:
            for name, buckets in taken.items():
                for key, rows in buckets.items():
                    self._buffers[name].setdefault(key, [])[:0] = rows
                    self._pending[name] += len(rows)
                if buckets:
                    self._oldest[name] = now
            # Without a pause every add() would retry a write that just failed (disk full).
            self._retry_after = now + self.flush_seconds

    def _write_partition(
        self, dataset: str, key: PartitionKey, rows: list[Row]
    ) -> list[WrittenFile]:
        spec = DATASETS[dataset]
        partitions = self._checked_keys[dataset][key]
        table, diverted = self._convert(spec, partitions, rows)
        if not table.num_rows:
            if diverted:
                self._divert(spec, partitions, diverted)
            return []
        fragment = "/".join(f"{k}={v}" for k, v in partitions.items())
        table = table.replace_schema_metadata(
            {
                **(spec.schema.metadata or {}),
                # Lets a file copied out of its directory still say where it belongs.
                b"tagarchive.partition": fragment.encode(),
                b"tagarchive.run_id": self.run_id.encode(),
            }
        )
        if spec.sort_by:
            table = table.sort_by([(column, "ascending") for column in spec.sort_by])
        with self._lock:
            self._seq += 1
            seq = self._seq
        directory = self._store.partition_dir(dataset, partitions)
        final = directory / f"part-{self.run_id}-{seq:04d}.parquet"
        size = self._store.publish(table, final, self.compression)
        logger.debug("wrote %s rows to %s", table.num_rows, final)
        if diverted:  # only now: had the write failed, these rows would be retried as they are
            self._divert(spec, partitions, diverted)
        return [WrittenFile(dataset, final, table.num_rows, size)]

    def _convert(
        self, spec: DatasetSpec, partitions: dict[str, str], rows: list[Row]
    ) -> tuple[pa.Table, list[tuple[Row, str]]]:
        """Rows to a table; rows that cannot be stored come back with the reason why."""
        diverted: list[tuple[Row, str]] = []
        try:
            table = table_from_rows(spec.name, rows, run_id=self.run_id)
        except SchemaError:
            # One bad row must not block or lose the rest: bisect to find the bad ones.
            rows, diverted = self._split_valid(spec.name, rows)
            table = table_from_rows(spec.name, rows, run_id=self.run_id)
        outside = self._outside_partition_day(spec, partitions["date"], table)
        if outside is not None:
            for index in outside:
                day = table[spec.date_from][index].as_py()
                reason = f"{spec.date_from} {day} is not in partition date={partitions['date']}"
                diverted.append((rows[index], reason))
            keep = pc.invert(pa.array(_mask(table.num_rows, outside)))
            table = table.filter(keep)
        return table, diverted

    def _split_valid(
        self, dataset: str, rows: list[Row]
    ) -> tuple[list[Row], list[tuple[Row, str]]]:
        good: list[Row] = []
        bad: list[tuple[Row, str]] = []
        stack = [rows]
        while stack:
            chunk = stack.pop()
            try:
                table_from_rows(dataset, chunk, run_id=self.run_id)
                good.extend(chunk)
            except SchemaError as exc:
                if len(chunk) == 1:  # "(row 0)" of a one-row chunk says nothing
                    bad.append((chunk[0], re.sub(r" \(row 0\)$", "", str(exc))))
                else:
                    middle = len(chunk) // 2
                    stack += [chunk[middle:], chunk[:middle]]
        return good, bad

    @staticmethod
    def _outside_partition_day(spec: DatasetSpec, day: str, table: pa.Table) -> list[int] | None:
        """Indexes of rows whose date column is not on the partition's UTC day, or None."""
        column = table[spec.date_from]
        if not len(column):
            return None
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        if pa.types.is_date(column.type):
            low: Any = start.date()
            high: Any = start.date()
        else:
            low, high = start, start + timedelta(days=1) - timedelta(microseconds=1)
        bounds = pc.min_max(column)
        if bounds["min"].as_py() >= low and bounds["max"].as_py() <= high:
            return None  # the usual case, decided without a per-row pass
        inside = pc.and_(
            pc.greater_equal(column, pa.scalar(low, column.type)),
            pc.less_equal(column, pa.scalar(high, column.type)),
        )
        return [i for i, ok in enumerate(inside.to_pylist()) if not ok]

    def _divert(
        self, spec: DatasetSpec, partitions: dict[str, str], bad: list[tuple[Row, str]]
    ) -> None:
        """Buffer rows that cannot be stored as `rejects`, so nothing is lost silently."""
        now = datetime.now(UTC)
        day = utc_day(now)
        rejects = []
        for row, reason in bad:
            platform = partitions.get("platform", row.get("platform"))
            tag = row.get("tag")
            rejects.append(
                {
                    "date": day,
                    "rejected_at": now,
                    "platform": platform if isinstance(platform, str) else None,
                    "item_type": spec.name,
                    "tag": tag if isinstance(tag, str) else None,
                    "reasons": [f"storage: {reason}"],
                    "raw": _raw_json({**row, **partitions}),
                    "run_id": self.run_id,
                }
            )
        logger.warning(
            "%d %s row(s) did not fit the schema and were written to rejects; first: %s",
            len(bad),
            spec.name,
            bad[0][1],
        )
        with self._lock:
            self.diverted_rows += len(bad)
            self._checked_keys["rejects"].setdefault(day, {"date": day})
            self._buffers["rejects"].setdefault(day, []).extend(rejects)
            if self._oldest["rejects"] is None:
                self._oldest["rejects"] = self._clock()
            self._pending["rejects"] += len(rejects)

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> list[WrittenFile]:
        """Flush everything and refuse further rows; safe to call again, returns all files.

        If the final flush fails the writer stays open with its rows, so close() can be retried.
        """
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return list(self.files)
                self._closed = True
            try:
                # A flush can divert bad rows to `rejects`; those are valid by construction, so
                # a second pass always finishes.
                for _ in range(3):
                    if not any(self._pending.values()):
                        break
                    self._flush(list(DATASETS))
                if any(self._pending.values()):
                    raise StorageError(f"rows still buffered after closing run {self.run_id}")
            except BaseException:
                with self._lock:
                    self._closed = False
                raise
        with self._lock:
            return list(self.files)

    @property
    def closed(self) -> bool:
        """Whether close() has completed."""
        return self._closed

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Rows gathered before an error or Ctrl-C are still worth keeping.
        self.close()


def _has_key(row: Any, key: str) -> bool:
    try:
        return key in row
    except TypeError:
        return False


def _mask(length: int, indexes: list[int]) -> list[bool]:
    mask = [False] * length
    for index in indexes:
        mask[index] = True
    return mask
