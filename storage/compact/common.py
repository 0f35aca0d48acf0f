"""What local and S3 compaction share: the report, the errors, the dedup rules, input checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.errors import StorageError
from storage.parquetfiles import parquet_error_text
from storage.paths import STATE_DIR
from storage.schemas import SCHEMA_VERSION, DatasetSpec, get_spec, upgrade_table

SCRATCH = Path(STATE_DIR, "compact")
QUARANTINE = Path(STATE_DIR, "quarantine")
# Stored in each compacted file's metadata: a single file with the current version is skipped
# without reading it. Bump when a rule in DEDUP_RULES changes.
RULES_VERSION = "3"
COMPACTED_KEY = b"tagarchive.compaction"
# Row groups small enough that min/max statistics on the leading sort column (tag) prune, large
# enough that a day of snapshots is one group.
ROW_GROUP_ROWS = 65_536
SWAP_WAIT_S = 60.0
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
        "the latest observation per (platform, tag, post_id) per day; and an archived page parsed "
        "again by a later run (`reparse`) replaces that page's rows from earlier runs, even where "
        "the new rows name their posts differently (a privacy mode that hashes an author "
        "inside a post id)",
    ),
    "activity": DedupRule(
        ("tag", "day"),
        "observed_at",
        "the newest observed_at per (platform, tag, day): a re-run backfill replaces, not adds",
    ),
    "rejects": DedupRule((), None, "exact duplicate rows only"),
    "runs": DedupRule((), None, "exact duplicate rows only"),
    "alerts": DedupRule((), None, "exact duplicate rows only"),
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


def _latest_parse_of_each_page(table: pa.Table) -> pa.Table:
    """Rows from the latest run that parsed each archived page (archive_file, archive_record);
    rows without an archive pointer are all kept. A crawl archives each page once, so two runs
    naming one record are a crawl and a later `reparse` of it: the reparse's rows replace the
    page's rows whole. Rows of one run (a page split over two flushes) are never dropped."""
    pointer = pc.and_(pc.is_valid(table["archive_file"]), pc.is_valid(table["archive_record"]))
    if not pc.any(pointer).as_py():
        return table
    pointed = table.filter(pointer)
    latest = pointed.group_by(["archive_file", "archive_record"]).aggregate(
        [("run_id", "max")])
    runs = pointed.group_by(["archive_file", "archive_record", "run_id"]).aggregate([])
    if runs.num_rows == latest.num_rows:  # each page parsed by one run only: the usual case
        return table
    joined = pointed.select(["archive_file", "archive_record", "run_id", _FILE, _ROW]).join(
        latest, ["archive_file", "archive_record"])
    stale = joined.filter(pc.not_equal(joined["run_id"], joined["run_id_max"]))
    if stale.num_rows == 0:
        return table
    # (file, row) as one int64, so list columns (which a join cannot carry) stay out of it
    def where(t: pa.Table) -> Any:  # a ChunkedArray of int64; the stubs' generics disagree
        return pc.add(pc.multiply(t[_FILE].cast(pa.int64()), 1 << 40), t[_ROW])

    gone: Any = pc.is_in(where(table), value_set=where(stale))
    return table.filter(pc.invert(gone))


# A pc.sort_indices key: a column and its direction.
_SortKey = tuple[str, Literal["ascending", "descending"]]


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
    if spec.name == "posts":
        table = _latest_parse_of_each_page(table)
    table = _keep_newest(table, rule) if rule.key else _drop_exact_duplicates(table)
    order: list[_SortKey] = [(c, "ascending") for c in (*spec.sort_by, _FILE, _ROW)]
    table = table.take(pc.sort_indices(table, sort_keys=order))
    return table.drop_columns([_FILE, _ROW]).cast(spec.schema)


def _keep_newest(table: pa.Table, rule: DedupRule) -> pa.Table:
    order: list[_SortKey] = [(c, "ascending") for c in rule.key]
    if rule.newest_by:
        order.append((rule.newest_by, "descending"))
    order += [(_FILE, "descending"), (_ROW, "descending")]
    table = table.take(pc.sort_indices(table, sort_keys=order))
    n = table.num_rows
    if n < 2:
        return table
    starts: pa.BooleanArray | None = None
    for column in rule.key:
        values = table[column].combine_chunks()
        # A null key never equals anything: such rows are all kept, the safe side.
        differs = pc.not_equal(values.slice(1), values.slice(0, n - 1))
        # the stubs lose the boolean type through fill_null; filling booleans keeps it
        changed = cast(pa.BooleanArray, differs.fill_null(True))
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



@dataclass
class Outcome:
    """What compacting one partition did (or found already done)."""

    compacted: bool
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rows_before: int
    rows_kept: int
    carried_over: int = 0



def compacted_metadata(spec: DatasetSpec, fragment: str, files: int) -> dict[bytes, bytes]:
    """The schema metadata of a compacted file: it says so, with its rules' version."""
    return {
        **(spec.schema.metadata or {}),
        b"tagarchive.partition": fragment.encode(),
        COMPACTED_KEY: RULES_VERSION.encode(),
        b"tagarchive.compacted_files": str(files).encode(),
    }


def parse_parquet(data: bytes, path: object) -> pa.Table:
    """A whole file's bytes as a table; DamagedFileError if they are not readable Parquet."""
    try:
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (OSError, pa.ArrowException) as exc:
        raise DamagedFileError(path, parquet_error_text(exc)) from exc


def fit_schema(table: pa.Table, spec: DatasetSpec, path: object) -> pa.Table:
    """One input file's table in the dataset's current schema (shared with S3 compaction).

    A file of an older version is upgraded (schemas.upgrade_table) and its rows are then marked
    with the current schema_version: compaction is how an archive moves to the new schema.
    """
    if table.schema.equals(spec.schema, check_metadata=False):
        return table
    table = upgrade_table(table, spec.name)
    if "schema_version" in table.column_names:
        version = pa.array([SCHEMA_VERSION] * table.num_rows, pa.int16())
        table = table.set_column(table.column_names.index("schema_version"), "schema_version",
                                 version)
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



def add_outcome(result: DatasetReport, outcome: Outcome) -> None:
    """Count one partition's outcome into its dataset's report."""
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
