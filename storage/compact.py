"""Compaction: rewrite each partition's many small files as one sorted, deduplicated file.

Every hourly crawl adds one small file per partition; after 90 days a query opens thousands of
files. ``compact()`` rewrites each partition (``<dataset>/platform=<p>/date=<d>/``) that holds
more than one file into one file sorted by the dataset's ``sort_by``, dropping duplicates by the
dataset's rule (``DEDUP_RULES``), and swaps it in so that readers and crawls never notice.

The swap protocol, for one partition directory P:

1. List P's published files (the inputs), read them, deduplicate, and write the new file into a
   *staged* directory ``<root>/.tagarchive/compact/<dataset>/<job>/staged/`` (same filesystem,
   outside every dataset tree, so no reader's ``<dataset>/**/*.parquet`` glob sees it); fsync it,
   then write ``job.json`` naming P, which is what a later run needs to repair a crash.
2. Take the archive lock (``flock`` on the root directory) exclusively. ``DatasetWriter`` holds it
   shared from creating its temp file to renaming it into place, so while we hold it no crawl is
   half-way through publishing. Check that every input is still there (same inode), hard-link into
   the staged directory every file that appeared in P since step 1 (files crawls published
   meanwhile: kept as they are, never lost or counted twice), and drop writer temp files (under
   the lock they can only be leftovers of killed crawls).
3. Swap the two directories in one step with ``renameat2(staged, P, RENAME_EXCHANGE)``: a path
   lookup, so every directory listing, sees either the old directory or the new one, never a mix
   and never none. Release the lock (writers waited milliseconds).
4. Delete the job directory, which now holds the old directory.

Where renameat2 is missing or the filesystem refuses RENAME_EXCHANGE (not Linux, some network
filesystems), step 3 becomes two renames, P -> ``job/retired`` then ``staged`` -> P, and for the
microseconds between them a reader sees no files for P.

A compaction killed at any point leaves every published file readable and P either old or new
(a half-written staged file lives only in scratch). The next run, before compacting a dataset,
repairs each leftover job: it puts a directory back where a two-rename swap left P missing,
merges files a crawl published into a P it recreated meanwhile, and deletes the rest, all of which
duplicate data that is live. One compaction runs per dataset at a time (``flock`` on the dataset
directory, not waited for).

Before compacting, each run moves the files readers skip (storage/reading.py: empty, truncated or
non-Parquet ``*.parquet`` files, and files outside a ``k=v`` partition folder) into
``<root>/.tagarchive/quarantine/<dataset>/<their path in the dataset>``, so that they stop
costing every read a warning; a file whose bytes fail to parse while its partition is compacted
follows them. Nothing is deleted: a quarantined file can be inspected or put back by hand.

Everything compaction writes outside the dataset trees is under ``<root>/.tagarchive``, which must
be a real directory of the root (storage.paths.ensure_state_path): if it, ``compact`` or
``quarantine`` below it, or any entry there is a symbolic link, compaction refuses to start, so it
can neither stage files elsewhere nor delete what a link points at. A dataset directory that
resolves outside the root is refused the same way, and a symlinked partition folder is left
alone and named as an error.

Limits: a reader lists files and opens them afterwards, so a query that listed the old files just
before a swap and opens one after it fails with a "no such file" error (never a wrong answer);
running it again reads the new file. Writers that do not take the lock (older versions) can lose a
file published in the instant between step 2's listing and the swap. Partitions dated today (UTC)
are left alone by default because crawls still add to them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.errors import StorageError, UnsafePathError
from storage.fs import is_remote
from storage.locks import exclusive, swapping
from storage.paths import (
    STATE_DIR,
    check_partition_value,
    ensure_inside_root,
    ensure_state_path,
    new_run_id,
    partition_values,
)
from storage.schemas import DATASETS, SCHEMA_VERSION, DatasetSpec, get_spec

logger = logging.getLogger(__name__)

SCRATCH = Path(STATE_DIR, "compact")
QUARANTINE = Path(STATE_DIR, "quarantine")
# Stored in each compacted file's metadata: a single file with the current version is skipped
# without reading it. Bump when a rule in DEDUP_RULES changes.
RULES_VERSION = "2"
COMPACTED_KEY = b"tagarchive.compaction"
# Row groups small enough that min/max statistics on the leading sort column (tag) prune, large
# enough that a day of snapshots is one group.
ROW_GROUP_ROWS = 65_536
SWAP_WAIT_S = 60.0
_WRITER_TEMP = re.compile(r"\.part-.*\.parquet\.tmp")
_FILE = "__tagarchive_file"
_ROW = "__tagarchive_row"


class CompactionError(StorageError):
    """One partition could not be compacted; it is left exactly as it was."""


class ArchiveMissingError(StorageError, FileNotFoundError):
    """The archive root does not exist."""


class DamagedFileError(CompactionError):
    """An input file's bytes could be read but are not a readable Parquet file."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Quarantined:
    """A file compaction moved out of a dataset because readers cannot use it."""

    source: str  # where it was (a local path, or s3://...)
    target: str  # where it is now, under <root>/.tagarchive/quarantine/
    reason: str


