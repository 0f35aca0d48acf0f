"""Real crawls against the replica: one scheduled fire end to end, and two crawls sharing a root."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.services.watchconfig import load_config
from replica.server import ReplicaServer
from storage import open_dataset
from tests.crawl_helpers import ROOT
from tests.wait_helpers import StreamLines, reap, wait_until


def test_a_scheduled_fire_stopped_by_sigterm_lands_whole(
        replica: ReplicaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replica.world.set_variant("tiktok", "schedtag", "ssr")  # served without the browser
    replica.world.set_variant("tiktok", "schedtag", "rate_limited", times=1, retry_after=1)
    # the replica holds the first answer (the 429) until the test lets it go: the crawl is
    # certainly mid-way when the SIGTERM arrives, and goes on only once the service has it
    replica.faults.add("slow", "/tiktok/tag/schedtag", times=1, seconds=600)
    path = tmp_path / "tagarchive.toml"
    path.write_text(f'''
out = "data"
replica = "{replica.url}"
[politeness]
delay = 0
concurrency = 4
browser = false
[watches.live]
platforms = ["tiktok"]
tags = ["schedtag"]
every = "1h"
timeout = "2m"
''')
    config = load_config(path)
    service = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "schedule", "run", "--config", str(path),
         "--log-format", "json"], cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
    stderr = StreamLines(service.stderr)  # type: ignore[arg-type]
    try:
        # watched from the replica's side: taking the watch's lock to see whether the crawl
        # runs could make the scheduler's own fire find it busy and skip
        def held_or_over() -> bool:  # over: the service or its one fire ended without it
            return bool(replica.faults.fired["slow"] or service.poll() is not None
                        or stderr.matching(lambda line: '"message": "run ' in line))

        wait_until(held_or_over, 180, "the crawl's tag page request")
        assert replica.faults.fired["slow"], "\n".join(stderr.matching(bool))[-3000:]
        service.send_signal(signal.SIGTERM)  # the crawl is running: it may finish
        stopping = stderr.wait_for(lambda line: "stopping: no new fires" in line, 60,
                                   "the service to take the SIGTERM")
        assert "1 crawl(s) running" in stopping
        replica.faults.clear()  # the held answer goes out; the crawl finishes in the grace
        code = service.wait(timeout=120)
    finally:
        reap(service)
        stderr.close()
    err = stderr.text()
    assert code == 0, err[-3000:]

    runs = open_dataset(config.out, "runs").to_table().to_pylist()
    assert len(runs) == 1
    run = runs[0]
    assert (run["watch"], run["trigger"], run["verdict"], run["health"], run["exit_code"]) == (
        "live", "schedule", "ok", "healthy", 0)
    snapshots = open_dataset(config.out, "snapshots").to_table().to_pylist()
    assert [(s["tag"], s["run_id"]) for s in snapshots] == [("schedtag", run["run_id"])]
    assert snapshots[0]["views"] == replica.world.topic("tiktok", "schedtag").views
    # no temp files (the state directory, with the pseudonymisation key, is not one)
    assert not [p for p in config.out.rglob("*") if p.name.startswith(".")
                and p.relative_to(config.out).parts[0] != ".tagarchive"]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    summary = [line for line in lines if line.get("run_id") == run["run_id"]
               and line["logger"] == "tagarchive.schedule"]
    assert len(summary) == 1
    assert summary[0]["level"] == "INFO"
    assert summary[0]["message"].startswith(f"run {run['run_id']} watch=live")

    assert main(["status", "--json", "--check", "--config", str(path)]) == 0
    watch = json.loads(capsys.readouterr().out)["watches"][0]
    assert watch["fresh"]
    assert watch["healthy"]
    assert watch["next_run"] is not None


def test_two_overlapping_crawls_into_one_root_lose_nothing(replica: ReplicaServer,
                                                           tmp_path: Path) -> None:
    """What a crontab does when a crawl outlasts its interval: both must land whole."""
    for tag in ("overlapone", "overlaptwo"):  # started together, they run side by side
        replica.world.set_variant("tiktok", tag, "ssr")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", "tiktok", tag, "--out", str(tmp_path),
         "--replica", replica.url, "--delay", "0", "--no-browser"],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag in ("overlapone", "overlaptwo")]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for proc in procs:
            reap(proc)
    assert [p.returncode for p in procs] == [0, 0], results
    runs = open_dataset(tmp_path, "runs").to_table().to_pylist()
    assert len({r["run_id"] for r in runs}) == 2
    by_run = {r["run_id"]: r for r in runs}
    snapshots = open_dataset(tmp_path, "snapshots").to_table().to_pylist()
    assert sorted((s["tag"], by_run[s["run_id"]]["tags"]) for s in snapshots) == [
        ("overlapone", ["overlapone"]), ("overlaptwo", ["overlaptwo"])]
    posts = open_dataset(tmp_path, "posts").to_table().to_pylist()
    for run_id, run in by_run.items():
        assert sum(p["run_id"] == run_id for p in posts) == run["posts"] > 0
