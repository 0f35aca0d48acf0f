"""Versioned Arrow schemas of the tagarchive datasets, and strict conversion of rows to tables."""

from __future__ import annotations

import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from storage.errors import SchemaError

# Additive changes keep the version: a new nullable column, or a new value of a closed vocabulary,
# leaves every older file readable as it is, because readers pass the current schema explicitly
# (open_dataset) or read with union_by_name (duckdb_connect), and a column a file lacks reads as
# null. Renaming, retyping or dropping a column, or changing what a value means, bumps the version.
# Version 1 added runs.watch … runs.findings and the `<counter>_approx` booleans.
# Version 2 (the counter-semantics change) replaced each `<counter>_approx` with
# `<counter>_semantics` (one of SEMANTICS) and added the snapshot columns window_start,
# window_end, posts_seen, visibility_cap and caveats. Files of version 1 stay readable: LEGACY
# says how each of their old columns maps onto the new ones, and every reader applies it
# (the DuckDB views, open_dataset + upgrade_table, compaction, which rewrites them as version 2).
SCHEMA_VERSION = 2

# Partition columns live in the directory names only (platform=.../date=...), never in the files.
# Checked with pyarrow 26.0.1, duckdb 2.0.0 and polars 2.1.0: files that also stored platform/date
# read back without error, but all three silently preferred the path value when the copy inside
# the file disagreed (platform='other' under platform=tiktok read back as 'tiktok'), and DuckDB
# casts date= to DATE on its own. A copy would be redundant and could diverge unseen. A file that
# travels alone still names its partition in its key-value metadata (see writer.py).
PARTITION_COLUMNS = ("platform", "date")

SOURCES = ("embedded_json", "api", "captured_xhr", "rendered_dom")
COVERAGES = ("complete", "lower_bound", "platform_reported")
# skipped, missed, timeout and crashed are written by the scheduler for fires where no crawl wrote
# its own record (crawler/services/fires.py); a crawl stopped by its own time limit says
# timeout too.
VERDICTS = ("ok", "failed", "error", "interrupted", "skipped", "missed", "timeout", "crashed")
HEALTH = ("healthy", "unhealthy")
# What a stored counter value is (docs/data.md has the table per platform and counter):
#   exact        an exact integer
#   rounded      parsed from display text ("1.2亿"), or an integer the platform rounds for display
#   lower_bound  at least this many: a capped sample, a page count, a walk stopped by a bound
#   capped       saturated at a platform limit; the value is not stored, `<counter>_text` keeps it
#   window       a count over [window_start, window_end) of the same snapshot
SEMANTICS = ("exact", "rounded", "lower_bound", "capped", "window")
# How a snapshot's page was fetched (docs/access.md): plain HTTP, an HTTP request signed with the
# site's own script in a live page, a fetch() run inside a live page, or a full page render.
FETCHED_BY = ("http", "signed_http", "in_page_fetch", "render")

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
COUNTERS = ("views", "posts", "discussions", "participants")
POST_COUNTERS = ("likes", "comments", "shares", "plays")
ACTIVITY_COUNTERS = ("posts", "participants")


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset is stored: its schema, partition keys, sort order and date source column."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    sort_by: tuple[str, ...]
    # The column whose UTC day must equal the date= partition value.
    date_from: str


def _schema(name: str, fields: list[pa.Field[Any]]) -> pa.Schema:
    common: list[pa.Field[Any]] = [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ]
    metadata: dict[bytes | str, bytes | str] = {
        "tagarchive.dataset": name,
        "tagarchive.schema_version": str(SCHEMA_VERSION),
    }
    return pa.schema(fields + common, metadata=metadata)


def _str(name: str, nullable: bool = True) -> pa.Field[Any]:
    return pa.field(name, pa.string(), nullable=nullable)


def _int(name: str) -> pa.Field[Any]:
    return pa.field(name, pa.int64())


def _ts(name: str, nullable: bool = True) -> pa.Field[Any]:
    return pa.field(name, UTC_TIMESTAMP, nullable=nullable)


def _semantics(counters: tuple[str, ...]) -> list[pa.Field[Any]]:
    """What each counter's value is (one of SEMANTICS); null only when there is neither a value
    nor a capped figure (or, in posts and activity, in files older than the `_approx` columns)."""
    return [pa.field(f"{c}_semantics", pa.string()) for c in counters]


