"""The schedule service's parts on their own: fire records, locks, the job store's reader."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.services.fires import SCHEDULE, find_record, join_notes, record_fire
from crawler.services.jobstore import stored_next_runs
from crawler.services.locks import LockBusy, file_lock, lock_holder
from crawler.services.watchconfig import Config, load_config


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "tagarchive.toml"
    path.write_text('''
out = "data"
[watches.hourly]
platforms = ["tiktok"]
tags = ["cats"]
every = "1h"
''')
    return load_config(path)


def test_join_notes_keeps_only_what_was_said() -> None:
    assert join_notes(None, "", None) is None
    assert join_notes("caught up", None, "ended at the 15m time limit") == (
        "caught up; ended at the 15m time limit")


def test_record_fire_stores_a_row_the_runner_finds_by_run_id(tmp_path: Path) -> None:
    config = _config(tmp_path)
    watch = config.watch("hourly")
    scheduled = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    result = record_fire(config, watch, SCHEDULE, "missed", "came late",
                         scheduled_at=scheduled)
    assert (result.watch, result.verdict, result.reason) == ("hourly", "missed", "came late")
    assert result.recorded_by == "scheduler"
    assert result.scheduled_at == scheduled
    row = find_record(config.out, result.run_id)
    assert row is not None
    assert (row["watch"], row["trigger"], row["verdict"], row["reason"]) == (
        "hourly", SCHEDULE, "missed", "came late")
    assert row["command"] == "schedule"
    assert row["argv"] == config.crawl_args(watch)
    assert find_record(config.out, "no-such-run") is None


def test_a_held_lock_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "hourly.lock"
    assert lock_holder(path) is None
    with file_lock(path):
        assert lock_holder(path) == os.getpid()
        with pytest.raises(LockBusy, match=f"^{os.getpid()}$"), file_lock(path):
            pass
    assert lock_holder(path) is None


def test_no_job_store_means_no_stored_runs(tmp_path: Path) -> None:
    assert stored_next_runs(_config(tmp_path)) == {}


def test_job_functions_keep_the_names_existing_job_stores_hold() -> None:
    # a job store written before the scheduler was split names these; a moved function would
    # make APScheduler drop the stored job, and with it the watch's next run time
    from apscheduler.util import obj_to_ref, ref_to_obj

    from crawler.services import scheduler

    for name in ("fire", "compact_now"):
        ref = f"crawler.services.scheduler:{name}"
        assert obj_to_ref(getattr(scheduler, name)) == ref
        assert ref_to_obj(ref) is getattr(scheduler, name)
