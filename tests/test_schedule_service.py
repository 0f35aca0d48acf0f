"""The scheduler service with a stand-in crawl: cadence, overlap, crashes, catch-up, restarts.

The stand-in is a small script run exactly as the real crawl is (its own process, the same
arguments), told by a plan file how long to take and how to end. Cadences are one or two
seconds; downtime is simulated by moving the stored next-run time back, not by waiting.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from crawler.cli.main import main
from crawler.services.jobstore import job_store_path, stored_next_runs
from crawler.services.scheduler import ScheduleService
from crawler.services.watchconfig import Config, load_config
from storage import open_dataset, table_from_rows
from tests.crawl_helpers import ROOT
from tests.wait_helpers import StreamLines, reap, wait_until

FAKE_CRAWL = r'''
import json, os, shutil, signal, sys, time
from datetime import datetime, timezone
args = sys.argv[1:]
settings = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-s")
out = args[args.index("--out") + 1]
watch, run_id = settings["TAGARCHIVE_WATCH"], settings["TAGARCHIVE_RUN_ID"]
plan = json.load(open(os.environ["FAKE_PLAN"])).get(watch, {})
started = time.time()
stopped = []
signal.signal(signal.SIGTERM, signal.SIG_IGN if plan.get("ignore_term")
              else (lambda *_: stopped.append(1)))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"watch": watch, "run_id": run_id, "event": "start", "t": started,
                          "trigger": settings.get("TAGARCHIVE_TRIGGER")}) + "\n")
deadline = started + plan.get("sleep", 0)
release = plan.get("until")  # a file: the crawl goes on until the test creates it
while (time.time() < deadline or release and not os.path.exists(release)) and not stopped:
    time.sleep(0.02)
if plan.get("crash"):
    os.kill(os.getpid(), signal.SIGKILL)
if plan.get("say"):
    print(plan["say"], flush=True)
code = 130 if stopped else plan.get("exit", 0)
if plan.get("record", True):
    # a copy of a record the test wrote beforehand: importing pyarrow here would make each
    # stand-in crawl cost more than the one-second cadences under test
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    folder = os.path.join(out, "runs", "date=" + day)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, ".part-%s-0001.parquet.tmp" % run_id)
    verdict = "interrupted" if stopped else "ok"
    shutil.copyfile(os.path.join(os.environ["FAKE_TEMPLATES"], "%s-%s.parquet" % (watch, verdict)),
                    temp)
    os.replace(temp, os.path.join(folder, "part-%s-0001.parquet" % run_id))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"watch": watch, "run_id": run_id, "event": "end", "t": time.time()})
              + "\n")
sys.exit(code)
'''


@dataclass
class Fake:
    """The stand-in crawl: its plan per watch and the log of what it did."""

    script: Path
    plan_file: Path
    log_file: Path

    def plan(self, **plans: dict[str, Any]) -> None:
        self.plan_file.write_text(json.dumps(plans))

    def events(self, watch: str | None = None, event: str = "start") -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        rows = [json.loads(line) for line in self.log_file.read_text().splitlines()]
        return [r for r in rows if r["event"] == event and watch in (None, r["watch"])]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    script = tmp_path / "fake_crawl.py"
    script.write_text(FAKE_CRAWL)
    fake = Fake(script, tmp_path / "plan.json", tmp_path / "fake.log")
    fake.plan()
    monkeypatch.setenv("FAKE_TEMPLATES", str(tmp_path))
    monkeypatch.setenv("FAKE_PLAN", str(fake.plan_file))
    monkeypatch.setenv("FAKE_LOG", str(fake.log_file))
    return fake


def write_config(tmp_path: Path, fake: Fake, watches: str, **service: Any) -> Config:
    service = {"crawl_command": [sys.executable, "-S", str(fake.script)], "kill_grace": "0.5s",
               "stop_grace": "5s", "max_parallel": 3, **service}
    path = tmp_path / "tagarchive.toml"
    path.write_text('out = "data"\nstate_dir = "state"\n[service]\n'
                    + "".join(f"{k} = {json.dumps(v)}\n" for k, v in service.items())
                    + watches)
    config = load_config(path)
    for name in config.watches:  # the records the stand-in crawl will copy
        for verdict, code in (("ok", 0), ("interrupted", 130)):
            row = {"run_id": f"template-{name}", "started_at": datetime.now(UTC),
                   "verdict": verdict, "exit_code": code, "watch": name}
            pq.write_table(table_from_rows("runs", [row]), tmp_path / f"{name}-{verdict}.parquet")
    return config


def runs(config: Config) -> list[dict[str, Any]]:
    rows = open_dataset(config.out, "runs").to_table().to_pylist()
    return sorted(rows, key=lambda r: r["started_at"])



class Running:
    """A service in a thread, as `schedule run` would be, stopped on exit."""

    def __init__(self, config: Config) -> None:
        self.service = ScheduleService(config, install_signals=False)
        self.thread = threading.Thread(target=self.service.run, daemon=True)

    def __enter__(self) -> ScheduleService:
        self.thread.start()
        assert self.service.started.wait(60), "the scheduler did not start"
        return self.service

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the scheduler did not stop"


def move_next_run(config: Config, job_id: str, by: timedelta) -> None:
    """Simulated downtime: the stored next run moves back as if the scheduler had been away."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    store = SQLAlchemyJobStore(url=f"sqlite:///{job_store_path(config)}")
    store.start(BackgroundScheduler(), "default")
    job = store.lookup_job(job_id)
    job._modify(next_run_time=job.next_run_time - by)
    store.update_job(job)
    store.shutdown()


