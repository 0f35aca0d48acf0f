"""Backfill end to end on Mastodon: exact daily counts, re-runs replace, Ctrl-C, kill -9 and
--resume lose and repeat nothing, platforms without a timeline are refused by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from crawler.cli.main import main
from crawler.platforms.base import Fetch
from crawler.platforms.timeline import TimelinePage, Window
from crawler.spiders.walks import Walk, WalkStore, stored_posts
from crawler.text.tags import TagRef
from replica.server import ReplicaServer
from storage import DatasetWriter
from tests.backfill_helpers import (
    SINCE,
    UNTIL,
    backfill,
    journal_pages,
    posts,
    start_backfill,
    stored_days,
    truth,
    wait_for_page,
    wait_until,
    walk_dir,
)
from tests.crawl_helpers import ROOT, run_cli

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
    assert after == before
    assert len(after) == 21


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
    wait_for_page(proc, walk_dir(out, "mastodon", TAG), 4)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    stopped = _state(out)
    assert 4 <= stopped["pages"] < 14
    assert not stopped["done"]
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
    assert nothing.code == 2
    assert "already finished" in nothing.stderr


# The state is committed twice a second (a page comes every ~0.1 s), so a kill can land with
# pages journaled, some of their rows written and the state behind both.
SLOW = ("--delay", "0.1", "-s", "TAGARCHIVE_FLUSH_SECONDS=0.5")


def _assert_stored_exactly_once(replica: ReplicaServer, out: Path) -> None:
    expected = truth(replica, "mastodon", TAG)
    total = sum(v[0] for v in expected.values())
    stored = [p["post_id"] for p in posts(out)]
    assert len(stored) == len(set(stored)), "a post was stored twice"
    assert len(stored) == total, f"{len(stored)} of {total} posts stored"
    days = stored_days(out)  # asserts one row per (platform, tag, day)
    assert sum(v[0] for v in days.values()) == total
    assert {d: v[:2] for d, v in days.items()} == expected
    assert {v[2] for v in days.values()} == {"complete"}


def test_kill_9_mid_walk_and_at_the_final_write_then_resume_stores_everything_once(
        replica: ReplicaServer, uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    directory = walk_dir(out, "mastodon", TAG)
    last = _state(uninterrupted)["pages"]
    first = start_backfill(replica, out, "mastodon", TAG, *SLOW)
    wait_for_page(first, directory, last // 2)
    first.kill()
    first.communicate(timeout=30)
    assert not _state(out).get("done")
    # killed during the final write: the window's activity rows are being written
    second = start_backfill(replica, out, "mastodon", TAG, *SLOW, "--resume")
    wait_for_page(second, directory, last)
    wait_until(second, (out / "activity").exists, "the activity rows")
    second.kill()
    second.communicate(timeout=30)

    third = backfill(replica, out, "mastodon", TAG, "--resume")
    assert third.code == 0, third.stderr
    assert "21/21 days complete" in third.stdout
    assert _state(out)["done"]
    assert _state(out)["pages"] == last
    compacted = run_cli("compact", "--out", str(out))
    assert compacted.code == 0, compacted.stderr
    _assert_stored_exactly_once(replica, out)


def test_resume_from_a_state_older_than_the_stored_rows_stores_nothing_twice(
        replica: ReplicaServer, uninterrupted: Path, tmp_path: Path) -> None:
    """A kill between writing rows and the state that vouches for them, made deterministic: the
    state and journal of mid-walk are put back after the walk finished."""
    out = tmp_path / "behind"
    directory = walk_dir(out, "mastodon", TAG)
    last = _state(uninterrupted)["pages"]
    proc = start_backfill(replica, out, "mastodon", TAG, *SLOW)
    deadline = time.monotonic() + 60
    while not 0 < _state(out).get("pages", 0) < last:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no state was committed mid-walk"
        time.sleep(0.002)
    old_state = (directory / "state.json").read_bytes()  # the state first: it names the journal
    old_journal = (directory / "journal.jsonl").read_bytes()
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (directory / "state.json").write_bytes(old_state)
    (directory / "journal.jsonl").write_bytes(old_journal)
    assert journal_pages(directory) < last

    again = backfill(replica, out, "mastodon", TAG, "--resume")
    assert again.code == 0, again.stderr
    assert _state(out)["done"]
    assert _state(out)["pages"] == last
    _assert_stored_exactly_once(replica, out)


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
    assert f"{platform} cannot be backfilled" in err
    assert reason in err
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


def test_the_state_vouches_only_for_flushed_pages_and_names_the_run_whose_rows_follow(
        tmp_path: Path) -> None:
    window = Window(date(2025, 1, 1), date(2025, 1, 3))
    first_run, second_run = "20250104T000000Z-00000001", "20250104T000100Z-00000002"
    store = WalkStore(tmp_path, "mastodon", "t", window)
    walk = Walk("mastodon", TagRef(name="t", id=None), window,
                next_fetch=Fetch(url="http://x/1", step="backfill"))
    store.start(walk, first_run)
    shown = [{"post_id": str(i), "created_at": datetime(2025, 1, 2, i, tzinfo=UTC),
              "author_id": f"a{i}"} for i in range(3)]
    _, entries = walk.accept(TimelinePage(posts=shown[:2],
                                          next_fetch=Fetch(url="http://x/2", step="backfill")))
    store.commit(walk.as_state(), store.journal(walk, entries))  # page 1: rows flushed
    _, entries = walk.accept(TimelinePage(posts=shown[2:]))
    store.journal(walk, entries)  # page 2, the last: journaled, its row written, then kill -9
    seen = datetime(2025, 1, 4, 0, 5, tzinfo=UTC)
    with DatasetWriter(tmp_path, first_run) as writer:
        writer.add_many("posts", [{**p, "platform": "mastodon", "date": "2025-01-04", "tag": "t",
                                   "source": "api", "observed_at": seen} for p in shown])
    assert not store.finished  # no state with `done` was written

    again = WalkStore(tmp_path, "mastodon", "t", window)
    resumed = again.resume()  # the unvouched page 2 is cut from the journal
    assert (resumed.pages, resumed.seen, again.previous_run) == (1, {"0", "1"}, first_run)
    assert resumed.next_fetch == Fetch(url="http://x/2", step="backfill")
    stored = stored_posts(str(tmp_path), "mastodon", first_run)
    assert sorted(e[0] for e in stored) == ["0", "1", "2"]
    again.adopt(resumed, second_run, stored)  # post 2 is on disk: counted now, from its row
    assert resumed.by_day == {date(2025, 1, 2): {"0", "1", "2"}}
    fresh, _ = resumed.accept(TimelinePage(posts=shown[2:]))  # page 2 fetched again
    assert fresh == []
    assert resumed.posts == 3
    assert resumed.done

    third = WalkStore(tmp_path, "mastodon", "t", window)  # the second run killed at once
    assert third.resume().seen == {"0", "1", "2"}
    assert third.previous_run == second_run
