"""Which files of an S3 root are live, and compaction on S3, where nothing can be renamed.

Local compaction swaps a partition directory in one rename. S3 has no rename, so a compaction of
one partition directory P publishes in three steps, each a single atomic PUT or DELETE:

1. upload the compacted file as ``P/part-<cid>-compact.parquet``. A file with this name is
   invisible to our readers until a commit marker names it;
2. upload the commit marker ``P/_commit-<cid>.json``: ``{"output": <that name>, "inputs":
   [<the files it replaces>], ...}``. From this PUT on, readers see the output and no longer see
   the inputs: this is the commit point;
3. delete the inputs (best effort: readers ignore them already).

Readers (``visible_files``, used by ``storage.reading`` and so by every command) apply the markers
of each directory in ``<cid>`` order (cids start with the UTC time; a marker that replaces another
marker's output always comes after that one): a marker is honoured unless
one of its inputs was already replaced by an earlier honoured marker (two compactions that raced
over the same files: the earlier one wins, so rows are never counted twice), or its output is
gone without a later marker replacing it. A file is visible if
no honoured marker lists it as an input and, for a ``-compact.parquet`` file, an honoured marker
names it as its output.

A compaction killed before step 2 leaves an output no reader sees; killed after it, inputs no
reader sees. Each later compaction of the dataset deletes such leftovers once they are older than
``LEFTOVER_AGE`` (a younger one may belong to a compaction still running), then deletes markers
that no longer matter (their output and inputs are gone).

Between steps 2 and 3, a reader that lists ``*.parquet`` itself and does not read the markers
(DuckDB ``read_parquet('s3://.../**/*.parquet')``) counts the rows of P twice; and it always sees
uncommitted outputs. docs/s3.md says so; tagarchive's own readers never do.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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
from storage.paths import new_run_id, partition_values
from storage.schemas import DATASETS, DatasetSpec, get_spec

logger = logging.getLogger(__name__)

MARKER_PREFIX = "_commit-"
MARKER_SUFFIX = ".json"
OUTPUT_SUFFIX = "-compact.parquet"
MARKER_VERSION = 1
# Leftovers of a compaction (an output without marker, a losing marker) younger than this may
# belong to one still running, so they are left for a later run.
LEFTOVER_AGE = timedelta(hours=1)
_FETCH_THREADS = 8
COMPACT_THREADS = 4  # partitions compacted at once


@dataclass(frozen=True)
class Marker:
    """One commit marker: the compacted file it publishes and the files that file replaces."""

    cid: str
    output: str
    inputs: tuple[str, ...]


@dataclass
class Partition:
    """One leaf partition directory of a dataset on S3, as listed, with its markers resolved."""

    values: dict[str, str]
    directory: str  # filesystem path: bucket/prefix/<dataset>/k=v/...
    files: dict[str, int]  # every published-looking .parquet name -> size
    markers: list[Marker] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)
    honoured: list[Marker] = field(default_factory=list)
    ignored: list[Marker] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # marker names that could not be parsed

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"


def is_output(name: str) -> bool:
    """A compaction output: visible only once a marker commits it."""
    return name.startswith("part-") and name.endswith(OUTPUT_SUFFIX)


def _cid_of_marker(name: str) -> str:
    return name[len(MARKER_PREFIX):-len(MARKER_SUFFIX)]


def _cid_of_output(name: str) -> str:
    return name[len("part-"):-len(OUTPUT_SUFFIX)]


def _cid_time(cid: str) -> datetime | None:
    try:
        return datetime.strptime(cid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def resolve(files: Iterable[str], markers: Iterable[Marker]) -> tuple[list[str], list[Marker],
                                                                      list[Marker]]:
    """(visible files, honoured markers, ignored markers) of one directory (see module doc)."""
    files = set(files)
    markers = list(markers)
    listed = {name for m in markers for name in m.inputs}
    replaced: set[str] = set()
    committed: set[str] = set()
    honoured: list[Marker] = []
    ignored: list[Marker] = []
    for marker in _in_order(markers):
        if replaced.intersection(marker.inputs) or marker.output in replaced:
            ignored.append(marker)
            continue
        if marker.output not in files and marker.output not in listed:
            # Its output was never replaced by a later compaction, yet is gone (deleted by
            # hand?): hiding its inputs would hide their rows, so the marker counts for nothing.
            ignored.append(marker)
            continue
        honoured.append(marker)
        replaced.update(marker.inputs)
        committed.add(marker.output)
    visible = [name for name in sorted(files)
               if name not in replaced and (not is_output(name) or name in committed)]
    return visible, honoured, ignored


def _in_order(markers: list[Marker]) -> list[Marker]:
    """Markers in cid order, except that a marker replacing another's output comes after it
    (two compactions in the same second have cids that sort by their random part)."""
    producer = {m.output: m for m in markers}
    waiting = {m.cid: {producer[i].cid for i in m.inputs if i in producer} - {m.cid}
               for m in markers}
    by_cid = {m.cid: m for m in markers}
    ordered: list[Marker] = []
    while waiting:
        ready = sorted(cid for cid, deps in waiting.items() if not deps)
        cid = ready[0] if ready else min(waiting)  # a cycle cannot happen; never loop on one
        ordered.append(by_cid[cid])
        del waiting[cid]
        for deps in waiting.values():
            deps.discard(cid)
    return ordered


# --- listing ------------------------------------------------------------------------------------

# Markers are written once and never changed, so a process reads each one once.
_MARKERS: dict[tuple[str, int], Marker | None] = {}


def _parse_marker(name: str, data: bytes) -> Marker | None:
    try:
        raw = json.loads(data)
        output, inputs = raw["output"], raw["inputs"]
        if (not isinstance(output, str) or not isinstance(inputs, list)
                or not all(isinstance(i, str) for i in inputs)):
            raise ValueError("bad types")
    except (ValueError, KeyError, TypeError):
        return None
    return Marker(_cid_of_marker(name), output, tuple(inputs))


def _load_markers(root: S3Root, wanted: list[tuple[str, int]]) -> None:
    missing = [w for w in wanted if w not in _MARKERS]
    if not missing:
        return

    def fetch(item: tuple[str, int]) -> tuple[tuple[str, int], Marker | None]:
        return item, _parse_marker(posixpath.basename(item[0]), read_bytes(root, item[0]))

    with ThreadPoolExecutor(min(_FETCH_THREADS, len(missing))) as pool:
        for item, marker in pool.map(fetch, missing):
            _MARKERS[item] = marker


def partitions(root: S3Root, dataset: str) -> list[Partition]:
    """Every leaf partition of a dataset under an S3 root, markers read and resolved."""
    return listing(root, dataset)[0]


def listing(root: S3Root, dataset: str) -> tuple[list[Partition], list[tuple[str, int]]]:
    """partitions(), and the ``*.parquet`` objects outside any partition (path, size): never
    read, moved to the quarantine by compaction."""
    spec = get_spec(dataset)
    base = root.path(spec.name)
    by_dir: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    for path, size in list_files(root, spec.name):
        directory, name = posixpath.split(path)
        if name.startswith(MARKER_PREFIX) and name.endswith(MARKER_SUFFIX):
            by_dir.setdefault(directory, ({}, {}))[1][name] = size
        elif name.endswith(".parquet") and not name.startswith((".", "_")):
            by_dir.setdefault(directory, ({}, {}))[0][name] = size
    found: list[Partition] = []
    misplaced: list[tuple[str, int]] = []
    need: list[tuple[str, int]] = []
    for directory, (files, markers) in sorted(by_dir.items()):
        relative = directory[len(base) + 1:].split("/") if directory != base else []
        values = _partition_values(spec, relative)
        if values is None:
            # not a partition directory of ours: never read (hidden folders are not looked at)
            if not any(p.startswith((".", "_")) for p in relative):
                misplaced += [(f"{directory}/{name}", size) for name, size in files.items()]
            continue
        part = Partition(values, directory, files)
        part.broken = list(markers)  # until read
        found.append(part)
        need += [(f"{directory}/{m}", s) for m, s in markers.items()]
    _load_markers(root, need)
    for part in found:
        names, part.broken = part.broken, []
        for name in names:
            marker = _MARKERS.get((part.path(name), by_dir[part.directory][1][name]))
            if marker is None:
                part.broken.append(name)
            else:
                part.markers.append(marker)
        part.visible, part.honoured, part.ignored = resolve(part.files, part.markers)
        for name in part.broken:
            logger.warning("ignoring unreadable commit marker s3://%s", part.path(name))
    return found, misplaced


def _partition_values(spec: DatasetSpec, parts: list[str]) -> dict[str, str] | None:
    return partition_values(spec.name, parts)


def visible_files(root: S3Root | str, dataset: str) -> list[str]:
    """The live Parquet files of a dataset (filesystem paths), commit markers honoured."""
    return [path for path, _size in visible_sized(root, dataset)]


def visible_sized(root: S3Root | str, dataset: str) -> list[tuple[str, int]]:
    """visible_files() with each file's size as listed (saves a HEAD request per file)."""
    s3 = as_s3_root(root)
    return [(part.path(name), part.files[name]) for part in partitions(s3, dataset)
            for name in part.visible]


