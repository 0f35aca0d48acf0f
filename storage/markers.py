"""Which files of an S3 root are live: the commit markers of S3 compaction, read by every reader.

Shared by the readers (storage/reading.py) and by S3 compaction (storage/compact/s3.py), which
writes the markers; this module imports neither.

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
``LEFTOVER_AGE`` (storage/compact/s3.py; a younger one may belong to a compaction still running),
then deletes markers that no longer matter (their output and inputs are gone).

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
from datetime import UTC, datetime

from storage.fs import S3Root, as_s3_root, list_files, read_bytes
from storage.paths import partition_values
from storage.schemas import DatasetSpec, get_spec

logger = logging.getLogger(__name__)

MARKER_PREFIX = "_commit-"
MARKER_SUFFIX = ".json"
OUTPUT_SUFFIX = "-compact.parquet"
_FETCH_THREADS = 8


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


def cid_of_output(name: str) -> str:
    """The compaction id in an output's name."""
    return name[len("part-"):-len(OUTPUT_SUFFIX)]


def cid_time(cid: str) -> datetime | None:
    """When the compaction with this id started (its id begins with the UTC time)."""
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


