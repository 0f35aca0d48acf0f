"""`tagarchive status`: last run, verdict, freshness per tag and next run, as a table and JSON."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from crawler.cli.main import main
from crawler.services.status import collect, render
from crawler.services.watchconfig import Config, load_config
from storage import DatasetWriter, duckdb_connect, open_dataset, table_from_rows, utc_day
from storage.schemas import RUNS_SCHEMA

NOW = datetime.now(UTC).replace(microsecond=0)
CONFIG = '''
out = "data"
state_dir = "state"
[watches.good]
platforms = ["tiktok"]
tags = ["a", "B"]
every = "1h"
[watches.bad]
platforms = ["tiktok"]
tags = ["c"]
every = "1h"
timeout = "10m"
[watches.new]
platforms = ["xhs"]
tags = ["d"]
cron = "0 * * * *"
enabled = false
'''


def snapshot(tag: str, age: timedelta) -> dict[str, Any]:
    at = NOW - age
    return {"platform": "tiktok", "date": utc_day(at), "tag": tag, "observed_at": at,
            "views": 1, "source": "api", "run_id": "seed"}


def run(run_id: str, watch: str, age: timedelta, verdict: str, **more: Any) -> dict[str, Any]:
    at = NOW - age
    return {"run_id": run_id, "date": utc_day(at), "started_at": at, "watch": watch,
            "verdict": verdict, "trigger": "schedule", **more}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "tagarchive.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    minutes = timedelta(minutes=1)
    with DatasetWriter(config.out, "seed") as writer:
        writer.add_many("snapshots", [snapshot("a", 10 * minutes), snapshot("b", 120 * minutes),
                                      snapshot("c", 300 * minutes)])
        writer.add_many("runs", [
            run("r-good", "good", 10 * minutes, "ok", health="healthy", rejects=0),
            run("r-skip", "good", 5 * minutes, "skipped", reason="still going"),
            run("r-bad-old", "bad", 300 * minutes, "ok", health="healthy"),
            run("r-bad", "bad", 60 * minutes, "failed", health="unhealthy", rejects=3,
                reason=None, findings=[{"check": "stale", "platform": "tiktok", "tag": "c",
                                        "detail": "not stored by the last 3 runs"}]),
        ])
    config.state_dir.mkdir()
    # the job store's table, as APScheduler's SQLAlchemyJobStore lays it out
    con = sqlite3.connect(config.state_dir / "jobs.sqlite")
    con.execute("create table apscheduler_jobs (id varchar(191) primary key, "
                "next_run_time float, job_state blob not null)")
    con.execute("insert into apscheduler_jobs values ('good', ?, x'00')",
                ((NOW + timedelta(minutes=50)).timestamp(),))
    con.execute("insert into apscheduler_jobs values ('bad', ?, x'00')",
                ((NOW - timedelta(minutes=3)).timestamp(),))
    con.commit()
    con.close()
    return config


def test_collect_says_what_each_watch_is_up_to(config: Config) -> None:
    status = collect(config, now=NOW)
    assert status.scheduler_pid is None
    good, bad, new = status.watches
    assert good.last_run["run_id"] == "r-good"
    assert good.skipped_since == 1
    assert [(t.tag, t.state) for t in good.tags] == [("a", "fresh"), ("b", "late")]
    assert good.healthy
    assert not good.fresh
    assert good.next_run == NOW + timedelta(minutes=50)
    assert bad.last_run["run_id"] == "r-bad"
    assert not bad.healthy
    assert [(t.tag, t.state, t.age_s) for t in bad.tags] == [("c", "stale", 300 * 60)]
    assert [(t.platform, t.state) for t in new.tags] == [("xiaohongshu", "never")]
    assert new.last_run is None
    assert new.next_run is None
    assert not new.enabled


def test_json_for_scripts_and_check_exit_code(config: Config,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json", "--config", str(config.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scheduler"] == {"running": False, "pid": None}
    watches = {w["name"]: w for w in data["watches"]}
    assert watches["good"]["healthy"] is True
    assert watches["good"]["fresh"] is False
    assert watches["bad"]["last_run"]["findings"][0]["check"] == "stale"
    assert watches["bad"]["last_run"]["rejects"] == 3
    assert watches["good"]["tags"][0]["newest"] == snapshot("a", timedelta(minutes=10))[
        "observed_at"].isoformat().replace("+00:00", "Z")
    assert main(["status", "--check", "--json", "--config", str(config.path)]) == 4


def test_the_table_names_every_watch_and_its_state(config: Config) -> None:
    console = Console(record=True, width=200, color_system=None)
    render(collect(config, now=NOW), console)
    text = console.export_text()
    for expected in ("scheduler not running", "r-good (schedule)", "+1 skipped since",
                     "ok · healthy", "failed · unhealthy", "stale tiktok c", "fresh  tiktok/a",
                     "late   tiktok/b", "stale  tiktok/c", "never  xiaohongshu/d", "disabled",
                     "overdue by 3m", "in 50m"):
        assert expected in text, expected


LONG_TAGS = ("tiktokrefugee", "TikTok难民", "averyveryverylonghashtagnamefor2025elections")


def test_the_view_fits_80_columns_and_never_folds_a_tag(tmp_path: Path) -> None:
    path = tmp_path / "tagarchive.toml"
    tags = ", ".join(json.dumps(t) for t in LONG_TAGS)
    path.write_text(f'out = "data"\nstate_dir = "state"\n[watches.a-watch-with-a-long-name]\n'
                    f'platforms = ["tiktok", "xiaohongshu", "bluesky"]\ntags = [{tags}]\n'
                    f'every = "1h"\n')
    config = load_config(path)
    console = Console(record=True, width=80, color_system=None)
    render(collect(config, now=NOW), console)
    lines = console.export_text().splitlines()
    assert max(console.measure(line).maximum for line in lines) <= 80
    text = "\n".join(lines)
    for platform in ("tiktok", "xiaohongshu", "bluesky"):
        for tag in LONG_TAGS:  # stored and shown case-folded (docs/data.md)
            assert f"{platform}/{tag.lower()}" in text, (platform, tag)


def test_runs_files_from_before_the_new_columns_still_read(tmp_path: Path) -> None:
    """Schema versioning: the columns added for scheduling read as null in older files."""
    old_fields = [f for f in RUNS_SCHEMA
                  if f.name not in ("watch", "trigger", "reason", "health", "findings")]
    new = table_from_rows("runs", [run("r-new", "w", timedelta(0), "ok")])
    old = table_from_rows("runs", [run("r-old", "w", timedelta(0), "ok")]).select(
        [f.name for f in old_fields]).cast(pa.schema(old_fields))
    folder = tmp_path / "runs" / f"date={utc_day(NOW)}"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "part-r-old-0001.parquet")
    pq.write_table(new, folder / "part-r-new-0001.parquet")
    rows = sorted(open_dataset(tmp_path, "runs").to_table().to_pylist(),
                  key=lambda r: r["run_id"])
    assert [(r["run_id"], r["watch"], r["findings"]) for r in rows] == [
        ("r-new", "w", None), ("r-old", None, None)]
    con = duckdb_connect(tmp_path)
    assert con.sql("select run_id from runs where watch is null").fetchall() == [("r-old",)]
