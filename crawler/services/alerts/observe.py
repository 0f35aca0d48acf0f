"""What the Parquet says for each rule after one run of a watch: one Observation per subject.

Counters come from `snapshots` (the watch's platforms and tags, read back from the newest date
partition by the rules' lookback, so a replay on an old clock reads its own days); health and
sign-in from the run's own `runs` row. No wall clock decides anything here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from crawler.extensions.health import NOT_ATTEMPTED
from crawler.services.alerts.model import (
    COUNTER_KINDS,
    GROWTH,
    LOGIN_LOST,
    MIN_HISTORY,
    SURGE,
    THRESHOLD,
    UNHEALTHY,
    AlertRule,
    Observation,
)
from crawler.services.alerts.surge import score_series
from crawler.services.watchmodel import Watch

Row = dict[str, Any]
LOGIN_WALL = "login_wall"  # the outcome crawler/platforms/base.py names Outcome.LOGIN_WALL
NO_VERDICT = ("skipped", "missed", "interrupted")  # a fire that says nothing of health
_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_COMPARE = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b,
            "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}


def observe(rules: Iterable[AlertRule], watch: Watch, run: Row | None,
            root: str | Path) -> list[Observation]:
    """Every rule's observations for this watch, its run row being `run` (None: not found)."""
    rules = list(rules)
    counting = [r for r in rules if r.kind in COUNTER_KINDS]
    series = read_series(root, watch, counting) if counting else {}
    found: list[Observation] = []
    for rule in rules:
        if rule.kind in COUNTER_KINDS:
            for platform, tag in subjects(rule, watch):
                found.append(counter_observation(rule, watch, platform, tag,
                                                 series.get((platform, tag), [])))
        elif rule.kind == UNHEALTHY:
            found.append(health_observation(rule, watch, run))
        elif rule.kind == LOGIN_LOST:
            found.extend(login_observations(rule, watch, run))
    return found


def subjects(rule: AlertRule, watch: Watch) -> list[tuple[str, str]]:
    """The (platform, tag key) pairs of the watch the rule covers."""
    platforms = [p for p in watch.platforms if not rule.platforms or p in rule.platforms]
    tags = [t for t in watch.tag_keys if not rule.tags or t in rule.tags]
    return [(p, t) for p in platforms for t in tags]


def lookback_days(rule: AlertRule, watch: Watch) -> int:
    """How far back a rule needs snapshots: its lookback, and for a surge its history of
    intervals at the watch's cadence (twice over, for skipped fires)."""
    days = rule.lookback_days
    if rule.kind == SURGE:
        need = (rule.history + 2) * 2 * watch.cadence.interval() / 86400
        days = max(days, math.ceil(need))
    return days


def read_series(root: str | Path, watch: Watch,
                rules: list[AlertRule]) -> dict[tuple[str, str], list[Row]]:
    """Snapshots of the watch's (platform, tag key) pairs, oldest first."""
    import pyarrow.dataset as ds

    from storage import open_dataset

    platforms = sorted({p for r in rules for p, _t in subjects(r, watch)})
    newest = _newest_day(root, platforms)
    if newest is None:
        return {}
    days = max(lookback_days(r, watch) for r in rules)
    since = (newest - timedelta(days=days)).isoformat()
    counters = sorted({r.counter for r in rules if r.counter})
    columns = ["platform", "tag", "tag_id", "url", "observed_at", "window_start", "window_end",
               *counters, *(f"{c}_semantics" for c in counters), *(f"{c}_text" for c in counters)]
    where = ds.field("platform").isin(platforms) & (ds.field("date") >= since)
    table = open_dataset(root, "snapshots").to_table(columns=columns, filter=where)
    rows = sorted(table.to_pylist(), key=lambda r: r["observed_at"])
    series: dict[tuple[str, str], list[Row]] = {}
    for key in watch.tag_keys:
        for platform in platforms:
            series[(platform, key)] = [r for r in rows if r["platform"] == platform
                                       and _is_tag(r, key)]
    return series


def _is_tag(row: Row, key: str) -> bool:
    if not key.startswith("id:"):
        return bool(row["tag"] == key)
    wanted = key[3:]  # an id reference: the platform's tag id, or the id in the page URL
    return bool(row["tag_id"] == wanted or wanted in (row["url"] or ""))


def _newest_day(root: str | Path, platforms: list[str]) -> date | None:
    from storage.backends import backend_for

    backend = backend_for(root)
    days = []
    for platform in platforms:
        for path, _size in backend.list_files(root, "snapshots", f"platform={platform}"):
            match = _DAY.search(path.replace("\\", "/"))
            if match:
                days.append(match[1])
    return date.fromisoformat(max(days)) if days else None


# --- counters ---------------------------------------------------------------------------------


def counter_observation(rule: AlertRule, watch: Watch, platform: str, tag: str,
                        rows: list[Row]) -> Observation:
    """One (platform, tag)'s threshold, growth or surge, from its snapshots oldest first."""
    seen = Observation(rule, None, watch=watch.name, platform=platform, tag=tag)
    if not rows:
        return seen
    newest, counter = rows[-1], rule.counter or ""
    seen.observed_at, seen.value = newest["observed_at"], newest[counter]
    seen.semantics, seen.text = newest[f"{counter}_semantics"], newest[f"{counter}_text"]
    if seen.semantics == "window":
        seen.window = (newest["window_start"], newest["window_end"])
    if seen.value is None:  # capped, a glitch nulled, or not on this platform: no verdict
        return seen
    if rule.kind == THRESHOLD:
        seen.holds = threshold_holds(rule, seen.value, seen.semantics)
    elif rule.kind == GROWTH:
        _growth(rule, seen, rows)
    else:
        _surge(rule, seen, rows)
    return seen