def test_fires_at_its_cadence(tmp_path: Path, fake: Fake,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tagarchive.schedule")
    config = write_config(tmp_path, fake, '[watches.w]\nplatforms = ["tiktok"]\n'
                                          'tags = ["a"]\nevery = "1s"\n')
    with Running(config):
        wait_until(lambda: len(fake.events("w")) >= 4)
    results = [r.fields for r in caplog.records if r.getMessage().startswith("run ")]
    # one result per due fire (run, or skipped if the machine was slow), one second apart
    times = [f["scheduled_at"] for f in results]
    assert len(times) >= 4
    assert {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)} == {1.0}
    started = [f for f in results if f["verdict"] != "skipped"]
    assert len(started) == len(fake.events("w"))
    assert {f["verdict"] for f in started} == {"ok"}
    assert {e["trigger"] for e in fake.events("w")} == {"schedule"}
    assert len(runs(config)) == len(results)  # and each has its row in `runs`


def test_a_slow_crawl_is_never_overlapped_and_skips_are_recorded(tmp_path: Path,
                                                                 fake: Fake) -> None:
    fake.plan(slow={"sleep": 1.3})
    config = write_config(tmp_path, fake, '[watches.slow]\nplatforms = ["tiktok"]\n'
                                          'tags = ["a"]\nevery = "1s"\n')
    with Running(config):
        wait_until(lambda: len(fake.events("slow", "end")) >= 2, timeout=60)
    spans = sorted(zip([e["t"] for e in fake.events("slow")],
                       [e["t"] for e in fake.events("slow", "end")], strict=False))
    for (_s1, end), (start, _e2) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans
    skipped = [r for r in runs(config) if r["verdict"] == "skipped"]
    assert skipped
    assert all("still going" in r["reason"] and r["command"] == "schedule" for r in skipped)


