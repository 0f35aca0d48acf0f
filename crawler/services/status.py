"""`tagarchive status`: per watch, the last run, its verdict, how fresh each tag is, what is next.

Everything is read from the output root and the scheduler's job store, never from a running
process, so it works the same while the service runs, after it stopped, and for crontab users.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.extensions.health import newest_snapshots, runs_table
from crawler.services.jobstore import service_lock_path, stored_next_runs
from crawler.services.locks import lock_holder
from crawler.services.pauses import active
from crawler.services.watchmodel import Config, Watch
from crawler.services.watchvalues import format_duration

FRESH, LATE, STALE, NEVER = "fresh", "late", "stale", "never"
_RUN_COLUMNS = ["run_id", "started_at", "finished_at", "watch", "trigger", "verdict", "health",
                "exit_code", "reason", "snapshots", "rejects", "findings"]


@dataclass
class TagFreshness:
    """The newest snapshot of one (platform, tag) of a watch."""

    platform: str
    tag: str
    newest: datetime | None
    age_s: float | None
    state: str


@dataclass
class WatchStatus:
    """Everything `status` says about one watch."""

    name: str
    cadence: str
    enabled: bool
    next_run: datetime | None
    last_run: dict[str, Any] | None
    skipped_since: int  # skipped fires after the last run that did something
    tags: list[TagFreshness] = field(default_factory=list)
    # its platforms paused after a lost login, until the session is renewed
    # (crawler/services/pauses.py): platform, since, reason, and the line status prints
    paused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return bool(self.tags) and all(t.state == FRESH for t in self.tags)

    @property
    def healthy(self) -> bool:
        run = self.last_run
        return (run is not None and run["verdict"] == "ok"
                and run.get("health") in (None, "healthy"))


@dataclass
class Status:
    """The whole view: scheduler state and every watch."""

    config: str
    generated_at: datetime
    scheduler_pid: int | None
    watches: list[WatchStatus]
    # platforms whose breaker is open (cooling, or half-open): one line each; and a damaged
    # breaker state, in one line (crawler/downloader/breakerstate.py)
    backed_off: list[dict[str, Any]] = field(default_factory=list)
    breaker_problem: str | None = None


def freshness(age_s: float | None, watch: Watch, interval: float) -> str:
    """fresh: within one cadence (plus jitter and time limit, a run may be under way);
    stale: older than `stale_intervals` cadences; late: in between."""
    if age_s is None:
        return NEVER
    slack = watch.cadence.jitter + watch.timeout
    if age_s <= interval + slack:
        return FRESH
    if age_s > watch.health.stale_intervals * interval + slack:
        return STALE
    return LATE


def collect(config: Config, now: datetime | None = None) -> Status:
    """Read runs, snapshots and the job store into a Status."""
    now = now or datetime.now(UTC)
    watches = list(config.watches.values())
    days = max(w.health.lookback_days for w in watches)
    since = (now - timedelta(days=days)).strftime("%Y-%m-%d")
    runs = _runs_by_watch(config, since)
    platforms = {p for w in watches for p in w.platforms}
    newest = newest_snapshots(config.out, platforms, since)
    next_runs = stored_next_runs(config)
    everything: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    result = []
    pauses = active(config)
    for watch in watches:
        rows = runs.get(watch.name, [])
        if not rows:  # nothing in the window: look further back, once
            rows = _runs_by_watch(config, None).get(watch.name, [])
        done = [r for r in rows if r["verdict"] != "skipped"]
        last = done[-1] if done else None
        skipped = sum(1 for r in rows if r["verdict"] == "skipped"
                      and (last is None or r["started_at"] > last["started_at"]))
        interval = watch.cadence.interval(now)
        tags = []
        for platform in watch.platforms:
            for key in watch.tag_keys:
                row = _match(newest, platform, key)
                if row is None:  # nothing in the window: the whole history, once per platform
                    if platform not in everything:
                        everything[platform] = newest_snapshots(config.out, [platform])
                    row = _match(everything[platform], platform, key)
                seen = row["observed_at"] if row else None
                age = (now - seen).total_seconds() if seen else None
                tags.append(TagFreshness(platform, key, seen, age, freshness(age, watch, interval)))
        result.append(WatchStatus(
            name=watch.name, cadence=watch.cadence.describe(), enabled=watch.enabled,
            next_run=next_runs.get(watch.name) if watch.enabled else None, last_run=last,
            skipped_since=skipped, tags=tags,
            paused=[{"platform": p.platform, "since": p.since, "kind": p.kind,
                     "reason": p.reason, "line": p.line()}
                    for p in (pauses.get(x) for x in watch.platforms) if p is not None]))
    backed_off, problem = _backed_off(config, now)
    return Status(str(config.path), now, lock_holder(service_lock_path(config)), result,
                  backed_off, problem)


def _backed_off(config: Config, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
    """The platforms the crawls leave alone (or will probe next), from the breaker state."""
    from crawler.downloader.breakerstate import CLOSED, BreakerStore, describe, stamp
    from storage.backends import backend_for
    from storage.errors import StorageError

    try:
        entries, problem = BreakerStore(backend_for(config.out).state_root(config.out)).load()
    except (StorageError, OSError) as exc:
        return [], f"breaker state unavailable: {exc}"
    rows = [{"platform": e.platform, "phase": e.phase(now), "kind": e.kind,
             "until": stamp(e.until), "trips": e.trips, "detail": e.detail,
             "line": describe(e, now)}
            for _name, e in sorted(entries.items()) if e.phase(now) != CLOSED]
    return rows, problem


def _runs_by_watch(config: Config, since: str | None) -> dict[str, list[dict[str, Any]]]:
    table = runs_table(config.out, since, _RUN_COLUMNS)
    by_watch: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: r["started_at"]):
        if row["watch"]:
            by_watch.setdefault(row["watch"], []).append(row)
    return by_watch


def _match(newest: dict[tuple[str, str], dict[str, Any]], platform: str,
           key: str) -> dict[str, Any] | None:
    if not key.startswith("id:"):
        return newest.get((platform, key))
    wanted = key[3:]  # an id reference: the platform's tag id, or the id in the page URL
    rows = [r for (p, _t), r in newest.items()
            if p == platform and (r["tag_id"] == wanted or wanted in (r["url"] or ""))]
    return max(rows, key=lambda r: r["observed_at"]) if rows else None


# --- output ---------------------------------------------------------------------------------------


def as_json(status: Status) -> dict[str, Any]:
    """The status as plain JSON types, for scripts (`tagarchive status --json`)."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    watches = []
    for w in status.watches:
        item = asdict(w)
        item["fresh"], item["healthy"] = w.fresh, w.healthy
        watches.append(plain(item))
    return {
        "config": status.config,
        "generated_at": plain(status.generated_at),
        "scheduler": {"running": status.scheduler_pid is not None, "pid": status.scheduler_pid},
        "watches": watches,
        "backed_off": status.backed_off,
        "breaker_problem": status.breaker_problem,
    }