def _strings(name: str, nullable: bool = True) -> pa.Field[Any]:
    return pa.field(name, pa.list_(pa.string()), nullable=nullable)


SNAPSHOTS_SCHEMA = _schema(
    "snapshots",
    [
        _str("tag", nullable=False),
        _str("tag_display"),
        _str("tag_id"),
        _str("url"),
        _ts("observed_at", nullable=False),
        *(_int(c) for c in COUNTERS),
        *(_str(f"{c}_text") for c in COUNTERS),
        *_semantics(COUNTERS),
        _str("source", nullable=False),
        # provenance: the WARC file (relative to the root) and record the values came from
        _str("archive_file"),
        _str("archive_record"),
        # the window of the counters whose semantics is `window` (or a `lower_bound` walk of it)
        _ts("window_start"),
        _ts("window_end"),
        # posts actually seen under the tag in this observation, beside the reported totals
        _int("posts_seen"),
        # the platform's known cap on posts visible under one tag or query (docs/data.md)
        _int("visibility_cap"),
        # known glitches nulled with a reason, one line each ("posts: videoCount 0 beside ...")
        _strings("caveats"),
        # how the page was fetched (FETCHED_BY); null in files written before it was recorded
        _str("fetched_by"),
    ],
)

POSTS_SCHEMA = _schema(
    "posts",
    [
        _str("post_id", nullable=False),
        _str("tag", nullable=False),
        _str("tag_id"),
        _str("url"),
        _str("author_id"),
        _str("author_name"),
        _str("text"),
        _ts("created_at"),
        _ts("observed_at", nullable=False),
        *(_int(c) for c in POST_COUNTERS),
        _str("source", nullable=False),
        _str("archive_file"),
        _str("archive_record"),
        *_semantics(POST_COUNTERS),
        # the text's language as detected (ISO 639-1) and how sure the detector was, the
        # platform's own label beside it, and the hashtags the text carries (normalized)
        _str("lang"),
        pa.field("lang_confidence", pa.float64()),
        _str("lang_platform"),
        _strings("hashtags"),
    ],
)

ACTIVITY_SCHEMA = _schema(
    "activity",
    [
        _str("tag", nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        _int("posts"),
        _int("participants"),
        _str("coverage", nullable=False),
        _str("source", nullable=False),
        _ts("observed_at", nullable=False),
        *_semantics(ACTIVITY_COUNTERS),
    ],
)

REJECTS_SCHEMA = _schema(
    "rejects",
    [
        _ts("rejected_at", nullable=False),
        _str("platform"),
        _str("item_type"),
        _str("tag"),
        _strings("reasons", nullable=False),
        _str("raw"),
    ],
)

OUTCOME_TYPE = pa.struct(
    [
        ("platform", pa.string()),
        ("tag", pa.string()),
        ("status", pa.string()),
        ("detail", pa.string()),
    ]
)

# One health check that flagged something (crawler/extensions/health.py): check name, where,
# and why.
FINDING_TYPE = pa.struct(
    [
        ("check", pa.string()),
        ("platform", pa.string()),
        ("tag", pa.string()),
        ("detail", pa.string()),
    ]
)

RUNS_SCHEMA = _schema(
    "runs",
    [
        # run_id comes from _schema(); runs are keyed by it.
        _str("command"),
        _strings("argv"),
        _strings("platforms"),
        _strings("tags"),
        _ts("started_at", nullable=False),
        _ts("finished_at"),
        pa.field("duration_s", pa.float64()),
        *(
            _int(c)
            for c in (
                "snapshots",
                "posts",
                "activity",
                "rejects",
                "requests",
                "rendered_requests",
                "errors",
            )
        ),
        pa.field("outcomes", pa.list_(OUTCOME_TYPE)),
        _str("verdict"),
        pa.field("exit_code", pa.int16()),
        _str("host"),
        _int("pid"),
        _str("version"),
        _str("settings"),
        # added for scheduled crawls (all nullable, so older runs files read them as null)
        _str("watch"),
        _str("trigger"),
        _str("reason"),
        _str("health"),
        pa.field("findings", pa.list_(FINDING_TYPE)),
        # the privacy mode the run's rows were made under (pseudonymize, redact, keep) and the
        # id of its pseudonymisation key (storage/pseudonymkey.py), never the key
        _str("privacy"),
        _str("privacy_key"),
    ],
)

# One alert event (crawler/services/alerts/, docs/alerts.md): an episode that began (`firing`) or
# ended (`resolved`), or a test message (`test`); the numbers that decided it, the message, and
# how each target took it. Targets are stored redacted (scheme and host), never as configured.
ALERT_STATES = ("firing", "resolved", "test")
DELIVERY_TYPE = pa.struct([("target", pa.string()), ("ok", pa.bool_()), ("error", pa.string())])

ALERTS_SCHEMA = _schema(
    "alerts",
    [
        _str("alert", nullable=False),
        _str("kind", nullable=False),
        _str("state", nullable=False),
        _str("watch"),
        _str("platform"),
        _str("tag"),
        _str("counter"),
        _int("value"),
        _str("semantics"),
        _int("baseline"),
        _str("baseline_semantics"),
        _ts("baseline_at"),
        pa.field("change", pa.float64()),
        pa.field("score", pa.float64()),
        pa.field("threshold", pa.float64()),
        _str("detail"),
        _str("message", nullable=False),
        _strings("targets"),
        pa.field("deliveries", pa.list_(DELIVERY_TYPE)),
        _ts("observed_at"),
        _ts("sent_at", nullable=False),
    ],
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "snapshots",
            SNAPSHOTS_SCHEMA,
            ("platform", "date"),
            ("tag", "observed_at"),
            "observed_at",
        ),
        DatasetSpec(
            "posts",
            POSTS_SCHEMA,
            ("platform", "date"),
            ("tag", "post_id", "observed_at"),
            "observed_at",
        ),
        DatasetSpec("activity", ACTIVITY_SCHEMA, ("platform", "date"), ("tag", "day"), "day"),
        DatasetSpec("rejects", REJECTS_SCHEMA, ("date",), ("rejected_at",), "rejected_at"),
        DatasetSpec("runs", RUNS_SCHEMA, ("date",), ("started_at", "run_id"), "started_at"),
        DatasetSpec("alerts", ALERTS_SCHEMA, ("date",), ("sent_at", "alert"), "sent_at"),
    )
}