def test_crashes_hangs_and_errors_are_recorded_and_firing_goes_on(tmp_path: Path,
                                                                 fake: Fake) -> None:
    fake.plan(crashy={"crash": True, "say": "boom"},
              hangs={"sleep": 60, "ignore_term": True},
              envfail={"record": False, "exit": 3, "say": "tagarchive: error: no Chromium"})
    watches = "".join(f'[watches.{name}]\nplatforms = ["tiktok"]\ntags = ["a"]\n'
                      f'every = "{every}"\ntimeout = "{timeout}"\n'
                      for name, every, timeout in (("crashy", "1s", "30s"),
                                                   ("hangs", "1s", "1s"),
                                                   ("envfail", "1h", "30s")))
    config = write_config(tmp_path, fake, watches)

    def verdicts(watch: str) -> list[str]:
        return [r["verdict"] for r in runs(config) if r["watch"] == watch]

    with Running(config):
        wait_until(lambda: verdicts("crashy").count("crashed") >= 2
                 and "timeout" in verdicts("hangs") and verdicts("envfail"), timeout=60)
    rows = {r["watch"]: r for r in runs(config) if r["verdict"] != "skipped"}
    assert "killed by SIGKILL" in rows["crashy"]["reason"]
    assert rows["crashy"]["exit_code"] == -signal.SIGKILL
    assert "1s time limit" in rows["hangs"]["reason"]
    assert rows["envfail"]["verdict"] == "error"
    assert rows["envfail"]["reason"] == "exit 3: tagarchive: error: no Chromium"
    assert rows["envfail"]["exit_code"] == 3
    # the hung crawl was ended, and the next fire of that watch started a new one
    assert len(fake.events("hangs")) >= 2 or verdicts("hangs").count("skipped") >= 1


def test_restart_after_missed_fires_runs_exactly_one_catch_up(tmp_path: Path,
                                                               fake: Fake) -> None:
    config = write_config(tmp_path, fake, '[watches.w]\nplatforms = ["tiktok"]\n'
                                          'tags = ["a"]\nevery = "2s"\n')
    with Running(config):
        wait_until(lambda: fake.events("w"))
    before = len(fake.events("w"))
    move_next_run(config, "w", timedelta(seconds=20))  # ten fires came due while away
    with Running(config):
        # the catch-up, then the next regular fire: a second catch-up would have come between
        wait_until(lambda: any(e["trigger"] == "schedule" for e in fake.events("w")[before:]))
    after = fake.events("w")[before:]
    assert after[0]["trigger"] == "catch-up"  # at once, before the next regular fire
    assert [e["trigger"] for e in after].count("catch-up") == 1
    assert [e["trigger"] for e in after[1:]] == ["schedule"] * (len(after) - 1)
    assert len(runs(config)) == len(fake.events("w"))


def test_a_fire_later_than_the_grace_is_recorded_missed(tmp_path: Path, fake: Fake) -> None:
    config = write_config(tmp_path, fake, '[watches.w]\nplatforms = ["tiktok"]\n'
                                          'tags = ["a"]\nevery = "1h"\n',
                          misfire_grace="1s")
    with Running(config):
        wait_until(lambda: fake.events("w"))
    move_next_run(config, "w", timedelta(minutes=90))  # due 30 minutes ago
    with Running(config):
        missed = wait_until(lambda: [r for r in runs(config) if r["verdict"] == "missed"])
    assert len(fake.events("w")) == 1  # no crawl for the missed fire
    assert missed[0]["trigger"] == "catch-up"
    assert "beyond misfire_grace (1s)" in missed[0]["reason"]
    next_run = stored_next_runs(config)["w"]
    assert timedelta(minutes=25) < next_run - datetime.now(UTC) < timedelta(minutes=35)


def test_a_config_edit_is_picked_up_on_restart(tmp_path: Path, fake: Fake) -> None:
    def watch(name: str, every: str) -> str:
        return f'[watches.{name}]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "{every}"\n'

    config = write_config(tmp_path, fake, watch("kept", "1h") + watch("dropped", "1h"))
    with Running(config):
        wait_until(lambda: len(fake.events()) == 2)
    first_next = stored_next_runs(config)
    assert set(first_next) == {"kept", "dropped"}

    config = write_config(tmp_path, fake, watch("kept", "3h") + watch("added", "1h"))
    restarted = datetime.now(UTC)
    with Running(config):
        wait_until(lambda: fake.events("added"))
    stopped = datetime.now(UTC)
    next_runs = stored_next_runs(config)
    assert set(next_runs) == {"kept", "added"}
    # the new cadence, counted from the restart (a second either side for rounding)
    second, three_hours = timedelta(seconds=1), timedelta(hours=3)
    assert restarted + three_hours - second <= next_runs["kept"] <= stopped + three_hours + second
    assert len(fake.events("kept")) == 1  # a changed cadence does not fire at once


