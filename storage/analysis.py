"""Analysis of an archive root for notebooks, `tagarchive query` and `tagarchive report`.

`open_archive(root)` gives one DuckDB connection with a typed view per dataset, and turns any
dataset or query into a DuckDB relation, an Arrow table, a pandas frame (nullable dtypes) or a
Polars frame, so nobody globs paths or guesses partition types by hand. The per-tag questions
the report asks (series, growth, milestones, latest values, data quality) live here too, as SQL
over the views, so a notebook gets exactly the numbers the report shows.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from storage.backends import backend_for, scheme_of
from storage.errors import ArchiveNotFoundError as ArchiveNotFoundError  # raised by the back-ends
from storage.errors import StorageError
from storage.quality import GAP_FACTOR as GAP_FACTOR
from storage.quality import Gap as Gap
from storage.quality import Quality, tag_quality
from storage.quality import find_gaps as find_gaps
from storage.reading import duckdb_connect, open_dataset
from storage.schemas import COUNTERS, LEGACY, get_spec

if TYPE_CHECKING:  # pandas and polars are optional: imported only by the methods that need them
    import pandas as pd
    import polars as pl

MILESTONES: tuple[int, ...] = (1_000_000, 10_000_000, 100_000_000)
GROWTH_BUCKETS = {"hour": "1 hour", "day": "1 day"}


class UnsupportedRootError(StorageError, ValueError):
    """The root names a location this version cannot read (a URL scheme, for now)."""


def resolve_root(root: str | os.PathLike[str]) -> str:
    """Check an archive root and return it in the form the readers take.

    Every command and the notebook API pass their root through here. An ``s3://bucket/prefix``
    root is checked (bucket reachable, a dataset there) and returned as its normalized URL; a bad
    S3 URL raises BadRootError, an unreachable bucket S3Error (docs/s3.md).
    """
    text = os.fspath(root)
    if "://" in text and not scheme_of(text):  # a scheme no back-end serves (storage/backends/)
        scheme = text.split("://", 1)[0]
        raise UnsupportedRootError(f"cannot read {scheme}:// roots yet: {text}")
    return backend_for(text).resolve(text)


def fold_tag(tag: str) -> str:
    """The stored form of a tag for matching: NFKC, no leading '#', case-folded.

    The crawler's `crawler.text.tags.normalize_tag` is the full rule (it also validates); this is
    the part that matters for looking a tag up, without importing the crawler.
    """
    text = unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip()
    return unicodedata.normalize("NFKC", text.casefold())


def _pandas_types(arrow_type: pa.DataType) -> Any:
    import pandas as pd

    # Plain to_pandas() turns an int64 column with nulls into float64 and bools into object.
    if pa.types.is_integer(arrow_type):
        return pd.api.types.pandas_dtype(f"Int{arrow_type.bit_width}")
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas with nullable integer and boolean columns."""
    return table.to_pandas(types_mapper=_pandas_types)


