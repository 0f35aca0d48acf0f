"""How one fire ended, and the `runs` row the scheduler writes for a fire no crawl recorded.

Every fire ends with a row in `runs`: the crawl writes its own, and for the fires where it could
not (skipped, missed, timed out, crashed) the scheduler writes one with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from crawler.services.watchmodel import Config, Watch
from storage import DatasetWriter, StorageError, new_run_id, utc_day

logger = logging.getLogger("tagarchive.schedule")

SCHEDULE = "schedule"  # the watch's cadence came round
CATCH_UP = "catch-up"  # the one coalesced run for fires due while the scheduler was down
RUN_NOW = "run-now"  # `tagarchive schedule run-now`
CRON = "cron"  # a line of `tagarchive crontab`


@dataclass
class FireResult:
    """How one fire ended: what is logged, and what the scheduler stores if the crawl did not."""

    run_id: str
    watch: str
    trigger: str
    verdict: str
    exit_code: int | None = None
    health: str | None = None
    reason: str | None = None
    duration_s: float = 0.0
    snapshots: int | None = None
    rejects: int | None = None
    findings: int = 0
    recorded_by: str = "crawl"
    scheduled_at: datetime | None = None  # the fire time the scheduler meant (None: run-now)


def find_record(out: Path | str, run_id: str) -> dict[str, Any] | None:
    """The `runs` row a crawl wrote for `run_id`, found by its file name (unique per run)."""
    import pyarrow.parquet as pq

    from storage.backends import backend_for

    backend = backend_for(out)
    for path, _size in backend.list_files(out, "runs"):
        file = PurePosixPath(path.replace(os.sep, "/"))  # runs/date=<day>/part-<run_id>-<n>
        if not (file.parent.name.startswith("date=") and file.suffix == ".parquet"
                and file.name.startswith(f"part-{run_id}-")):
            continue
        with backend.open_input(out, path) as handle:
            rows = pq.read_table(handle).to_pylist()
        # the writer names a file after the run that wrote it: its row is this run's record
        return next((r for r in rows if r.get("run_id") == run_id), rows[0] if rows else None)
    return None


def record_fire(config: Config, watch: Watch, trigger: str, verdict: str, reason: str | None, *,
                argv: list[str] | None = None, run_id: str | None = None,
                started_at: datetime | None = None, exit_code: int | None = None,
                pid: int | None = None, duration_s: float = 0.0,
                scheduled_at: datetime | None = None, log: bool = False) -> FireResult:
    """Store a `runs` row for a fire no crawl recorded (and log it, if `log`)."""
    run_id = run_id or new_run_id()
    finished_at = datetime.now(UTC)
    started_at = started_at or finished_at
    row = {
        "run_id": run_id,
        "date": utc_day(started_at),
        "command": "schedule",
        "argv": argv if argv is not None else config.crawl_args(watch),
        "platforms": sorted(watch.platforms),
        "tags": sorted(watch.tag_keys),
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": duration_s,
        "verdict": verdict,
        "exit_code": exit_code,
        "host": socket.gethostname(),
        "pid": pid if pid is not None else os.getpid(),
        "version": _version(),
        "watch": watch.name,
        "trigger": trigger,
        "reason": reason,
    }
    result = FireResult(run_id=run_id, watch=watch.name, trigger=trigger, verdict=verdict,
                        exit_code=exit_code, reason=reason, duration_s=duration_s,
                        recorded_by="scheduler", scheduled_at=scheduled_at)
    try:
        with DatasetWriter(config.out, run_id, flush_rows=1) as writer:
            writer.add("runs", row)
    except StorageError as exc:
        logger.error("cannot store the record of run %s: %s", run_id, exc,
                     extra={"fields": {"run_id": run_id, "watch": watch.name}})
    if log:
        log_result(result)
    return result


def log_result(result: FireResult) -> None:
    """The one INFO line per run, with the run id; its fields go into JSON logs as keys."""
    parts = [f"run {result.run_id}", f"watch={result.watch}", f"trigger={result.trigger}",
             f"verdict={result.verdict}"]
    if result.health:
        parts.append(f"health={result.health}")
    if result.exit_code is not None:
        parts.append(f"exit={result.exit_code}")
    parts.append(f"duration={result.duration_s:.1f}s")
    if result.snapshots is not None:
        parts.append(f"snapshots={result.snapshots} rejects={result.rejects}")
    if result.reason:
        parts.append(f"reason={json.dumps(result.reason, ensure_ascii=False)}")
    logger.info(" ".join(parts), extra={"fields": asdict(result)})


def join_notes(*notes: str | None) -> str | None:
    """The non-empty notes as one reason, or None."""
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tagarchive")
    except PackageNotFoundError:
        return "0+unknown"