def ago(now: datetime, moment: datetime | None) -> str:
    """'5 min ago', 'in 50 min' or 'never': a moment relative to now (status, serve)."""
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return f"in {format_duration(-seconds)}"
    return f"{format_duration(seconds)} ago"


_STYLE = {FRESH: "green", LATE: "yellow", STALE: "red", NEVER: "red"}


def _verdict(w: WatchStatus) -> tuple[str, list[str]]:
    """A watch's verdict cell (styled, short) and the lines that explain it (findings, reason)."""
    run = w.last_run
    if run is None:
        return "—", []
    style = "green" if w.healthy else "red"
    verdict = f"[{style}]{run['verdict']}" + (f" · {run['health']}" if run.get("health") else "")
    notes = []
    for finding in run.get("findings") or ():
        where = " ".join(x for x in (finding["platform"], finding["tag"]) if x)
        notes.append(f"{finding['check']} {where}".rstrip())
    if run.get("reason") and run["verdict"] != "ok":
        notes.append(run["reason"][:120])
    return verdict + "[/]", notes


def _next_run(w: WatchStatus, now: datetime) -> str:
    if not w.enabled:
        return "disabled"
    if w.next_run is None:
        return "not scheduled"
    if w.next_run < now:
        return f"overdue by {format_duration((now - w.next_run).total_seconds())}"
    return ago(now, w.next_run)


