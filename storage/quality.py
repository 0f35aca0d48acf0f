"""What a reader of a tag's numbers should know: gaps in its series, failed observations,
unhealthy runs and rejected items (Archive.quality, the report's notes)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.analysis import Archive

# An interval between two observations longer than this many times the usual (median) interval
# is reported as a gap: crawls are scheduled, so a long silence means missed observations.
GAP_FACTOR = 3.0
# Below this many intervals a median says nothing about the schedule.
GAP_MIN_INTERVALS = 3


@dataclass(frozen=True)
class Gap:
    """An interval between two observations of a tag much longer than the usual one."""

    platform: str
    after: datetime
    before: datetime
    usual: timedelta

    @property
    def length(self) -> timedelta:
        """How long nothing was observed."""
        return self.before - self.after


@dataclass(frozen=True)
class Quality:
    """What a reader of a tag's numbers should know: gaps, failed observations, rejects."""

    gaps: list[Gap]
    failed: list[dict[str, Any]]
    unhealthy_runs: list[dict[str, Any]]
    rejects: list[dict[str, Any]]


def tag_quality(
    archive: Archive,
    tag: str,
    *,
    platforms: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Quality:
    """Gaps in the series, failed observations, unhealthy runs and rejects for a tag."""
    platforms = list(platforms) if platforms is not None else None
    rows = (
        archive.series(tag, platforms=platforms, since=since, until=until)
        .select("platform, observed_at")
        .fetchall()
    )
    times: dict[str, list[datetime]] = {}
    for platform, observed_at in rows:
        times.setdefault(platform, []).append(observed_at)
    gaps = [gap for platform, moments in times.items() for gap in find_gaps(platform, moments)]

    from storage.analysis import fold_tag  # analysis imports this module

    folded = fold_tag(tag)
    run_where, run_params = ["true"], []
    if since is not None:
        run_where.append("started_at >= ?")
        run_params.append(since)
    if until is not None:
        run_where.append("started_at < ?")
        run_params.append(until)
    outcome_platform = "" if platforms is None else " and list_contains(?, o.platform)"
    failed = archive._dicts(
        f"""
        select run_id, started_at, verdict, o.platform as platform, o.status as status,
               o.detail as detail
        from (select run_id, started_at, verdict, unnest(outcomes) as o from runs
              where {' and '.join(run_where)})
        where o.tag = ? and o.status <> 'stored'{outcome_platform}
        order by started_at, platform
        """,
        [*run_params, folded, *([platforms] if platforms is not None else [])],
    )
    unhealthy = archive._dicts(
        f"""
        select run_id, started_at, verdict, exit_code, errors, rejects
        from runs where {' and '.join(run_where)}
          and (verdict is distinct from 'ok' or errors > 0)
          and (list_contains(tags, ?) or list_contains([o.tag for o in outcomes], ?))
        order by started_at
        """,
        [*run_params, folded, folded],
    )
    where, params = archive._where(tag, platforms, since, until, time_column="rejected_at")
    rejects = archive._dicts(
        f"select rejected_at, platform, item_type, reasons, run_id from rejects"
        f" where {where} order by rejected_at",
        params,
    )
    return Quality(gaps=gaps, failed=failed, unhealthy_runs=unhealthy, rejects=rejects)



def find_gaps(platform: str, moments: Sequence[datetime]) -> list[Gap]:
    """Intervals longer than GAP_FACTOR times the median interval between observations."""
    ordered = sorted(moments)
    intervals = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    if len(intervals) < GAP_MIN_INTERVALS:
        return []
    # median works on any ordered values that add and divide (timedelta too); typeshed says numbers
    usual = statistics.median(intervals)  # type: ignore[type-var]
    if usual <= timedelta(0):
        return []
    return [
        Gap(platform, a, b, usual)
        for a, b in zip(ordered, ordered[1:], strict=False)
        if (b - a) > usual * GAP_FACTOR
    ]