class Archive:
    """An archive root opened for analysis: one DuckDB connection with a view per dataset."""

    def __init__(
        self, root: str | os.PathLike[str], con: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        self.root = resolve_root(root)
        self.con = duckdb_connect(self.root, con)

    # --- plumbing -------------------------------------------------------------------------

    def refresh(self) -> Archive:
        """Re-create the views, to see datasets that got their first files since opening."""
        duckdb_connect(self.root, self.con)
        return self

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """Run SQL over the views; returns a DuckDB relation (None for statements without rows)."""
        return self.con.sql(query, params=params)

    def relation(self, dataset: str) -> duckdb.DuckDBPyRelation:
        """A dataset as a lazy DuckDB relation over its view."""
        return self.con.view(get_spec(dataset).name)

    def _rel(self, what: str | duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
        return self.relation(what) if isinstance(what, str) else what

    def arrow(self, what: str | duckdb.DuckDBPyRelation) -> pa.Table:
        """A dataset (by name) or a relation as an Arrow table, with the views' types."""
        table: pa.Table = self._rel(what).to_arrow_table()  # duckdb types it Any
        return table

    def pandas(self, what: str | duckdb.DuckDBPyRelation) -> pd.DataFrame:
        """A dataset or relation as pandas, counters as nullable Int64 (never float64)."""
        return to_pandas(self.arrow(what))

    def polars(self, what: str | duckdb.DuckDBPyRelation) -> pl.DataFrame:
        """A dataset or relation as a Polars DataFrame."""
        import polars as pl

        frame = pl.from_arrow(self.arrow(what))
        assert isinstance(frame, pl.DataFrame)  # from_arrow gives a Series only for an array
        return frame

    def scan(self, dataset: str) -> pl.LazyFrame:
        """A dataset as a lazy Polars frame over its files, partitions typed as in the views."""
        import polars as pl

        frame = pl.scan_pyarrow_dataset(open_dataset(self.root, dataset))
        if "date" in get_spec(dataset).partition_by:
            # open_dataset keeps partition text (never inferred); the views type it as DATE.
            frame = frame.with_columns(pl.col("date").str.to_date("%Y-%m-%d"))
        # files of an older schema version: their columns folded into the current ones, as the
        # views and compaction do (storage.schemas.upgrade_table)
        for old, (new, mapping) in LEGACY.get(dataset, {}).items():
            flag = pl.col(old)
            derived = (pl.when(flag).then(pl.lit(mapping[True]))
                       .when(flag.not_()).then(pl.lit(mapping[False])))
            frame = frame.with_columns(pl.coalesce(pl.col(new), derived).alias(new)).drop(old)
        return frame

    # --- the questions a report asks about one tag ------------------------------------------

    @staticmethod
    def _where(
        tag: str,
        platforms: Iterable[str] | None,
        since: date | None,
        until: date | None,
        time_column: str = "observed_at",
    ) -> tuple[str, list[object]]:
        clauses: list[str] = ["tag = ?"]
        params: list[object] = [fold_tag(tag)]
        if platforms is not None:
            clauses.append("list_contains(?, platform)")
            params.append(list(platforms))
        if since is not None:
            clauses.append(f"{time_column} >= ?")
            params.append(since)
        if until is not None:
            clauses.append(f"{time_column} < ?")
            params.append(until)
        return " and ".join(clauses), params

    def tags(self) -> duckdb.DuckDBPyRelation:
        """Every tag with snapshots: platforms, observations, first and last seen."""
        return self.con.sql(
            "select tag, any_value(tag_display) as tag_display, list(distinct platform"
            " order by platform) as platforms, count(*) as snapshots,"
            " min(observed_at) as first_seen, max(observed_at) as last_seen"
            " from snapshots group by tag order by tag"
        )

    def series(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """Every snapshot of a tag: counters, what each is (`_semantics`), display text, and the
        window, posts seen and visibility cap they go with."""
        where, params = self._where(tag, platforms, since, until)
        columns = ", ".join(
            [*COUNTERS, *(f"{c}_semantics" for c in COUNTERS), *(f"{c}_text" for c in COUNTERS),
             "window_start", "window_end", "posts_seen", "visibility_cap", "caveats"]
        )
        return self.con.sql(
            f"select platform, tag, tag_display, observed_at, {columns}, source, url, run_id"
            f" from snapshots where {where} order by platform, observed_at",
            params=params,
        )

    def latest(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """The latest snapshot of a tag on each platform."""
        latest = self.series(tag, platforms=platforms, since=since, until=until).query(
            "s",
            "select * from s qualify row_number() over"
            " (partition by platform order by observed_at desc) = 1 order by platform",
        )
        if latest is None:  # only a statement without rows gives None; a select has rows
            raise RuntimeError("duckdb returned no relation for a select")
        return latest

    def milestones(
        self,
        tag: str,
        *,
        counter: str = "views",
        thresholds: Sequence[int] = MILESTONES,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """The first snapshot at or above each threshold, per platform.

        `before_first` is true when the very first snapshot was already above: the crossing
        happened before the archive started watching, and only the upper bound is known.
        `previous_at`/`previous_value` bracket the crossing otherwise.
        """
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r} (known: {', '.join(COUNTERS)})")
        where, params = self._where(tag, platforms, since, until)
        return self.con.sql(
            f"""
            with s as (
                select platform, observed_at, {counter} as value, run_id,
                       lag(observed_at) over w as previous_at,
                       lag({counter}) over w as previous_value
                from snapshots where {where} and {counter} is not null
                window w as (partition by platform order by observed_at)),
            t as (select unnest(?::BIGINT[]) as threshold)
            select platform, threshold, observed_at as crossed_at, value, previous_at,
                   previous_value, previous_at is null as before_first, run_id
            from s join t on s.value >= t.threshold
            qualify row_number() over (partition by platform, threshold order by observed_at) = 1
            order by threshold, crossed_at, platform
            """,
            params=[*params, list(thresholds)],
        )

    def growth(
        self,
        tag: str,
        *,
        every: str = "hour",
        counter: str = "views",
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """How much a counter grew in each UTC hour or day, per platform.

        The growth of a bucket is its last value minus the last value of the previous bucket
        with observations (`buckets_spanned` > 1 means it also covers buckets without any);
        the first bucket counts from its own first observation.
        """
        if every not in GROWTH_BUCKETS:
            raise ValueError(f"every must be one of {', '.join(GROWTH_BUCKETS)}, got {every!r}")
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r} (known: {', '.join(COUNTERS)})")
        where, params = self._where(tag, platforms, since, until)
        width = GROWTH_BUCKETS[every]
        return self.con.sql(
            f"""
            with b as (
                select platform, time_bucket(interval '{width}', observed_at) as bucket,
                       arg_min({counter}, observed_at) as first_value,
                       arg_max({counter}, observed_at) as last_value,
                       count(*) as observations
                from snapshots where {where} and {counter} is not null group by all),
            g as (
                select *, lag(last_value) over w as previous_value,
                       lag(bucket) over w as previous_bucket
                from b window w as (partition by platform order by bucket))
            select platform, bucket, last_value - coalesce(previous_value, first_value) as growth,
                   last_value, observations,
                   coalesce(cast(round(epoch(bucket - previous_bucket)
                       / epoch(interval '{width}')) as bigint), 1) as buckets_spanned
            from g order by platform, bucket
            """,
            params=params,
        )

    def activity(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """Posts and participants per day from `activity`, the latest observation of each day."""
        since_day = since.date() if isinstance(since, datetime) else since
        until_day = until
        if isinstance(until, datetime):
            until_day = until.date()
            if until.time() != datetime.min.time():
                until_day += timedelta(days=1)  # the partial last day is kept
        where, params = self._where(tag, platforms, since_day, until_day, time_column="day")
        return self.con.sql(
            f"select platform, day, posts, participants, coverage, source, observed_at"
            f" from activity where {where}"
            f" qualify row_number() over (partition by platform, day order by observed_at desc) = 1"
            f" order by platform, day",
            params=params,
        )

    def sampled_posts_per_day(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """Distinct posts seen under a tag per UTC day of publication: a lower bound only."""
        where, params = self._where(tag, platforms, since, until, time_column="created_at")
        return self.con.sql(
            f"select platform, cast(created_at as date) as day, count(distinct post_id) as posts"
            f" from posts where {where} and created_at is not null group by all"
            f" order by platform, day",
            params=params,
        )

    def languages(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """Posts per platform, UTC day first seen and detected language ('unknown' when none was
        detected), each post counted once, with its share of that day's posts."""
        where, params = self._where(tag, platforms, since, until)
        return self.con.sql(
            "with first_seen as (select platform, post_id, observed_at, lang from posts"
            f" where {where} qualify row_number() over"
            " (partition by platform, post_id order by observed_at) = 1)"
            " select platform, day, lang, posts,"
            " posts / sum(posts) over (partition by platform, day) as share"
            " from (select platform, cast(observed_at as date) as day,"
            " coalesce(lang, 'unknown') as lang, count(*) as posts from first_seen group by all)"
            " order by platform, day, posts desc, lang",
            params=params,
        )

    def co_tags(
        self,
        tag: str,
        *,
        limit: int = 10,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """The tags most often carried by the posts seen under a tag, per platform."""
        where, params = self._where(tag, platforms, since, until)
        return self.con.sql(
            "select platform, co_tag, posts from (select platform, co_tag,"
            " count(distinct post_id) as posts from (select platform, post_id,"
            f" unnest(hashtags) as co_tag from posts where {where}) where co_tag <> ?"
            " group by platform, co_tag) qualify row_number() over"
            " (partition by platform order by posts desc, co_tag) <= ?"
            " order by platform, posts desc, co_tag",
            params=[*params, fold_tag(tag), limit],
        )

    def quality(
        self,
        tag: str,
        *,
        platforms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Quality:
        """Gaps in the series, failed observations, unhealthy runs and rejects for a tag."""
        return tag_quality(self, tag, platforms=platforms, since=since, until=until)

    def _dicts(self, query: str, params: list[Any]) -> list[dict[str, Any]]:
        table: pa.Table = self.con.sql(query, params=params).to_arrow_table()  # duckdb: Any
        return table.to_pylist()


def open_archive(
    root: str | os.PathLike[str], con: duckdb.DuckDBPyConnection | None = None
) -> Archive:
    """Open an archive root for analysis (raises ArchiveNotFoundError when nothing is there)."""
    return Archive(root, con)
