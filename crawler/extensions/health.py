"""Health checks that compare a crawl with the history stored in the Parquet datasets.

Spidermon sees one run's stats; these read the output root itself, so they can say "views fell
by 97% since the last snapshot" or "this tag has not been stored for three runs". No Scrapy
imports: the crawl calls `check_run()` when it closes, and `tagarchive status` uses the same
readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from storage import open_dataset

if TYPE_CHECKING:
    import pyarrow.dataset as ds

STORED = "stored"
# a tag the run ended before requesting (interrupted, or at its time limit): no verdict on the
# platform, so the checks of failures leave it out
NOT_ATTEMPTED = "not_attempted"  # Outcome.NOT_ATTEMPTED, without importing the adapters
COUNTERS = ("views", "posts", "discussions", "participants")


@dataclass(frozen=True)
class HealthThresholds:
    """Where the checks draw the line: the config's [health], or TAGARCHIVE_HEALTH_* settings."""

    max_drop: float = 0.5  # flag a counter that fell by more than this fraction
    drop_min_previous: int = 100  # ... if the previous value was at least this (noise floor)
    stale_intervals: int = 3  # flag a tag not stored by this many runs in a row
    max_reject_rate: float = 0.1  # flag more rejected items than this fraction of all items
    max_error_rate: float = 0.5  # flag more failed tags than this fraction of requested tags
    lookback_days: int = 14  # how far back the history is read
    enabled: bool = True

    @classmethod
    def from_settings(cls, get: Callable[[str], Any]) -> HealthThresholds:
        """Read `TAGARCHIVE_HEALTH_<FIELD>` values (strings from `-s` are converted)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = get(setting_name(f.name))
            if raw is None or raw == "":
                continue
            if f.type == "bool":
                values[f.name] = str(raw).strip().lower() in ("1", "true", "yes", "on")
            elif f.type == "int":
                values[f.name] = int(raw)
            else:
                values[f.name] = float(raw)
        return cls(**values)

    def as_settings(self) -> dict[str, str]:
        """The `-s NAME=VALUE` pairs that carry these thresholds into a crawl process."""
        return {setting_name(k): str(v) for k, v in asdict(self).items()}


def setting_name(field_name: str) -> str:
    """The Scrapy setting carrying one threshold: max_drop -> TAGARCHIVE_HEALTH_MAX_DROP."""
    return "TAGARCHIVE_HEALTH_" + field_name.upper()


@dataclass(frozen=True)
class Finding:
    """One thing a health check flagged; stored in `runs.findings`."""

    check: str  # counter_drop | stale | reject_rate | error_rate | platform_failed
    platform: str | None
    tag: str | None
    detail: str

    def as_row(self) -> dict[str, str | None]:
        return asdict(self)

    def line(self) -> str:
        where = " ".join(p for p in (self.platform, self.tag) if p)
        return f"{where + ': ' if where else ''}{self.check}: {self.detail}"


@dataclass(frozen=True)
class TagOutcome:
    """How one requested (platform, tag) ended in the run being checked."""

    platform: str
    tag: str
    status: str


def check_run(root: str | Path, run_id: str, outcomes: Iterable[TagOutcome],
              counts: Mapping[str, int], thresholds: HealthThresholds, *,
              finished: bool = True, now: datetime | None = None) -> list[Finding]:
    """Every finding for one run whose rows are already written under `root`.

    `finished` is false for an interrupted run: its missing tags say nothing about the
    platforms, so only the stored values are compared.
    """
    now = now or datetime.now(UTC)
    outcomes = list(outcomes)
    since = _since(now, thresholds.lookback_days)
    platforms = sorted({o.platform for o in outcomes})
    findings = counter_drops(root, run_id, platforms, thresholds, since)
    if finished:
        findings += stale_tags(root, run_id, outcomes, thresholds, since)
        findings += failed_platforms(outcomes)
        findings += rates(outcomes, counts, thresholds)
    return findings


def _field(name: str) -> ds.Expression:
    """pyarrow.dataset's field, imported on first use: the module pulls in pandas and numpy
    (~34 MB and ~0.5 s), which a crawl needs only when it reads history, at its close."""
    import pyarrow.dataset as ds

    return ds.field(name)


def _since(now: datetime, days: int) -> str:
    return (now - timedelta(days=days)).strftime("%Y-%m-%d")


def _read(root: str | Path, dataset: str, columns: list[str],
          where: ds.Expression) -> list[dict[str, Any]]:
    # the date filter prunes whole partitions by path, so old days are never opened
    rows: list[dict[str, Any]] = open_dataset(root, dataset).to_table(
        columns=columns, filter=where).to_pylist()
    return rows


def counter_drops(root: str | Path, run_id: str, platforms: list[str],
                  thresholds: HealthThresholds, since: str) -> list[Finding]:
    """A counter of this run far below the same tag's previous snapshot (the row is kept)."""
    if not platforms:
        return []
    rows = _read(root, "snapshots", ["platform", "tag", "observed_at", "run_id", *COUNTERS],
                 (_field("date") >= since) & _field("platform").isin(platforms))
    rows.sort(key=lambda r: r["observed_at"])
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    findings = []
    for row in rows:
        key = (row["platform"], row["tag"])
        if row["run_id"] != run_id:
            previous[key] = row
            continue
        before = previous.get(key)
        if before is None:
            continue
        for counter in COUNTERS:
            old, new = before[counter], row[counter]
            if old is None or new is None or old < max(thresholds.drop_min_previous, 1):
                continue
            drop = (old - new) / old
            if drop > thresholds.max_drop:
                findings.append(Finding(
                    "counter_drop", row["platform"], row["tag"],
                    f"{counter} fell {drop:.0%} since the previous snapshot: {old:,} -> {new:,} "
                    f"(run {before['run_id']}); the new value is kept"))
    return findings