# --- compaction ---------------------------------------------------------------------------------


def _read(root: S3Root, path: str, spec: DatasetSpec) -> pa.Table:
    from storage.compact import CompactionError, fit_schema, parse_parquet

    # The whole object, then Parquet from memory: a failed download is S3's problem, bytes
    # that do not parse are a damaged file (DamagedFileError: moved to the quarantine).
    try:
        data = read_bytes(root, path)
    except StorageError as exc:
        raise CompactionError(str(exc)) from exc
    return fit_schema(parse_parquet(data, f"s3://{path}"), spec, f"s3://{path}")


def _quarantine(root: S3Root, dataset: str, path: str, reason: str, cid: str) -> Any:
    """Move one object readers skip to ``.tagarchive/quarantine/<dataset>/<its key in the
    dataset>``: copied, then deleted (S3 has no rename; a crash between leaves both)."""
    from storage.compact import QUARANTINE, Quarantined

    relative = path[len(root.path(dataset)) + 1:]
    target = root.path(*QUARANTINE.parts, dataset, relative)
    if exists(root, target):  # the same name quarantined before: keep both
        target = f"{target}.{cid}"
    put_bytes(root, target, read_bytes(root, path))
    delete(root, path)
    logger.info("moved unreadable s3://%s to s3://%s: %s", path, target, reason)
    return Quarantined(f"s3://{path}", f"s3://{target}", reason)


