"""Backfill end to end on Mastodon: exact daily counts, re-runs replace, Ctrl-C and --resume
lose and repeat nothing, platforms without a timeline are refused by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.cli import main
from replica.server import ReplicaServer
from tests.backfill_helpers import SINCE, UNTIL, backfill, posts, stored_days, truth
from tests.conftest import ROOT, run_cli

TAG = "rust"  # about 550 posts over the three weeks: 14 pages of 40


@pytest.fixture(scope="module")
def uninterrupted(replica_server: ReplicaServer, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Path]:
    """One complete, uninterrupted backfill that the other tests compare with."""
    out = tmp_path_factory.mktemp("mastodon-full")
    result = backfill(replica_server, out, "mastodon", TAG)
    assert result.code == 0, result.stderr
    assert "21/21 days complete" in result.stdout
    yield out


def test_daily_counts_equal_the_replica_ground_truth(replica: ReplicaServer,
                                                     uninterrupted: Path) -> None:
    days = stored_days(uninterrupted)
    expected = truth(replica, "mastodon", TAG)
    assert {d: v[:2] for d, v in days.items()} == expected
    assert {v[2] for v in days.values()} == {"complete"}
    assert sum(v[0] for v in expected.values()) > 400  # a walk of many pages, not one
    stored = posts(uninterrupted)
    assert len(stored) == len({p["post_id"] for p in stored}) == sum(
        v[0] for v in expected.values())
    # every post row points at the raw page it was read from
    assert all(p["archive_file"] and p["archive_record"] for p in stored)
    assert {p["tag"] for p in stored} == {TAG}


def test_running_the_window_again_replaces_its_activity_rows(replica: ReplicaServer,
                                                             uninterrupted: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(uninterrupted, out)
    before = stored_days(out)
    result = backfill(replica, out, "mastodon", TAG)
    assert result.code == 0, result.stderr
    after = stored_days(out)  # asserts one row per (platform, tag, day)
    assert after == before and len(after) == 21


def _state(out: Path) -> dict:
    path = (out / ".tagarchive" / "backfill" / "mastodon" / TAG
            / f"{SINCE.isoformat()}_{UNTIL.isoformat()}" / "state.json")
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def test_ctrl_c_then_resume_loses_and_repeats_nothing(replica: ReplicaServer,
                                                      uninterrupted: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    # slowed down so that the SIGINT lands mid-walk
    args = ["backfill", "mastodon", TAG, "--since", SINCE.isoformat(), "--until",
            UNTIL.isoformat(), "--out", str(out), "--replica", replica.url, "--delay", "0.3"]
    proc = subprocess.Popen([sys.executable, "-m", "crawler.cli", *args], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    deadline = time.monotonic() + 60
    while _state(out).get("pages", 0) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the walk never got going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    stopped = _state(out)
    assert 4 <= stopped["pages"] < 14 and not stopped["done"]
    assert stored_days(out) == {}  # no activity until the walk is complete

    again = run_cli(*args[:-2], "--delay", "0", "--resume")
    assert again.code == 0, again.stderr
    assert _state(out)["pages"] == 14  # every page exactly once, across both runs
    full = {p["post_id"] for p in posts(uninterrupted)}
    resumed = [p["post_id"] for p in posts(out)]
    assert len(resumed) == len(set(resumed)), "a post was stored twice"
    assert set(resumed) == full
    assert stored_days(out) == stored_days(uninterrupted)

    nothing = run_cli(*args[:-2], "--resume")
    assert nothing.code == 2 and "already finished" in nothing.stderr


@pytest.mark.parametrize(("platform", "reason"), [
    ("youtube", "relative 'x days ago' times"),
    ("instagram", "not implemented"),
])
def test_platform_without_a_usable_timeline_is_refused_by_name(
        platform: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backfill", platform, "cats", "--since", "2025-01-01", "--until", "2025-01-02",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{platform} cannot be backfilled" in err and reason in err
    assert len(err.strip().splitlines()) == 1


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--since", "2025-01-05", "--until", "2025-01-01"]
    assert main(["backfill", "mastodon", "rust", *window, "--out", str(tmp_path)]) == 2
    assert "is before --since" in capsys.readouterr().err
    window = ["--since", "2025-01-01", "--until", "2025-01-02"]
    assert main(["backfill", "mastodon", "rust", *window, "--out", str(tmp_path),
                 "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["backfill", "mastodon", "id:12", *window, "--out", str(tmp_path)]) == 2
    assert "addressed by name" in capsys.readouterr().err
