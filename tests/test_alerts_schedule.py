"""Alerts through the real scheduler: the service fires a stand-in crawl every second, and its
post-run step sends what the Parquet the crawl left says.

The stand-in is run exactly as a crawl is (its own process, the scheduler's arguments). Fire n
publishes the n-th snapshot and runs file this test wrote beforehand (copies: importing pyarrow
in it would cost more than the one-second cadence), so the numbers a message carries are the
ones written here.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawler.services.scheduler import ScheduleService
from crawler.services.watchconfig import load_config
from storage import open_dataset, table_from_rows, utc_day
from tests.test_alerts import TAG, Receiver
from tests.wait_helpers import wait_until

STAND_IN = r'''
import json, os, shutil, sys
args = sys.argv[1:]
settings = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-s")
out, run_id = args[args.index("--out") + 1], settings["TAGARCHIVE_RUN_ID"]
plan = json.load(open(os.environ["STAND_IN_PLAN"]))
with open(plan["fired"], "a") as fired:
    fired.write(run_id + "\n")
n = len(open(plan["fired"]).read().split())
fire = plan["fires"][min(n, len(plan["fires"])) - 1]
for source, folder in fire:
    folder = os.path.join(out, folder)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, ".part-%s-0001.parquet.tmp" % run_id)
    shutil.copyfile(source, temp)
    os.replace(temp, os.path.join(folder, "part-%s-0001.parquet" % run_id))
'''

T0 = datetime(2025, 1, 14, 8, tzinfo=UTC)


def _template(folder: Path, dataset: str, row: dict[str, object]) -> tuple[str, str]:
    """A one-row file of `dataset` and the partition folder the stand-in publishes it in."""
    path = folder / f"{dataset}.parquet"
    pq.write_table(table_from_rows(dataset, [row]), path)
    at = row.get("observed_at") or row["started_at"]
    assert isinstance(at, datetime)
    part = f"platform={row.pop('platform')}/" if dataset == "snapshots" else ""
    return str(path), f"{dataset}/{part}date={utc_day(at)}"


def test_a_scheduled_watch_alerts_once_when_it_crosses_and_once_when_it_falls_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    views = [50, 150, 160, 90]  # below, crossing, still above, back below
    fires = []
    for n, value in enumerate(views):
        folder = tmp_path / f"fire{n}"
        folder.mkdir()
        at = T0 + timedelta(hours=n)
        snapshot = {"platform": "xiaohongshu", "tag": TAG, "observed_at": at, "views": value,
                    "views_semantics": "exact", "source": "api", "run_id": "stand-in"}
        run = {"run_id": "stand-in", "started_at": at, "verdict": "ok", "health": "healthy",
               "exit_code": 0, "watch": "refugees"}
        fires.append([_template(folder, "snapshots", snapshot), _template(folder, "runs", run)])
    fires.append([fires[-1][1]])  # later fires store a run and no snapshot: nothing changes
    plan = tmp_path / "plan.json"
    fired = tmp_path / "fired.txt"
    plan.write_text(json.dumps({"fired": str(fired), "fires": fires}))
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setenv("STAND_IN_PLAN", str(plan))

    receiver = Receiver()
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
state_dir = "state"
[service]
crawl_command = {json.dumps([sys.executable, "-S", str(script)])}
kill_grace = "0.5s"
stop_grace = "5s"
[watches.refugees]
platforms = ["xiaohongshu"]
tags = ["TikTok难民"]
every = "1s"

[[alert]]
name = "past-100"
when = "views >= 100"
targets = ["{receiver.url()}"]
''', encoding="utf-8")
    config = load_config(path)
    caplog.set_level(logging.DEBUG, logger="tagarchive.alerts")

    def evaluated() -> int:
        return sum(r.getMessage().startswith("alerts after run ") for r in caplog.records)

    service = ScheduleService(config, install_signals=False)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        assert service.started.wait(60), "the scheduler did not start"
        wait_until(lambda: evaluated() >= len(views) + 1, 120, "alerts after five fires")
    finally:
        service.stop()
        thread.join(60)
        receiver.close()
    assert not thread.is_alive()

    run_ids = fired.read_text().split()
    assert [body["type"] for _path, body in receiver.posts] == ["warning", "success"]
    assert "views 150; threshold >= 100" in receiver.posts[0][1]["message"]
    assert "views 90; threshold >= 100" in receiver.posts[1][1]["message"]
    rows = sorted(open_dataset(config.out, "alerts").to_table().to_pylist(),
                  key=lambda r: r["sent_at"])
    assert [(r["state"], r["value"], r["observed_at"], r["run_id"]) for r in rows] == [
        ("firing", 150, T0 + timedelta(hours=1), run_ids[1]),
        ("resolved", 90, T0 + timedelta(hours=3), run_ids[3])]


def test_run_now_checks_alerts_after_its_crawl(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`schedule run-now` runs the same post-run step as a scheduled fire."""
    from crawler.cli.main import main

    folder = tmp_path / "fire0"
    folder.mkdir()
    snapshot = {"platform": "xiaohongshu", "tag": TAG, "observed_at": T0, "views": 150,
                "views_semantics": "exact", "source": "api", "run_id": "stand-in"}
    run = {"run_id": "stand-in", "started_at": T0, "verdict": "ok", "health": "healthy",
           "exit_code": 0, "watch": "refugees"}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"fired": str(tmp_path / "fired.txt"), "fires": [
        [_template(folder, "snapshots", snapshot), _template(folder, "runs", run)]]}))
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setenv("STAND_IN_PLAN", str(plan))
    receiver = Receiver()
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
state_dir = "state"
[service]
crawl_command = {json.dumps([sys.executable, "-S", str(script)])}
[watches.refugees]
platforms = ["xiaohongshu"]
tags = ["TikTok难民"]
every = "1h"

[[alert]]
name = "past-100"
when = "views >= 100"
targets = ["{receiver.url()}"]
''', encoding="utf-8")
    try:
        main(["schedule", "run-now", "refugees", "--config", str(path)])
        wait_until(lambda: len(receiver.posts) >= 1, 60, "the alert of the run-now crawl")
    finally:
        receiver.close()
    assert "views 150; threshold >= 100" in receiver.posts[0][1]["message"]
