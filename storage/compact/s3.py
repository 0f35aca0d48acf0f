"""Compaction of an S3 root, where nothing can be renamed: an output, then a commit marker.

The protocol and how readers resolve the markers: storage/markers.py. The selection, rules and
report are the local compaction's (storage/compact/common.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.compact.common import (
    COMPACTED_KEY,
    QUARANTINE,
    ROW_GROUP_ROWS,
    RULES_VERSION,
    SWAP_WAIT_S,
    ArchiveMissingError,
    CompactionError,
    CompactionReport,
    DamagedFileError,
    DatasetReport,
    Outcome,
    Quarantined,
    add_outcome,
    compacted_metadata,
    compaction_cutoff,
    deduplicate,
    fit_schema,
    parse_parquet,
)
from storage.errors import StorageError
from storage.fs import (
    S3Root,
    as_s3_root,
    check_root,
    delete,
    exists,
    list_files,
    put_bytes,
    read_bytes,
)
from storage.markers import (
    MARKER_PREFIX,
    MARKER_SUFFIX,
    OUTPUT_SUFFIX,
    Partition,
    cid_of_output,
    cid_time,
    is_output,
    listing,
)
from storage.parquetfiles import misplaced_reason
from storage.paths import new_run_id
from storage.schemas import DATASETS, DatasetSpec, get_spec

logger = logging.getLogger(__name__)

MARKER_VERSION = 1
# Leftovers of a compaction (an output without marker, a losing marker) younger than this may
# belong to one still running, so they are left for a later run.
LEFTOVER_AGE = timedelta(hours=1)
COMPACT_THREADS = 4  # partitions compacted at once


def _read(root: S3Root, path: str, spec: DatasetSpec) -> pa.Table:
    # The whole object, then Parquet from memory: a failed download is S3's problem, bytes
    # that do not parse are a damaged file (DamagedFileError: moved to the quarantine).
    try:
        data = read_bytes(root, path)
    except StorageError as exc:
        raise CompactionError(str(exc)) from exc
    return fit_schema(parse_parquet(data, f"s3://{path}"), spec, f"s3://{path}")


def _quarantine(root: S3Root, dataset: str, path: str, reason: str, cid: str) -> Quarantined:
    """Move one object readers skip to ``.tagarchive/quarantine/<dataset>/<its key in the
    dataset>``: copied, then deleted (S3 has no rename; a crash between leaves both)."""
    relative = path[len(root.path(dataset)) + 1:]
    target = root.path(*QUARANTINE.parts, dataset, relative)
    if exists(root, target):  # the same name quarantined before: keep both
        target = f"{target}.{cid}"
    put_bytes(root, target, read_bytes(root, path))
    delete(root, path)
    logger.info("moved unreadable s3://%s to s3://%s: %s", path, target, reason)
    return Quarantined(f"s3://{path}", f"s3://{target}", reason)


def _is_compacted(root: S3Root, path: str) -> tuple[bool, int]:
    try:
        with root.fs.open_input_file(path) as handle:
            metadata = pq.read_metadata(handle)
    except (OSError, pa.ArrowException):
        return False, 0  # reading the whole object says why
    return (metadata.metadata or {}).get(COMPACTED_KEY) == RULES_VERSION.encode(), \
        metadata.num_rows


def _put_output(root: S3Root, path: str, table: pa.Table) -> int:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return put_bytes(root, path, memoryview(buffer.getvalue()))


def _put_marker(root: S3Root, path: str, body: dict[str, Any]) -> None:
    put_bytes(root, path, json.dumps(body, sort_keys=True).encode("utf-8"))


def _cleanup(root: S3Root, part: Partition, now: datetime) -> int:
    """Delete leftovers of earlier compactions of this partition; returns how many went."""
    removed = 0
    old = now - LEFTOVER_AGE
    honoured_outputs = {m.output for m in part.honoured}
    replaced = {i for m in part.honoured for i in m.inputs}
    doomed: list[str] = [name for name in part.files if name in replaced]  # step 3 undone
    for name in part.files:
        if is_output(name) and name not in honoured_outputs and name not in replaced:
            moment = cid_time(cid_of_output(name))
            if moment is not None and moment < old:
                doomed.append(name)  # killed before its marker, or lost a race
    for name in doomed:
        delete(root, part.path(name))
        removed += 1
    remaining = set(part.files) - set(doomed)
    for marker in part.ignored:
        moment = cid_time(marker.cid)
        if moment is not None and moment < old and marker.output not in remaining:
            delete(root, part.path(f"{MARKER_PREFIX}{marker.cid}{MARKER_SUFFIX}"))
            removed += 1
    for marker in part.honoured:
        # Only when its output and every input are gone can a marker change nothing any more
        # (routine after a later compaction replaced its output: not counted as a leftover).
        if marker.output not in remaining and not remaining.intersection(marker.inputs):
            delete(root, part.path(f"{MARKER_PREFIX}{marker.cid}{MARKER_SUFFIX}"))
    return removed


@dataclass
class _Done:
    compacted: bool
    files_before: int
    bytes_before: int
    bytes_after: int
    rows_before: int
    rows_kept: int


def _compact_partition(root: S3Root, spec: DatasetSpec, part: Partition, cid: str,
                       now: datetime) -> _Done | None:
    names = part.visible
    if not names:
        return None
    size = sum(part.files[n] for n in names)
    if len(names) == 1:
        compacted, rows = _is_compacted(root, part.path(names[0]))
        if compacted:
            return _Done(False, 1, size, size, rows, rows)
    tables = [_read(root, part.path(n), spec) for n in names]
    rows_before = sum(t.num_rows for t in tables)
    kept = deduplicate(spec.name, tables)
    if len(names) == 1 and kept.equals(tables[0]):
        return _Done(False, 1, size, size, rows_before, rows_before)
    fragment = "/".join(f"{k}={v}" for k, v in part.values.items())
    kept = kept.replace_schema_metadata(compacted_metadata(spec, fragment, len(names)))
    output = f"part-{cid}{OUTPUT_SUFFIX}"
    new_size = _put_output(root, part.path(output), kept)
    # The commit point: from this PUT on, readers see the output instead of the inputs.
    _put_marker(root, part.path(f"{MARKER_PREFIX}{cid}{MARKER_SUFFIX}"), {
        "version": MARKER_VERSION,
        "output": output,
        "inputs": names,
        "rows_before": rows_before,
        "rows_kept": kept.num_rows,
        "committed_at": now.isoformat(),
    })
    for name in names:
        try:
            delete(root, part.path(name))
        except StorageError as exc:  # readers ignore it already; the next run deletes it
            logger.warning("compaction committed; could not delete a replaced file: %s", exc)
    return _Done(True, len(names), size, new_size, rows_before, kept.num_rows)


def compact(root: Any, datasets: Iterable[str] | None = None, before: date | None = None,
            now: datetime | None = None, *, include_today: bool = False,
            lock_timeout: float = SWAP_WAIT_S) -> CompactionReport:
    """compact() for an s3:// root: same selection, rules and report as the local one.

    ``lock_timeout`` is the local swap's: S3 has no lock (markers settle races instead)."""
    s3 = as_s3_root(root)
    check_root(s3)
    names = list(DATASETS) if datasets is None else [get_spec(n).name for n in datasets]
    moment, cutoff = compaction_cutoff(now, before, include_today)
    listed = {name: listing(s3, name) for name in dict.fromkeys(names)}
    if (not any(parts or misplaced for parts, misplaced in listed.values())
            and not any(list_files(s3, n)[:1] for n in DATASETS)):
        raise ArchiveMissingError(f"no archive at {s3.url}")
    compaction_id = new_run_id(moment)
    report = CompactionReport({})
    # Partitions are independent and every step is a request that waits on the network, so
    # several run at once; results are added in listing order.
    work = []
    for name, (parts, misplaced) in listed.items():
        result = report.datasets[name] = DatasetReport(name)
        for path, _size in misplaced:  # outside every partition: no reader ever sees them
            try:
                result.quarantined.append(
                    _quarantine(s3, name, path, misplaced_reason(name), compaction_id))
            except StorageError as exc:
                result.errors.append(f"{name} s3://{path}: {exc}")
        work += [(name, part) for part in parts]

    def one(item: tuple[int, tuple[str, Partition]]) -> _Result:
        job, (name, part) = item
        return _compact_one(s3, name, part, f"{compaction_id}-{job + 1:05d}", moment, cutoff)

    with ThreadPoolExecutor(min(COMPACT_THREADS, max(1, len(work)))) as pool:
        outcomes = list(pool.map(one, enumerate(work)))
    for (name, _part), (recovered, in_range, outcome, moved) in zip(work, outcomes, strict=True):
        result = report.datasets[name]
        report.recovered_jobs += recovered
        result.quarantined += moved
        if not in_range:
            result.out_of_range += 1
        elif isinstance(outcome, str):
            result.errors.append(outcome)
        elif outcome is not None:
            add_outcome(result, Outcome(outcome.compacted, outcome.files_before, 1,
                                        outcome.bytes_before, outcome.bytes_after,
                                        outcome.rows_before, outcome.rows_kept))
    return report