@dataclass(frozen=True)
class DedupRule:
    """Which rows of one partition are the same record, and which copy is kept."""

    # Columns that identify a record within a partition (platform and date are the partition);
    # empty means the whole row, i.e. exact duplicates only.
    key: tuple[str, ...]
    # Keep the row with the greatest value here; ties (and rules without it) keep the row from
    # the later file in name order, then the later row.
    newest_by: str | None
    description: str


DEDUP_RULES: dict[str, DedupRule] = {
    "snapshots": DedupRule(
        ("tag", "observed_at"),
        None,
        "one row per (platform, tag, observed_at): the same observation stored twice, or parsed "
        "again by `reparse` (its file sorts later, so the re-parsed row wins)",
    ),
    "posts": DedupRule(
        ("tag", "post_id"),
        "observed_at",
        "the latest observation per (platform, tag, post_id) per day",
    ),
    "activity": DedupRule(
        ("tag", "day"),
        "observed_at",
        "the newest observed_at per (platform, tag, day): a re-run backfill replaces, not adds",
    ),
    "rejects": DedupRule((), None, "exact duplicate rows only"),
    "runs": DedupRule((), None, "exact duplicate rows only"),
}


@dataclass
class DatasetReport:
    """What compaction did to one dataset; files, bytes and rows cover partitions in range."""

    dataset: str
    partitions: int = 0  # in range: before --before, not today, not failed
    compacted: int = 0
    already_compact: int = 0
    out_of_range: int = 0  # today's or later, or not before --before: left alone
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows_before: int = 0
    rows_kept: int = 0
    rows_dropped: int = 0
    # Files crawls published while their partition was being compacted: kept as they are.
    carried_over: int = 0
    errors: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass
class CompactionReport:
    """Per-dataset results of one compact() call, and how many crashed jobs it repaired."""

    datasets: dict[str, DatasetReport]
    recovered_jobs: int = 0
    exchange: bool = True  # False: the two-rename fallback was used at least once
    # Hidden .warc.gz.tmp files of killed crawls removed from archive/ (whole-root runs only).
    stale_temps: list[Path] = field(default_factory=list)
    # Problems outside the datasets (archive/ cleanup), one line each.
    other_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Every partition that failed, as one line each."""
        return [e for r in self.datasets.values() for e in r.errors] + self.other_errors

    @property
    def quarantined(self) -> list[Quarantined]:
        """Every file moved to the quarantine, all datasets."""
        return [q for r in self.datasets.values() for q in r.quarantined]


# --- deduplication ------------------------------------------------------------------------------


def deduplicate(dataset: str, tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate one partition's files (in name order), apply its DedupRule, sort by sort_by."""
    spec = get_spec(dataset)
    rule = DEDUP_RULES[spec.name]
    parts = [
        t.replace_schema_metadata(None)
        .append_column(_FILE, pa.array([i] * t.num_rows, pa.int32()))
        .append_column(_ROW, pa.array(range(t.num_rows), pa.int64()))
        for i, t in enumerate(tables)
    ]
    if not parts:
        return spec.schema.empty_table()
    table = pa.concat_tables(parts)
    table = _keep_newest(table, rule) if rule.key else _drop_exact_duplicates(table)
    order = [(c, "ascending") for c in (*spec.sort_by, _FILE, _ROW)]
    table = table.take(pc.sort_indices(table, sort_keys=order))
    return table.drop_columns([_FILE, _ROW]).cast(spec.schema)


