"""Local compaction: rewrite each partition's many small files as one sorted, deduplicated file.

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
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.backends.local import LocalBackend
from storage.compact.common import (
    COMPACTED_KEY,
    QUARANTINE,
    ROW_GROUP_ROWS,
    RULES_VERSION,
    SCRATCH,
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
from storage.compact.swap import discard, fsync_dir, fsync_file, recover, swap_in, write_job
from storage.errors import StorageError, UnsafePathError
from storage.locks import exclusive, swapping
from storage.parquetfiles import misplaced_reason, parquet_problem
from storage.paths import (
    check_partition_value,
    ensure_inside_root,
    ensure_state_path,
    new_run_id,
    partition_values,
)
from storage.schemas import DATASETS, DatasetSpec, get_spec

logger = logging.getLogger(__name__)

_WRITER_TEMP = re.compile(r"\.part-.*\.parquet\.tmp")


@dataclass
class _Context:
    root: Path
    compaction_id: str
    lock_timeout: float
    jobs: int = 0
    exchange: bool = True


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


def _compact_partition(
    ctx: _Context, spec: DatasetSpec, fragment: str, directory: Path
) -> Outcome | None:
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
            return Outcome(False, 1, 1, size, size, rows, rows)
    tables = [_read_input(directory / name, spec) for name in names]
    rows_before = sum(t.num_rows for t in tables)
    kept = deduplicate(spec.name, tables)
    if len(names) == 1 and kept.equals(tables[0]):
        # A crawl's single file: already sorted and free of duplicates.
        return Outcome(False, 1, 1, size, size, rows_before, rows_before)
    kept = kept.replace_schema_metadata(compacted_metadata(spec, fragment, len(names)))
    new_size, carried = _stage_and_swap(ctx, spec, fragment, directory, inputs, kept)
    carried_bytes = sum(s for s in carried.values())
    return Outcome(
        True,
        len(names),
        1 + len(carried),
        size,
        new_size + carried_bytes,
        rows_before,
        kept.num_rows,
        len(carried),
    )


def _stage_and_swap(
    ctx: _Context, spec: DatasetSpec, fragment: str, directory: Path,
    inputs: dict[str, os.stat_result], kept: pa.Table,
) -> tuple[int, dict[str, int]]:
    """Write ``kept`` into a job's staged directory and swap it in: (its size, carried over)."""
    ctx.jobs += 1
    scratch = ensure_state_path(ctx.root, ctx.root / SCRATCH / spec.name)
    job = scratch / f"{ctx.compaction_id}-{ctx.jobs:05d}"
    staged = job / "staged"
    try:
        staged.mkdir(parents=True)
        final_name = f"part-{ctx.compaction_id}-compacted.parquet"
        temp = staged / f".{final_name}.tmp"
        pq.write_table(kept, temp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        fsync_file(temp)
        os.replace(temp, staged / final_name)
        new_size = (staged / final_name).stat().st_size
        fsync_dir(staged)
        write_job(job, fragment)
        with swapping(ctx.root, ctx.lock_timeout):
            carried = _carry_over(directory, staged, inputs)
            ctx.exchange &= swap_in(staged, directory, job)
    except Exception as exc:
        # Not swapped: the job holds a copy of live rows. Only a fallback swap whose undo failed
        # leaves P missing; then the job stays for the next run's recover(). (A crash or Ctrl-C
        # skips this cleanup; recover() does it.)
        if not (job / "retired").is_dir():
            discard(job)
        if isinstance(exc, CompactionError):
            raise
        if isinstance(exc, OSError | pa.ArrowException):
            raise CompactionError(f"{directory}: {exc}") from exc
        raise
    with contextlib.suppress(OSError):  # durability only: the swap itself has happened
        fsync_dir(directory.parent)
    discard(job)  # it now holds the old directory
    return new_size, carried


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
        fsync_dir(staged)
    return carried


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
        fsync_dir(target.parent)
        fsync_dir(path.parent)
    logger.info("moved unreadable %s to %s: %s", path, target, reason)
    return Quarantined(str(path), str(target), reason)


def _screen(ctx: _Context, spec: DatasetSpec, result: DatasetReport) -> None:
    """Quarantine the files readers skip: damaged, or outside any partition folder."""
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


def compact(
    root: str | os.PathLike[str],
    datasets: Iterable[str] | None = None,
    before: date | None = None,
    now: datetime | None = None,
    *,
    include_today: bool = False,
    lock_timeout: float = SWAP_WAIT_S,
) -> CompactionReport:
    """compact() for a local root (storage.compact.compact documents the arguments)."""
    base = Path(os.path.abspath(LocalBackend().location(root)))  # file:// names a directory
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
        result = report.datasets[name] = DatasetReport(name)
        if (base / name).is_dir():
            report.recovered_jobs += _compact_dataset(ctx, DATASETS[name], cutoff, result)
    report.exchange = ctx.exchange
    if datasets is None:  # a pass over the whole root: also the raw archive's leftovers
        from storage.archive import clean_stale_temps

        try:
            report.stale_temps = clean_stale_temps(base)  # file ages: the real clock
        except (StorageError, OSError) as exc:
            report.other_errors.append(f"archive: {exc}")
    return report


def _compact_dataset(ctx: _Context, spec: DatasetSpec, cutoff: date,
                     result: DatasetReport) -> int:
    """Repair, screen and compact one dataset under its lock; returns the jobs repaired."""
    base, name = ctx.root, spec.name
    with exclusive(base / name, busy=f"another compaction of {name} is running in {base}"):
        recovered = recover(ctx.root, ctx.lock_timeout, spec)
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
                add_outcome(result, outcome)
    return recovered


def _compact_with_quarantine(ctx: _Context, spec: DatasetSpec, fragment: str, directory: Path,
                             result: DatasetReport) -> Outcome | None:
    """_compact_partition(), moving each input whose bytes do not parse to the quarantine."""
    while True:
        try:
            return _compact_partition(ctx, spec, fragment, directory)
        except DamagedFileError as exc:
            path = Path(str(exc.path))
            if path.parent != directory or not path.is_file() or path.is_symlink():
                raise
            result.quarantined.append(_quarantine(ctx, spec, path, exc.reason))