# (leftovers removed, in range, what compacting did or the error line, files quarantined)
_Result = tuple[int, bool, _Done | str | None, list[Quarantined]]


def _compact_one(s3: S3Root, name: str, part: Partition, cid: str, moment: datetime,
                 cutoff: date) -> _Result:
    """Clean up, screen and compact one partition; errors come back as the report's line."""
    fragment = "/".join(f"{k}={v}" for k, v in part.values.items())
    recovered = 0
    moved: list[Quarantined] = []
    try:
        recovered = _cleanup(s3, part, moment)
    except StorageError as exc:
        logger.warning("could not clean up %s %s: %s", name, fragment, exc)
    try:
        for file in [f for f in part.visible if part.files[f] < 12]:  # too small for Parquet
            moved.append(_quarantine(s3, name, part.path(file),
                                     f"{part.files[file]} bytes, too small to be Parquet", cid))
            part.visible.remove(file)
        if date.fromisoformat(part.values["date"]) >= cutoff:
            return recovered, False, None, moved
        while True:
            try:
                done = _compact_partition(s3, DATASETS[name], part, cid, moment)
                break
            except DamagedFileError as exc:
                file = str(exc.path).rsplit("/", 1)[-1]
                if file not in part.visible:
                    raise
                moved.append(_quarantine(s3, name, part.path(file), exc.reason, cid))
                part.visible.remove(file)
    except (StorageError, OSError, pa.ArrowException) as exc:
        return recovered, True, f"{name} {fragment}: {' '.join(str(exc).split())}", moved
    return recovered, True, done, moved