def stale_tags(root: str | Path, run_id: str, outcomes: list[TagOutcome],
               thresholds: HealthThresholds, since: str) -> list[Finding]:
    """Tags not stored by this run nor by the runs before it, `stale_intervals` runs in a row."""
    failed = {(o.platform, o.tag): o.status for o in outcomes if o.status != STORED}
    needed = thresholds.stale_intervals
    if not failed:
        return []
    history: dict[tuple[str, str], list[tuple[datetime, str]]] = {k: [] for k in failed}
    if needed > 1:
        rows = _read(root, "runs", ["run_id", "started_at", "outcomes"],
                     _field("date") >= since)
        for row in rows:
            if row["run_id"] == run_id:
                continue
            for outcome in row["outcomes"] or ():
                key = (outcome["platform"], outcome["tag"])
                if key in history:
                    history[key].append((row["started_at"], outcome["status"]))
    findings = []
    for key, status in failed.items():
        earlier = sorted(history[key], reverse=True)[: needed - 1]
        if len(earlier) < needed - 1 or any(s == STORED for _t, s in earlier):
            continue
        last_stored = max((t for t, s in history[key] if s == STORED), default=None)
        findings.append(Finding(
            "stale", key[0], key[1],
            f"not stored by the last {needed} runs (now: {status}); last stored: "
            f"{last_stored.isoformat() if last_stored else 'not within the lookback'}"))
    return findings


def failed_platforms(outcomes: list[TagOutcome]) -> list[Finding]:
    """A platform on which every requested tag failed: a layout change or a block, usually."""
    by_platform: dict[str, list[str]] = {}
    for o in outcomes:
        if o.status != NOT_ATTEMPTED:
            by_platform.setdefault(o.platform, []).append(o.status)
    findings = []
    for platform, statuses in sorted(by_platform.items()):
        if statuses and STORED not in statuses:
            kinds = ", ".join(f"{s} x{n}" for s, n in Counter(statuses).most_common())
            findings.append(Finding("platform_failed", platform, None,
                                    f"every tag failed ({len(statuses)}): {kinds}"))
    return findings


def rates(outcomes: list[TagOutcome], counts: Mapping[str, int],
          thresholds: HealthThresholds) -> list[Finding]:
    """Reject rate over stored + rejected items, and error rate over the tags attempted."""
    findings = []
    rejects = int(counts.get("rejects", 0))
    items = rejects + sum(int(counts.get(k, 0)) for k in ("snapshots", "posts", "activity"))
    if items and rejects / items > thresholds.max_reject_rate:
        findings.append(Finding(
            "reject_rate", None, None,
            f"{rejects} of {items} items rejected ({rejects / items:.0%}, "
            f"limit {thresholds.max_reject_rate:.0%})"))
    attempted = [o for o in outcomes if o.status != NOT_ATTEMPTED]
    failed = sum(o.status != STORED for o in attempted)
    if attempted and failed / len(attempted) > thresholds.max_error_rate:
        findings.append(Finding(
            "error_rate", None, None,
            f"{failed} of {len(attempted)} tags failed ({failed / len(attempted):.0%}, "
            f"limit {thresholds.max_error_rate:.0%})"))
    return findings


def newest_snapshots(root: str | Path, platforms: Iterable[str],
                     since: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest snapshot per (platform, tag) on these platforms: observed_at, tag_id, url."""
    platforms = sorted(set(platforms))
    if not platforms:
        return {}
    where = _field("platform").isin(platforms)
    if since is not None:
        where = where & (_field("date") >= since)
    table = open_dataset(root, "snapshots").to_table(
        columns=["platform", "tag", "tag_id", "url", "observed_at", "run_id"], filter=where)
    if not table.num_rows:
        return {}
    table = table.sort_by([("observed_at", "ascending")])
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in table.to_pylist():
        newest[(row["platform"], row["tag"])] = row
    return newest


def runs_table(root: str | Path, since: str | None = None,
               columns: list[str] | None = None) -> pa.Table:
    """Rows of `runs` (optionally from the day `since` on), older files' new columns as null."""
    where = _field("date") >= since if since is not None else None
    table: pa.Table = open_dataset(root, "runs").to_table(columns=columns, filter=where)
    return table