# --- older schema versions -----------------------------------------------------------------

# dataset -> {column of an older version: (the column that replaced it, old value -> new value)}.
# Version 1's `<counter>_approx` said "parsed from rounded display text" (true) or "an exact
# integer" (false); version 1 had no lower_bound, capped or window, so true maps to rounded.
_APPROX = {True: "rounded", False: "exact"}
LEGACY: dict[str, dict[str, tuple[str, dict[bool, str]]]] = {
    "snapshots": {f"{c}_approx": (f"{c}_semantics", _APPROX) for c in COUNTERS},
    "posts": {f"{c}_approx": (f"{c}_semantics", _APPROX) for c in POST_COUNTERS},
    "activity": {f"{c}_approx": (f"{c}_semantics", _APPROX) for c in ACTIVITY_COUNTERS},
}

def legacy_fields(dataset: str) -> list[pa.Field[Any]]:
    """The columns older files of a dataset may hold that the current schema replaced."""
    return [pa.field(old, pa.bool_()) for old in LEGACY.get(dataset, {})]


def upgrade_table(table: pa.Table, dataset: str) -> pa.Table:
    """A table read from files of any version, with older columns folded into the current ones
    (a value the current column already has wins) and dropped."""
    for old, (new, mapping) in LEGACY.get(dataset, {}).items():
        if old not in table.column_names:
            continue
        flags = table[old].cast(pa.bool_())
        mapped = pc.if_else(flags, mapping[True], mapping[False])
        if new in table.column_names:
            mapped = pc.coalesce(table[new], mapped)
            table = table.set_column(table.column_names.index(new), new, mapped)
        else:
            table = table.append_column(new, mapped)
        table = table.drop_columns([old])
    return table


def upgrade_sql(dataset: str) -> str:
    """The DuckDB select list that does what upgrade_table does, over a relation that has both
    the old and the current columns (the views bring every column of every version)."""
    legacy = LEGACY.get(dataset, {})
    if not legacy:
        return "*"
    exclude = ", ".join(f'"{old}"' for old in legacy)
    replace = ", ".join(
        f'coalesce("{new}", CASE "{old}" WHEN true THEN \'{mapping[True]}\''
        f' WHEN false THEN \'{mapping[False]}\' END) AS "{new}"'
        for old, (new, mapping) in legacy.items()
    )
    return f"* EXCLUDE ({exclude}) REPLACE ({replace})"


