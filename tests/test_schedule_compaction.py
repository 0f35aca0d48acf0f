"""The scheduler's daily compaction (`[service] compact = "<cron>"`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from crawler.services.scheduler import COMPACT_JOB, ScheduleService, compact_now
from crawler.services.watchconfig import ConfigError, load_config
from storage import DatasetWriter

WATCH = '[watches.w]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n'


def config_file(tmp_path: Path, service: str) -> Path:
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'out = "data"\n{WATCH}[service]\n{service}\n')
    return path


def test_compact_cadence_is_validated(tmp_path: Path) -> None:
    assert load_config(config_file(tmp_path, 'compact = "30 3 * * *"')).service.compact
    with pytest.raises(ConfigError, match="service.compact"):
        load_config(config_file(tmp_path, 'compact = "every night"'))
    assert load_config(config_file(tmp_path, "")).service.compact == ""


def test_compaction_job_follows_the_config(tmp_path: Path) -> None:
    service = ScheduleService(load_config(config_file(tmp_path, 'compact = "30 3 * * *"')))
    scheduler = BackgroundScheduler(timezone=UTC)
    service._schedule_compaction(scheduler)
    job = scheduler.get_job(COMPACT_JOB)
    assert job is not None
    first = job.trigger.get_next_fire_time(None, datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert (first.hour, first.minute) == (3, 30)
    service.config = load_config(config_file(tmp_path, ""))
    service._schedule_compaction(scheduler)
    assert scheduler.get_job(COMPACT_JOB) is None


def test_compact_now_merges_past_days(tmp_path: Path) -> None:
    # the start of a past UTC day, so the three hourly rows stay on it whatever the time now
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    for run in range(3):
        with DatasetWriter(tmp_path, f"20260101T00000{run}Z-0000000{run}") as writer:
            writer.add("snapshots", {"platform": "tiktok", "date": day.strftime("%Y-%m-%d"),
                                     "tag": "a", "observed_at": day + timedelta(hours=run),
                                     "views": run, "source": "api",
                                     "run_id": f"20260101T00000{run}Z-0000000{run}"})
    partition = next(tmp_path.glob("snapshots/platform=tiktok/date=*"))
    assert len(list(partition.glob("*.parquet"))) == 3
    compact_now(str(tmp_path))
    assert len(list(partition.glob("*.parquet"))) == 1