def _keep_newest(table: pa.Table, rule: DedupRule) -> pa.Table:
    order = [(c, "ascending") for c in rule.key]
    if rule.newest_by:
        order.append((rule.newest_by, "descending"))
    order += [(_FILE, "descending"), (_ROW, "descending")]
    table = table.take(pc.sort_indices(table, sort_keys=order))
    n = table.num_rows
    if n < 2:
        return table
    starts: pa.Array | None = None
    for column in rule.key:
        values = table[column].combine_chunks()
        # A null key never equals anything: such rows are all kept, the safe side.
        changed = pc.fill_null(pc.not_equal(values.slice(1), values.slice(0, n - 1)), True)
        starts = changed if starts is None else pc.or_(starts, changed)
    assert starts is not None
    first = pa.concat_arrays([pa.array([True]), starts])
    return table.filter(first)


def _drop_exact_duplicates(table: pa.Table) -> pa.Table:
    # Nested columns (lists, structs) cannot be Arrow group keys; these datasets are small.
    data = table.drop_columns([_FILE, _ROW])
    seen: set[str] = set()
    keep = []
    for row in zip(*(data[c].to_pylist() for c in data.column_names), strict=True):
        text = repr(row)
        keep.append(text not in seen)
        seen.add(text)
    return table.filter(pa.array(keep, pa.bool_()))


