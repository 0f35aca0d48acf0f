"""The schedule service's state directory: its job store and its service lock, read from outside.

`tagarchive schedule list` and `tagarchive status` read the next run times here without
starting a scheduler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crawler.services.watchmodel import Config


def job_store_path(config: Config) -> Path:
    """APScheduler's SQLite job store: each watch's job, its cadence and its next run."""
    return config.state_dir / "jobs.sqlite"


def service_lock_path(config: Config) -> Path:
    """The lock one `schedule run` per state directory holds while it runs."""
    return config.state_dir / "service.lock"


def stored_next_runs(config: Config) -> dict[str, datetime]:
    """Next run time per watch as the job store has it, read without a scheduler."""
    import sqlite3

    path = job_store_path(config)
    if not path.is_file():
        return {}
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("select id, next_run_time from apscheduler_jobs").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return {}
    return {job_id: datetime.fromtimestamp(ts, UTC) for job_id, ts in rows if ts is not None}