def _is_compacted(root: S3Root, path: str) -> tuple[bool, int]:
    from storage.compact import COMPACTED_KEY, RULES_VERSION

    try:
        with root.fs.open_input_file(path) as handle:
            metadata = pq.read_metadata(handle)
    except (OSError, pa.ArrowException):
        return False, 0  # reading the whole object says why
    return (metadata.metadata or {}).get(COMPACTED_KEY) == RULES_VERSION.encode(), \
        metadata.num_rows


def _put_output(root: S3Root, path: str, table: pa.Table) -> int:
    from storage.compact import ROW_GROUP_ROWS

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
            moment = _cid_time(_cid_of_output(name))
            if moment is not None and moment < old:
                doomed.append(name)  # killed before its marker, or lost a race
    for name in doomed:
        delete(root, part.path(name))
        removed += 1
    remaining = set(part.files) - set(doomed)
    for marker in part.ignored:
        moment = _cid_time(marker.cid)
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
    from storage.compact import COMPACTED_KEY, RULES_VERSION, deduplicate

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
    kept = kept.replace_schema_metadata({
        **(spec.schema.metadata or {}),
        b"tagarchive.partition": fragment.encode(),
        COMPACTED_KEY: RULES_VERSION.encode(),
        b"tagarchive.compacted_files": str(len(names)).encode(),
    })
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


def compact_s3(root: Any, datasets: Iterable[str] | None = None, before: date | None = None,
               now: datetime | None = None, *, include_today: bool = False) -> Any:
    """compact() for an s3:// root: same selection, rules and report as the local one."""
    from storage.compact import (
        ArchiveMissingError,
        CompactionReport,
        DatasetReport,
        _add,
        _Outcome,
        compaction_cutoff,
    )
    from storage.reading import misplaced_reason

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

    def one(job: int, name: str, part: Partition) -> tuple[int, bool, _Done | str | None,
                                                          list[Any]]:
        from storage.compact import DamagedFileError

        fragment = "/".join(f"{k}={v}" for k, v in part.values.items())
        cid = f"{compaction_id}-{job:05d}"
        recovered = 0
        moved: list[Any] = []
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

    with ThreadPoolExecutor(min(COMPACT_THREADS, max(1, len(work)))) as pool:
        outcomes = list(pool.map(lambda item: one(item[0] + 1, *item[1]), enumerate(work)))
    for (name, _part), (recovered, in_range, outcome, moved) in zip(work, outcomes, strict=True):
        result = report.datasets[name]
        report.recovered_jobs += recovered
        result.quarantined += moved
        if not in_range:
            result.out_of_range += 1
        elif isinstance(outcome, str):
            result.errors.append(outcome)
        elif outcome is not None:
            _add(result, _Outcome(outcome.compacted, outcome.files_before, 1,
                                  outcome.bytes_before, outcome.bytes_after, outcome.rows_before,
                                  outcome.rows_kept))
    return report