# --- the directory swap -------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    path, fd = ctypes.c_char_p, ctypes.c_int
    function.argtypes = [fd, path, fd, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where this system or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _retire(directory: Path, retired: Path) -> None:
    os.rename(directory, retired)


def _install(staged: Path, directory: Path) -> None:
    os.rename(staged, directory)


def _restore(retired: Path, directory: Path) -> None:
    with contextlib.suppress(OSError):
        os.rename(retired, directory)


def _swap_in(staged: Path, directory: Path, job: Path) -> bool:
    """Put ``staged`` at ``directory``; True if in one atomic exchange, False if two renames."""
    if exchange(staged, directory):
        return True
    retired = job / "retired"
    _retire(directory, retired)
    try:
        _install(staged, directory)
    except BaseException:
        _restore(retired, directory)
        raise
    return False


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- one partition ------------------------------------------------------------------------------


@dataclass
class _Context:
    root: Path
    compaction_id: str
    lock_timeout: float
    jobs: int = 0
    exchange: bool = True


@dataclass
class _Outcome:
    compacted: bool
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rows_before: int
    rows_kept: int
    carried_over: int = 0


def _published(directory: Path) -> dict[str, os.stat_result]:
    """Published Parquet files (what readers glob), by name, with their stat."""
    found = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                if not entry.is_file(follow_symlinks=False):
                    raise CompactionError(f"{entry.path} is not a regular file")
                found[name] = entry.stat(follow_symlinks=False)
    return found


def _read_input(path: Path, spec: DatasetSpec) -> pa.Table:
    # The bytes first, then Parquet from memory: an error reading the file is the machine's
    # (permissions, I/O), an error parsing bytes that were read means the file is damaged.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CompactionError(f"cannot read {path}: {exc}") from exc
    return fit_schema(parse_parquet(data, path), spec, path)


def parse_parquet(data: bytes, path: object) -> pa.Table:
    """A whole file's bytes as a table; DamagedFileError if they are not readable Parquet."""
    from storage.reading import parquet_error_text

    try:
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (OSError, pa.ArrowException) as exc:
        raise DamagedFileError(path, parquet_error_text(exc)) from exc


def fit_schema(table: pa.Table, spec: DatasetSpec, path: object) -> pa.Table:
    """One input file's table in the dataset's current schema (shared with S3 compaction)."""
    if table.schema.equals(spec.schema, check_metadata=False):
        return table
    # Columns added since the file was written (nullable, same version) read as null, as they
    # do through open_dataset(); a column the schema does not know would be lost, so it fails.
    unknown = set(table.column_names) - set(spec.schema.names)
    missing = [f.name for f in spec.schema if f.name not in table.column_names and not f.nullable]
    if unknown or missing:
        raise CompactionError(
            f"{path} does not fit the {spec.name} schema version {SCHEMA_VERSION}: "
            f"unknown columns {sorted(unknown)}, missing {missing}"
        )
    try:
        columns = [
            table[f.name].cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in spec.schema
        ]
        return pa.Table.from_arrays(columns, schema=spec.schema)
    except (ValueError, pa.ArrowException) as exc:
        raise CompactionError(
            f"{path} does not fit the {spec.name} schema version {SCHEMA_VERSION}: {exc}"
        ) from exc


def _compact_partition(
    ctx: _Context, spec: DatasetSpec, fragment: str, directory: Path
) -> _Outcome | None:
    inputs = _published(directory)
    if not inputs:
        return None
    names = sorted(inputs)
    size = sum(s.st_size for s in inputs.values())
    if len(names) == 1:
        try:
            metadata = pq.read_metadata(directory / names[0])
        except (OSError, pa.ArrowException):
            metadata = None  # reading the whole file below says why
        if metadata is not None and (
                (metadata.metadata or {}).get(COMPACTED_KEY) == RULES_VERSION.encode()):
            rows = metadata.num_rows
            return _Outcome(False, 1, 1, size, size, rows, rows)
    tables = [_read_input(directory / name, spec) for name in names]
    rows_before = sum(t.num_rows for t in tables)
    kept = deduplicate(spec.name, tables)
    if len(names) == 1 and kept.equals(tables[0]):
        # A crawl's single file: already sorted and free of duplicates.
        return _Outcome(False, 1, 1, size, size, rows_before, rows_before)
    kept = kept.replace_schema_metadata(
        {
            **(spec.schema.metadata or {}),
            b"tagarchive.partition": fragment.encode(),
            COMPACTED_KEY: RULES_VERSION.encode(),
            b"tagarchive.compacted_files": str(len(names)).encode(),
        }
    )

    ctx.jobs += 1
    scratch = ensure_state_path(ctx.root, ctx.root / SCRATCH / spec.name)
    job = scratch / f"{ctx.compaction_id}-{ctx.jobs:05d}"
    staged = job / "staged"
    try:
        staged.mkdir(parents=True)
        final_name = f"part-{ctx.compaction_id}-compacted.parquet"
        temp = staged / f".{final_name}.tmp"
        pq.write_table(kept, temp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        _fsync_file(temp)
        os.replace(temp, staged / final_name)
        new_size = (staged / final_name).stat().st_size
        _fsync_dir(staged)
        _write_job(job, fragment)
        with swapping(ctx.root, ctx.lock_timeout):
            carried = _carry_over(directory, staged, inputs)
            ctx.exchange &= _swap_in(staged, directory, job)
    except Exception as exc:
        # Not swapped: the job holds a copy of live rows. Only a fallback swap whose undo failed
        # leaves P missing; then the job stays for the next run's _recover(). (A crash or Ctrl-C
        # skips this cleanup; _recover() does it.)
        if not (job / "retired").is_dir():
            _discard(job)
        if isinstance(exc, CompactionError):
            raise
        if isinstance(exc, OSError | pa.ArrowException):
            raise CompactionError(f"{directory}: {exc}") from exc
        raise
    with contextlib.suppress(OSError):  # durability only: the swap itself has happened
        _fsync_dir(directory.parent)
    _discard(job)  # it now holds the old directory
    carried_bytes = sum(s for s in carried.values())
    return _Outcome(
        True,
        len(names),
        1 + len(carried),
        size,
        new_size + carried_bytes,
        rows_before,
        kept.num_rows,
        len(carried),
    )


def _discard(job: Path) -> None:
    # What cannot be deleted now (a reader on Windows, permissions) the next run deletes.
    shutil.rmtree(job, ignore_errors=True)


def _write_job(job: Path, fragment: str) -> None:
    temp = job / ".job.json.tmp"
    temp.write_text(json.dumps({"partition": fragment}), encoding="utf-8")
    _fsync_file(temp)
    os.replace(temp, job / "job.json")
    _fsync_dir(job)


def _carry_over(directory: Path, staged: Path, inputs: dict[str, os.stat_result]) -> dict[str, int]:
    """Under the exclusive lock: link files published since listing; refuse if inputs changed."""
    carried: dict[str, int] = {}
    with os.scandir(directory) as entries:
        current = {entry.name: entry for entry in entries}
    for name, before in inputs.items():
        entry = current.get(name)
        if entry is None or entry.stat(follow_symlinks=False).st_ino != before.st_ino:
            raise CompactionError(f"{directory / name} changed while compacting; left as it was")
    for name, entry in current.items():
        if name in inputs or _WRITER_TEMP.fullmatch(name):
            continue  # a temp file here belongs to a killed writer: no live one holds the lock
        if entry.is_dir(follow_symlinks=False):
            raise CompactionError(f"{entry.path} is a directory inside a partition; left as it was")
        os.link(entry.path, staged / name, follow_symlinks=False)
        carried[name] = entry.stat(follow_symlinks=False).st_size
    if carried:
        _fsync_dir(staged)
    return carried


# --- leftovers of killed runs -------------------------------------------------------------------


def _recover(ctx: _Context, spec: DatasetSpec) -> int:
    """Repair and delete the jobs a killed compaction of this dataset left; returns how many."""
    scratch = ensure_state_path(ctx.root, ctx.root / SCRATCH / spec.name)
    if not scratch.is_dir():
        return 0
    repaired = 0
    for job in sorted(scratch.iterdir()):
        if job.is_dir() and not job.is_symlink():
            fragment = _read_job(job)
            if fragment is not None:
                _repair(ctx, spec, job, fragment)
            _discard(job)
        else:
            job.unlink()  # a file, or a symbolic link itself (never what it points at)
        repaired += 1
    return repaired


def _read_job(job: Path) -> str | None:
    try:
        fragment = json.loads((job / "job.json").read_text(encoding="utf-8"))["partition"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # killed before staging finished: nothing to repair
    return fragment if isinstance(fragment, str) else None


def _repair(ctx: _Context, spec: DatasetSpec, job: Path, fragment: str) -> None:
    parts = fragment.split("/")
    try:
        for part, key in zip(parts, spec.partition_by, strict=True):
            name, _, value = part.partition("=")
            if name != key:
                raise UnsafePathError(f"{fragment!r} is not a {spec.name} partition")
            check_partition_value(key, value)
    except (ValueError, UnsafePathError):
        logger.warning("ignoring compaction job %s naming %r", job, fragment)
        return
    directory = ensure_inside_root(ctx.root, ctx.root / spec.name / fragment)
    staged, retired = job / "staged", job / "retired"
    if staged.is_symlink() or retired.is_symlink():
        logger.warning("ignoring compaction job %s: it holds a symbolic link", job)
        return
    with swapping(ctx.root, ctx.lock_timeout):
        if not directory.exists():
            # Killed between the two renames of the fallback swap.
            source = staged if staged.is_dir() else retired if retired.is_dir() else None
            if source is not None:
                logger.warning("restoring %s from an interrupted compaction", directory)
                os.rename(source, directory)
                _fsync_dir(directory.parent)
        elif staged.is_dir() and retired.is_dir():
            # Same, and then a crawl recreated the partition: its files join the staged ones.
            logger.warning("merging %s with an interrupted compaction", directory)
            for name in os.listdir(directory):
                os.rename(directory / name, staged / name)
            os.rename(staged, directory)  # over the now-empty directory
            _fsync_dir(directory.parent)


# --- the entry point ----------------------------------------------------------------------------


def _partition_dirs(root: Path, spec: DatasetSpec,
                    errors: list[str] | None = None) -> list[tuple[dict[str, str], Path]]:
    """Every leaf partition directory of a dataset, with its partition values, in order.

    A symbolic link named like a partition is never followed; it is named in ``errors``.
    """
    levels: list[tuple[dict[str, str], Path]] = [({}, root / spec.name)]
    for key in spec.partition_by:
        deeper = []
        for values, path in levels:
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda e: e.name)
            for entry in entries:
                name, sep, value = entry.name.partition("=")
                if name != key or not sep:
                    continue  # hidden, temp or foreign entries are not partitions
                try:
                    check_partition_value(key, value)
                except UnsafePathError:
                    continue
                if entry.is_symlink():
                    if errors is not None:
                        where = Path(entry.path).relative_to(root / spec.name).as_posix()
                        errors.append(f"{spec.name} {where}: is a symbolic link "
                                      f"(to {os.readlink(entry.path)}); left alone")
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    continue
                deeper.append(({**values, key: value}, Path(entry.path)))
        levels = deeper
    return levels


# --- the quarantine -----------------------------------------------------------------------------


def _quarantine(ctx: _Context, spec: DatasetSpec, path: Path, reason: str) -> Quarantined:
    """Move one file readers cannot use to ``.tagarchive/quarantine/<dataset>/<its path>``."""
    relative = path.relative_to(ctx.root / spec.name)
    target = ensure_state_path(ctx.root, ctx.root / QUARANTINE / spec.name / relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    ensure_state_path(ctx.root, target)  # what mkdir found there is checked again
    if os.path.lexists(target):  # the same name quarantined before: keep both
        target = target.with_name(f"{target.name}.{ctx.compaction_id}")
    try:
        os.rename(path, target)
    except OSError as exc:
        raise CompactionError(f"cannot move unreadable {path} to {target}: {exc}") from exc
    with contextlib.suppress(OSError):
        _fsync_dir(target.parent)
        _fsync_dir(path.parent)
    logger.info("moved unreadable %s to %s: %s", path, target, reason)
    return Quarantined(str(path), str(target), reason)


def _screen(ctx: _Context, spec: DatasetSpec, result: DatasetReport) -> None:
    """Quarantine the files readers skip: damaged, or outside any partition folder."""
    from storage.reading import misplaced_reason, parquet_problem

    base = ctx.root / spec.name
    emptied: set[Path] = set()
    for current, dirnames, filenames in os.walk(base):  # symlinked folders are not entered
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        here = Path(current)
        placed = partition_values(spec.name, here.relative_to(base).parts) is not None
        for name in sorted(filenames):
            if not name.endswith(".parquet") or name.startswith((".", "_")):
                continue
            path = here / name
            if os.path.islink(path):
                continue  # never moved: compacting its partition names it as an error
            try:
                reason = parquet_problem(path) if placed else misplaced_reason(spec.name)
            except OSError:
                continue  # unreadable for the machine, not damaged: compaction names it
            if reason is None:
                continue
            try:
                result.quarantined.append(_quarantine(ctx, spec, path, reason))
            except (StorageError, OSError) as exc:
                result.errors.append(f"{spec.name} {path.relative_to(base)}: {exc}")
                continue
            if not placed:
                emptied.add(here)
    for directory in sorted(emptied, key=lambda d: len(d.parts), reverse=True):
        # Folders that are no partition held only what was moved: remove them when now empty.
        while directory != base and not _is_partition_prefix(spec, directory.relative_to(base)):
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent


def _is_partition_prefix(spec: DatasetSpec, relative: Path) -> bool:
    keys = spec.partition_by[:len(relative.parts)]
    if len(relative.parts) > len(spec.partition_by):
        return False
    for part, key in zip(relative.parts, keys, strict=True):
        name, sep, value = part.partition("=")
        if name != key or not sep:
            return False
        try:
            check_partition_value(key, value)
        except UnsafePathError:
            return False
    return True


def compaction_cutoff(now: datetime | None, before: date | None,
                      include_today: bool) -> tuple[datetime, date]:
    """The moment of a compaction and the first day it leaves alone (local roots and S3)."""
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}; pass a timezone-aware datetime")
    # Crawls still add to today's partitions; later ones only exist through clock skew.
    cutoff = moment.astimezone(UTC).date() + timedelta(days=1 if include_today else 0)
    if before is not None:
        cutoff = min(cutoff, before)
    return moment, cutoff


def compact(
    root: str | os.PathLike[str],
    datasets: Iterable[str] | None = None,
    before: date | None = None,
    now: datetime | None = None,
    *,
    include_today: bool = False,
    lock_timeout: float = SWAP_WAIT_S,
) -> CompactionReport:
    """Compact every partition dated before ``before`` and before today (UTC), per dataset.

    Raises ArchiveMissingError for a missing root, SchemaError for an unknown dataset and
    LockBusyError when another compaction of a dataset runs; a partition that fails is left as it
    was and named in the report's errors.
    """
    if is_remote(root):  # no rename on S3: output, then a commit marker (storage/s3compact.py)
        from storage.s3compact import compact_s3

        return compact_s3(root, datasets, before, now, include_today=include_today)
    base = Path(os.path.abspath(root))
    if not base.is_dir():
        raise ArchiveMissingError(f"no archive at {root}")
    names = list(dict.fromkeys(
        list(DATASETS) if datasets is None else [get_spec(n).name for n in datasets]))
    # Every path this run may write or delete is checked before anything is touched.
    for name in names:
        if os.path.lexists(base / name):
            ensure_inside_root(base, base / name)
        ensure_state_path(base, base / SCRATCH / name)
        ensure_state_path(base, base / QUARANTINE / name)
    moment, cutoff = compaction_cutoff(now, before, include_today)
    ctx = _Context(base, f"{new_run_id(moment)}", lock_timeout)
    report = CompactionReport({})
    for name in names:
        spec = DATASETS[name]
        result = report.datasets[name] = DatasetReport(name)
        directory = base / name
        if not directory.is_dir():
            continue
        with exclusive(directory, busy=f"another compaction of {name} is running in {base}"):
            report.recovered_jobs += _recover(ctx, spec)
            _screen(ctx, spec, result)
            for values, path in _partition_dirs(base, spec, result.errors):
                if date.fromisoformat(values["date"]) >= cutoff:
                    result.out_of_range += 1
                    continue
                fragment = "/".join(f"{k}={v}" for k, v in values.items())
                try:
                    outcome = _compact_with_quarantine(ctx, spec, fragment, path, result)
                except (StorageError, OSError, pa.ArrowException) as exc:
                    result.errors.append(f"{name} {fragment}: {exc}")
                    continue
                if outcome is not None:
                    _add(result, outcome)
    report.exchange = ctx.exchange
    if datasets is None:  # a pass over the whole root: also the raw archive's leftovers
        from storage.archive import clean_stale_temps

        try:
            report.stale_temps = clean_stale_temps(base)  # file ages: the real clock
        except (StorageError, OSError) as exc:
            report.other_errors.append(f"archive: {exc}")
    return report


def _compact_with_quarantine(ctx: _Context, spec: DatasetSpec, fragment: str, directory: Path,
                             result: DatasetReport) -> _Outcome | None:
    """_compact_partition(), moving each input whose bytes do not parse to the quarantine."""
    while True:
        try:
            return _compact_partition(ctx, spec, fragment, directory)
        except DamagedFileError as exc:
            path = Path(str(exc.path))
            if path.parent != directory or not path.is_file() or path.is_symlink():
                raise
            result.quarantined.append(_quarantine(ctx, spec, path, exc.reason))


def _add(result: DatasetReport, outcome: _Outcome) -> None:
    result.partitions += 1
    if outcome.compacted:
        result.compacted += 1
    else:
        result.already_compact += 1
    result.files_before += outcome.files_before
    result.files_after += outcome.files_after
    result.bytes_before += outcome.bytes_before
    result.bytes_after += outcome.bytes_after
    result.rows_before += outcome.rows_before
    result.rows_kept += outcome.rows_kept
    result.rows_dropped += outcome.rows_before - outcome.rows_kept
    result.carried_over += outcome.carried_over