def threshold_holds(rule: AlertRule, value: int, semantics: str | None) -> bool | None:
    """`value <op> threshold`. A lower bound proves only `>=`/`>` true and `<=`/`<` false;
    a rounded value is taken as it is (the message says ≈)."""
    assert rule.op is not None
    assert rule.threshold is not None
    holds = bool(_COMPARE[rule.op](value, rule.threshold))
    if semantics == "lower_bound" and holds != rule.op.startswith(">"):
        return None
    return holds


def _growth(rule: AlertRule, seen: Observation, rows: list[Row]) -> None:
    """The change since the newest snapshot at least one window older than the newest."""
    assert rule.window is not None
    assert rule.threshold is not None
    assert seen.observed_at is not None
    counter = rule.counter or ""
    start = seen.observed_at - timedelta(seconds=rule.window)
    before = [r for r in rows if r["observed_at"] <= start and r[counter] is not None]
    if not before:
        return
    base = before[-1]
    seen.baseline, seen.baseline_at = base[counter], base["observed_at"]
    seen.baseline_semantics = base[f"{counter}_semantics"]
    if seen.baseline is None or seen.baseline <= 0 or seen.value is None:
        return
    seen.change = (seen.value - seen.baseline) / seen.baseline
    if "lower_bound" in (seen.semantics, seen.baseline_semantics):
        return  # a change between bounds says nothing of the counter's
    if rule.threshold > 0:
        seen.holds = seen.change >= rule.threshold
    else:
        seen.holds = seen.change <= rule.threshold


def _surge(rule: AlertRule, seen: Observation, rows: list[Row]) -> None:
    """The newest interval's growth rate scored against the tag's earlier intervals."""
    assert rule.threshold is not None
    counter = rule.counter or ""
    if seen.semantics == "lower_bound":
        return
    usable = [r for r in rows if r[counter] is not None
              and r[f"{counter}_semantics"] != "lower_bound"]
    points: dict[Any, int] = {r["observed_at"]: r[counter] for r in usable}  # last per time
    series = sorted(points.items())
    scored = score_series(series, rule.history, MIN_HISTORY)
    if scored is None:
        return
    previous = next(r for r in reversed(usable) if r["observed_at"] == series[-2][0])
    seen.baseline, seen.baseline_at = previous[counter], previous["observed_at"]
    seen.baseline_semantics = previous[f"{counter}_semantics"]
    seen.change, seen.score = scored.rate, scored.score
    seen.detail = (f"median of the {scored.intervals} earlier intervals: "
                   f"{scored.median:+.2%} an hour")
    seen.holds = scored.score >= rule.threshold


# --- runs: health and sign-in -----------------------------------------------------------------


def health_observation(rule: AlertRule, watch: Watch, run: Row | None) -> Observation:
    """Unhealthy unless the run's verdict is ok and no health check flagged it (as `status`
    says); a skipped, missed or interrupted fire changes nothing."""
    seen = Observation(rule, None, watch=watch.name)
    if run is None or run.get("verdict") in NO_VERDICT:
        return seen
    seen.observed_at = run.get("finished_at") or run.get("started_at")
    findings = run.get("findings") or []
    seen.holds = not (run.get("verdict") == "ok" and run.get("health") != "unhealthy")
    seen.value = len(findings)
    lines = [f"verdict {run.get('verdict')}" + (f", {run['health']}" if run.get("health")
                                                 else "")]
    lines += [" ".join(x for x in (f.get("platform"), f.get("tag")) if x)
              + f": {f.get('check')}: {f.get('detail')}" for f in findings]
    if run.get("reason") and run.get("verdict") != "ok":
        lines.append(str(run["reason"]))
    seen.detail = "; ".join(lines)[:1000]
    return seen


def login_observations(rule: AlertRule, watch: Watch, run: Row | None) -> list[Observation]:
    """Per platform of the run: login lost while any of its tags ended `login_wall`; found
    again when the platform's tags ended otherwise. A platform the run did not reach: nothing."""
    if run is None:
        return []
    found = []
    for platform in watch.platforms:
        if rule.platforms and platform not in rule.platforms:
            continue
        ended = [o for o in run.get("outcomes") or [] if o.get("platform") == platform
                 and o.get("status") != NOT_ATTEMPTED]
        if not ended:
            continue
        walls = [o for o in ended if o.get("status") == LOGIN_WALL]
        detail = ", ".join(f"{o.get('tag')}" + (f" ({o['detail']})" if o.get("detail") else "")
                           for o in walls)
        found.append(Observation(
            rule, bool(walls), watch=watch.name, platform=platform, value=len(walls),
            baseline=len(ended), detail=f"login_wall: {detail}" if walls else None,
            observed_at=run.get("finished_at") or run.get("started_at")))
    return found