def test_sigterm_lets_crawls_finish_within_the_grace_then_ends_them(tmp_path: Path,
                                                                    fake: Fake) -> None:
    release = tmp_path / "quick.go"  # quick ends when the test says, after the SIGTERM
    fake.plan(quick={"until": str(release)}, slow={"sleep": 60},
              stubborn={"sleep": 60, "ignore_term": True})
    watches = "".join(f'[watches.{name}]\nplatforms = ["tiktok"]\ntags = ["a"]\n'
                      'every = "1h"\n' for name in ("quick", "slow", "stubborn"))
    config = write_config(tmp_path, fake, watches, stop_grace="2.5s")
    service = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "schedule", "run", "--config", str(config.path),
         "--log-format", "json"], cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
    err = StreamLines(service.stderr)  # type: ignore[arg-type]
    try:
        wait_until(lambda: len(fake.events()) == 3, 60, "three crawls started")
        signalled = time.time()
        service.send_signal(signal.SIGTERM)
        err.wait_for(lambda line: "stopping: no new fires" in line, 60,
                     "the service to take the SIGTERM")
        release.touch()  # running until now, and within the grace: quick is left to finish
        assert service.wait(timeout=60) == 0, err.text()
    finally:
        reap(service)
        err.close()
    rows = {r["watch"]: r for r in runs(config)}
    assert rows["quick"]["verdict"] == "ok"  # finished within the grace
    assert rows["slow"]["verdict"] == "interrupted"  # asked to stop: wrote its own record
    assert rows["stubborn"]["verdict"] == "interrupted"  # killed: the scheduler wrote it
    assert rows["stubborn"]["reason"] == "the scheduler stopped and ended the crawl"
    lines = [json.loads(line) for line in err.text().splitlines()]
    summary_lines = [line for line in lines if line["message"].startswith("run ")]
    summaries = {line["watch"]: line for line in summary_lines}
    assert sorted(summaries) == sorted(line["watch"] for line in summary_lines) == [
        "quick", "slow", "stubborn"]
    assert all(line["run_id"] in line["message"] for line in summary_lines)
    # ended by the service, not waited for: slow by its SIGTERM, once the grace was over;
    # stubborn by the SIGKILL that followed, before it could finish its 60 s
    assert summaries["quick"]["exit_code"] == 0
    assert summaries["slow"]["exit_code"] == 130
    [slow_end] = fake.events("slow", "end")
    assert slow_end["t"] >= signalled + 2.5
    assert summaries["stubborn"]["exit_code"] == -signal.SIGKILL
    assert not fake.events("stubborn", "end")
    assert not list(config.out.rglob("*.tmp"))


def test_a_second_scheduler_on_the_same_state_is_refused(
        tmp_path: Path, fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, fake, '[watches.w]\nplatforms = ["tiktok"]\n'
                                          'tags = ["a"]\nevery = "1h"\n')
    with Running(config):
        code = main(["schedule", "run", "--config", str(config.path)])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("tagarchive: error: another scheduler (pid ")
    assert len(err.strip().splitlines()) == 1


def test_run_now_crawls_one_watch_in_the_foreground(
        tmp_path: Path, fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.plan(broken={"record": False, "exit": 3, "say": "tagarchive: error: no Chromium"})
    config = write_config(tmp_path, fake, "".join(
        f'[watches.{name}]\nplatforms = ["tiktok"]\ntags = ["a"]\nevery = "1h"\n'
        for name in ("w", "broken")))
    assert main(["schedule", "run-now", "w", "--config", str(config.path)]) == 0
    assert [e["trigger"] for e in fake.events("w")] == ["run-now"]
    assert main(["schedule", "run-now", "broken", "--config", str(config.path)]) == 3
    assert capsys.readouterr().err.endswith(
        ": error: exit 3: tagarchive: error: no Chromium\n")
    assert [(r["watch"], r["verdict"]) for r in runs(config)] == [("w", "ok"),
                                                                  ("broken", "error")]
    assert main(["schedule", "run-now", "nope", "--config", str(config.path)]) == 2
    assert "no watch named 'nope' (known: w, broken)" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]
    assert not left, left
