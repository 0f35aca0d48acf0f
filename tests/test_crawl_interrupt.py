"""Ctrl-C on a long crawl: what was fetched is stored, the tags never requested are
`not_attempted` (one line in all), and only a tag requested without an answer is an error."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from crawler.extensions.health import NOT_ATTEMPTED, HealthThresholds, TagOutcome, check_run
from crawler.extensions.runrecord import NO_ANSWER, RunState, TagJob
from crawler.text.tags import parse_tag_arg
from replica.server import ReplicaServer
from replica.world import display_count
from tests.crawl_helpers import ROOT, run_record, snapshots

TAGS = [f"halt{i:03d}" for i in range(300)]
TAG_PAGE = ("weibo", "get_index")  # one request per Weibo tag, no browser


def test_ctrl_c_names_the_tags_never_requested_not_attempted(replica: ReplicaServer,
                                                             tmp_path: Path) -> None:
    # each answer 0.3 s late: 300 tags would take 20 s at 4 at once; the signal comes after 8
    replica.faults.add("slow", "/weibo/", times=0, seconds=0.3)
    before = replica.hits_snapshot().get(TAG_PAGE, 0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", "weibo", *TAGS, "--out", str(tmp_path),
         "--replica", replica.url, "--delay", "0", "--concurrency", "4"],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while replica.hits_snapshot().get(TAG_PAGE, 0) - before < 8:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the crawl never got going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    requested = replica.hits_snapshot().get(TAG_PAGE, 0) - before

    record = run_record(tmp_path)
    assert (record["verdict"], record["exit_code"]) == ("interrupted", 130)
    status = {o["tag"]: (o["status"], o["detail"]) for o in record["outcomes"]}
    assert set(status) == set(TAGS)
    stored = {t for t, (s, _d) in status.items() if s == "stored"}
    untouched = {t for t, (s, _d) in status.items() if s == NOT_ATTEMPTED}
    # a graceful stop completes the requests already sent, so every requested tag is stored
    assert len(stored) == requested
    assert stored | untouched == set(TAGS)
    assert 8 <= requested < len(TAGS) // 2, "the signal came too late to test anything"
    assert all(d == "" for t, (_s, d) in status.items() if t in untouched)

    rows = {r["tag"]: r for r in snapshots(tmp_path)}
    assert set(rows) == stored  # every stored tag once, nothing for the others
    for tag, row in rows.items():
        assert row["views_text"] == display_count(replica.world.topic("weibo", tag).views)

    lines = stderr.strip().splitlines()
    assert f"tagarchive: {len(untouched)} tags not attempted (interrupted)" in lines
    assert not [line for line in lines if "no answer" in line or "tagarchive: weibo" in line]
    assert "Traceback" not in stderr
    assert stdout == ""


def test_a_requested_tag_without_an_answer_is_still_an_error() -> None:
    run = RunState(out="unused", jobs=[TagJob("weibo", parse_tag_arg(t)) for t in "abc"])
    run.requested.add(("weibo", "a"))
    run.set_outcome("weibo", "b", "stored")
    run.close_reason = "shutdown"
    run.finish()
    assert run.outcomes == {("weibo", "a"): ("error", NO_ANSWER), ("weibo", "b"): ("stored", ""),
                            ("weibo", "c"): (NOT_ATTEMPTED, "")}
    assert run.not_attempted == 1
    assert run.exit_code == 130


def test_not_attempted_tags_are_no_verdict_on_the_platform(tmp_path: Path) -> None:
    """A run that hit its time limit: the tags it never reached raise no error-rate or
    platform-failed finding (nothing was stored, so there is no history to compare)."""
    outcomes = [TagOutcome("weibo", "a", "stored"), TagOutcome("bilibili", "b", "error"),
                TagOutcome("bilibili", "c", "stored"),
                *(TagOutcome("weibo", f"t{i}", NOT_ATTEMPTED) for i in range(10)),
                *(TagOutcome("douyin", f"d{i}", NOT_ATTEMPTED) for i in range(3))]
    findings = check_run(tmp_path, "r1", outcomes, {"snapshots": 2}, HealthThresholds(),
                         now=datetime.now(UTC))
    assert findings == []
    failing = [*outcomes, TagOutcome("weibo", "x", "error"), TagOutcome("weibo", "y", "error")]
    (finding,) = check_run(tmp_path, "r1", failing, {"snapshots": 2}, HealthThresholds())
    assert (finding.check, finding.detail) == ("error_rate", "3 of 5 tags failed (60%, limit 50%)")