def get_spec(dataset: str) -> DatasetSpec:
    """Return the spec of a known dataset, or raise SchemaError naming the known ones."""
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        known = ", ".join(DATASETS)
        raise SchemaError(f"unknown dataset {dataset!r} (known: {known})") from None


# --- row conversion -------------------------------------------------------------------------
#
# pyarrow's own conversion is lenient in ways that corrupt data silently (pyarrow 26): 1.5 -> int64
# gives 1, a naive datetime is taken as UTC, an int becomes an epoch timestamp, a datetime fits a
# date32 by dropping its time, and a str fits list<string> as a list of characters. So each column
# is checked by the *set of Python types* it holds (one C-level pass) before pa.array() sees it.

_NoneType = type(None)


def _is_int(t: type) -> bool:
    return issubclass(t, numbers.Integral) and not issubclass(t, bool)


def _is_float(t: type) -> bool:
    return issubclass(t, numbers.Real) and not issubclass(t, bool)


def _type_check(arrow_type: pa.DataType) -> Callable[[type], bool]:
    if pa.types.is_string(arrow_type):
        return lambda t: issubclass(t, str)
    if pa.types.is_integer(arrow_type):
        return _is_int
    if pa.types.is_floating(arrow_type):
        return _is_float
    if pa.types.is_boolean(arrow_type):
        return lambda t: issubclass(t, bool)
    if pa.types.is_timestamp(arrow_type):
        return lambda t: issubclass(t, datetime)
    if pa.types.is_date(arrow_type):
        return lambda t: issubclass(t, date) and not issubclass(t, datetime)
    if pa.types.is_list(arrow_type):
        return lambda t: issubclass(t, (list, tuple))
    raise TypeError(f"no row check for Arrow type {arrow_type}")  # a schema bug, not a data error


# Closed vocabularies, checked on the built array (vectorized) rather than per row.
_ENUMS = {"source": SOURCES, "coverage": COVERAGES, "verdict": VERDICTS, "health": HEALTH,
          "fetched_by": FETCHED_BY,
          **{f"{c}_semantics": SEMANTICS
             for c in (*COUNTERS, *POST_COUNTERS, *ACTIVITY_COUNTERS)}}

# pyarrow already refuses anything but str (or UTF-8 bytes) for string and anything but bool for
# bool, so those
# columns skip the type pass (about a third of the conversion time on snapshots).
_TRUSTS_ARROW = defaultdict(bool, {pa.string().id: True, pa.bool_().id: True})

_CHECKS: dict[str, dict[str, Callable[[type], bool]]] = {
    name: {f.name: _type_check(f.type) for f in spec.schema} for name, spec in DATASETS.items()
}
_ALLOWED_KEYS: dict[str, frozenset[str]] = {
    name: frozenset(spec.schema.names) | frozenset(spec.partition_by)
    for name, spec in DATASETS.items()
}


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _fail(dataset: str, column: str, problem: str, row: int | None = None) -> SchemaError:
    where = f" (row {row})" if row is not None else ""
    return SchemaError(f"{dataset}.{column}: {problem}{where}")


def _check_values(dataset: str, field: pa.Field[Any], values: list[Any]) -> None:
    check = _CHECKS[dataset][field.name]
    types = set(map(type, values))
    has_null = _NoneType in types
    types.discard(_NoneType)
    if not all(check(t) for t in types):
        row, value = next(
            (i, v) for i, v in enumerate(values) if v is not None and not check(type(v))
        )
        raise _fail(dataset, field.name, f"expected {field.type}, got {_describe(value)}", row)
    if pa.types.is_timestamp(field.type) and types:
        # attrgetter over a column with nulls would confuse None (null) with None (naive).
        tzinfos = (
            {v.tzinfo for v in values if v is not None}
            if has_null
            else set(map(attrgetter("tzinfo"), values))
        )
        if None in tzinfos:
            row = next(i for i, v in enumerate(values) if v is not None and v.tzinfo is None)
            raise _fail(
                dataset, field.name, "naive datetime; pass a timezone-aware UTC datetime", row
            )
    if pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type):
        allowed = {f.name for f in field.type.value_type}
        for row, items in enumerate(values):
            for item in items or ():
                if not isinstance(item, Mapping) or not allowed.issuperset(item):
                    problem = (
                        f"items must be mappings with keys {sorted(allowed)}, got {_describe(item)}"
                    )
                    raise _fail(dataset, field.name, problem, row)