def render(status: Status, console: Any) -> None:
    """One short table row per watch, then each watch's run id, notes and tags one per line,
    so the whole fits an 80-column terminal and no tag name is folded."""
    from rich.markup import escape
    from rich.table import Table

    running = (f"running (pid {status.scheduler_pid})" if status.scheduler_pid
               else "not running")
    console.print(f"scheduler {running}; config {escape(str(status.config))}", highlight=False)
    for row in status.backed_off:  # one line per platform the crawls leave alone
        console.print(f"[yellow]{escape(row['line'])}[/]", highlight=False, overflow="fold")
    if status.breaker_problem:
        console.print(f"[red]{escape(status.breaker_problem)}[/]", highlight=False,
                      overflow="fold")
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("watch", "cadence", "last run", "verdict", "rejects", "next run"):
        table.add_column(column, overflow="fold")
    now = status.generated_at
    details: list[str] = []
    for w in status.watches:
        run = w.last_run
        last = "never" if run is None else ago(now, run["started_at"])
        rejects = "—" if run is None or run.get("rejects") is None else str(run["rejects"])
        verdict, notes = _verdict(w)
        table.add_row(escape(w.name), escape(w.cadence), last, verdict, rejects,
                      _next_run(w, now))
        details.append(f"\n[bold]{escape(w.name)}[/]")
        if run is not None:
            skipped = f", +{w.skipped_since} skipped since" if w.skipped_since else ""
            details.append(f"  last run {escape(run['run_id'])} "
                           f"({escape(run['trigger'] or '-')}){skipped}")
        details.extend(f"  [red]{escape(note)}[/]" for note in notes)
        details.extend(f"  [red]{escape(p['line'])}[/]" for p in w.paused)
        details.extend(
            f"  [{_STYLE[t.state]}]{t.state:<6}[/] {escape(t.platform)}/{escape(t.tag)}"
            + (f" ({ago(now, t.newest)})" if t.newest else "")
            for t in w.tags)
    console.print(table)
    for line in details:
        console.print(line, highlight=False, overflow="fold")


# --- workers and queue (distributed mode, docs/distributed.md) ---------------------------------


def collect_queue(url: str, prefix: str) -> Any:
    """The queue depth and every worker Redis knows (crawler/spiders/jobqueue.py QueueStatus)."""
    from crawler.spiders.jobqueue import JobQueue

    return JobQueue.from_url(url, prefix).status()


def queue_json(queue: Any) -> dict[str, Any]:
    return {"redis": queue.url, "queue": queue.prefix, "queue_depth": queue.depth,
            "dead_entries": queue.dead, "workers": [asdict(w) for w in queue.workers]}


def render_queue(queue: Any, console: Any) -> None:
    """One row per worker: where it runs, its last heartbeat, jobs done and held."""
    from rich.table import Table

    console.print(f"queue {queue.prefix}:jobs on {queue.url}: {queue.depth} waiting"
                  + (f", {queue.dead} bad entries in {queue.prefix}:dead" if queue.dead else ""),
                  highlight=False)
    table = Table()
    for column in ("worker", "state", "host", "pid", "last heartbeat", "jobs done",
                   "in flight"):
        table.add_column(column, overflow="fold")
    now = datetime.now(UTC)
    for w in queue.workers:
        beat = datetime.fromisoformat(w.last_beat) if w.last_beat else None
        style = {"running": "green", "gone": "red"}.get(w.state or "", "")
        state = f"[{style}]{w.state}[/]" if style else str(w.state)
        table.add_row(w.worker, state, w.host or "-", str(w.pid or "-"), ago(now, beat),
                      str(w.jobs_done), str(w.in_flight))
    console.print(table)