def _columns(spec: DatasetSpec, rows: list[dict[str, Any]], keys: Any) -> dict[str, Any]:
    """Column name -> values (a list) for rows that all have `keys`; absent columns are left
    out (the caller reads them as nulls). One C-level pass per column (map + itemgetter):
    transposing in one pass with zip(*rows) was 3-4x slower, from 9k rows (a crawl's final
    write: 11 ms against 7) to 1M (2.7 s against 0.65), docs/performance.md."""
    return {name: list(map(itemgetter(name), rows)) for name in spec.schema.names
            if name in keys}


def _check_enum(dataset: str, column: str, array: pa.Array[Any], allowed: tuple[str, ...]) -> None:
    # is_in() says False for a null; nulls are the column's nullability's business, not ours.
    inside = pc.is_in(array, value_set=pa.array(allowed, pa.string()))
    outside = pc.and_(pc.is_valid(array), pc.invert(inside))
    if pc.any(outside).as_py():
        row = outside.to_pylist().index(True)
        value = array[row].as_py()
        raise _fail(dataset, column, f"{value!r} is not one of {', '.join(allowed)}", row)


def _as_dicts(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as a list of dicts: the list itself when it already is one (no copy)."""
    listed = rows if isinstance(rows, list) else list(rows)
    if all(issubclass(t, dict) for t in set(map(type, listed))):
        return cast("list[dict[str, Any]]", listed)  # every row's type was just checked
    # dict.get below is the fast path; other mappings (Scrapy items) are copied once.
    return [row if isinstance(row, dict) else dict(row) for row in listed]


def table_from_rows(
    dataset: str, rows: Iterable[Mapping[str, Any]], *, run_id: str | None = None
) -> pa.Table:
    """Convert row dicts to a table of exactly the dataset's schema, or raise SchemaError.

    Missing keys become nulls; partition keys (platform, date) are accepted and ignored because
    they belong to the path; any other unknown key is an error so a misspelt column is never
    dropped silently. ``schema_version`` is filled in, and ``run_id`` too when given.
    """
    spec = get_spec(dataset)
    rows = _as_dicts(rows)
    n = len(rows)
    # Rows from one producer share their keys: comparing each row's keys with the first's is a
    # C-level pass, cheaper than building their union; the union is taken only when they differ.
    first = rows[0].keys() if rows else {}.keys()
    same_keys = all(map(first.__eq__, map(dict.keys, rows)))
    if same_keys:
        unknown = set(first) - _ALLOWED_KEYS[dataset]
    else:
        unknown = set().union(*rows) - _ALLOWED_KEYS[dataset]
    if unknown:
        column = sorted(unknown, key=str)[0]
        row = next(i for i, r in enumerate(rows) if column in r)
        raise _fail(dataset, str(column), "unknown column", row)
    columns = _columns(spec, rows, first) if same_keys and n else {}

    arrays = []
    for field in spec.schema:
        name = field.name
        values = columns.get(name)
        if values is None:
            values = list(map(dict.get, rows, repeat(name, n)))
        if name == "schema_version":
            try:
                claimed = set(values)
            except TypeError:  # unhashable junk
                claimed = {object()}
            if not claimed <= {None, SCHEMA_VERSION}:
                raise _fail(dataset, name, f"rows claim another version than {SCHEMA_VERSION}")
            arrays.append(pa.array([SCHEMA_VERSION] * n, type=field.type))
            continue
        if name == "run_id" and run_id is not None:
            values = [run_id if v is None else v for v in values]
        if not _TRUSTS_ARROW[field.type.id]:
            _check_values(dataset, field, values)
        try:
            array = pa.array(values, type=field.type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            _check_values(dataset, field, values)  # to name the offending row, if it can
            raise _fail(dataset, name, f"cannot convert to {field.type}: {exc}") from exc
        if not field.nullable and array.null_count:
            row = values.index(None)
            raise _fail(dataset, name, "null in a non-nullable column", row)
        if name in _ENUMS:
            _check_enum(dataset, name, array, _ENUMS[name])
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=spec.schema)
