"""Health checks against stored history: drops, stale tags, reject and error rates, dead sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.extensions.health import (
    HealthThresholds,
    TagOutcome,
    check_run,
    counter_drops,
    failed_platforms,
    rates,
    stale_tags,
)
from crawler.extensions.runrecord import EXIT_TAG_FAILED, EXIT_UNHEALTHY, RunState, TagJob
from crawler.platforms.base import Outcome
from crawler.text.tags import parse_tag_arg
from replica.server import ReplicaServer
from storage import DatasetWriter, open_dataset, utc_day
from tests.crawl_helpers import crawl

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SINCE = "2026-11-01"
LIMITS = HealthThresholds()


def snapshot(run_id: str, tag: str, at: datetime, **counters: int) -> dict[str, Any]:
    return {"platform": "tiktok", "date": utc_day(at), "tag": tag, "observed_at": at,
            "source": "embedded_json", "run_id": run_id, **counters}


def store(root: Path, dataset: str, rows: list[dict[str, Any]], run_id: str = "seed") -> None:
    with DatasetWriter(root, run_id) as writer:
        writer.add_many(dataset, rows)


def test_a_sharp_drop_is_flagged_and_the_value_kept(tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    store(tmp_path, "snapshots", [
        snapshot("r0", "a", NOW - 2 * hour, views=900_000, posts=5_000),
        snapshot("r1", "a", NOW - hour, views=1_000_000, posts=5_000),
        snapshot("r1", "small", NOW - hour, views=90, posts=50),
        snapshot("r2", "a", NOW, views=10_000, posts=4_000),  # -99% views, -20% posts
        snapshot("r2", "small", NOW, views=1, posts=50),  # below the noise floor
        snapshot("r2", "new", NOW, views=5),  # nothing to compare with
    ])
    findings = counter_drops(tmp_path, "r2", ["tiktok"], LIMITS, SINCE)
    assert [(f.check, f.tag) for f in findings] == [("counter_drop", "a")]
    assert findings[0].detail.startswith("views fell 99% since the previous snapshot: "
                                         "1,000,000 -> 10,000 (run r1)")
    kept = open_dataset(tmp_path, "snapshots").to_table().to_pylist()
    assert {r["views"] for r in kept if r["run_id"] == "r2"} == {10_000, 1, 5}
    assert counter_drops(tmp_path, "r2", ["tiktok"],
                         HealthThresholds(max_drop=0.995), SINCE) == []


def runs_row(run_id: str, at: datetime, status: str, tag: str = "x") -> dict[str, Any]:
    return {"run_id": run_id, "date": utc_day(at), "started_at": at, "verdict": "ok",
            "outcomes": [{"platform": "tiktok", "tag": tag, "status": status, "detail": ""}]}


def test_a_tag_not_stored_for_n_runs_is_stale(tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    store(tmp_path, "runs", [runs_row("r1", NOW - 3 * hour, "stored"),
                             runs_row("r2", NOW - 2 * hour, "blocked"),
                             runs_row("r3", NOW - hour, "captcha")])
    failing = [TagOutcome("tiktok", "x", "blocked")]
    findings = stale_tags(tmp_path, "r4", failing, LIMITS, SINCE)
    assert [(f.check, f.platform, f.tag) for f in findings] == [("stale", "tiktok", "x")]
    assert "not stored by the last 3 runs (now: blocked); last stored: 2026-11-23T09:00" \
        in findings[0].detail
    # one run fewer of history, or a longer allowance: not stale yet
    assert stale_tags(tmp_path, "r4", failing, HealthThresholds(stale_intervals=4), SINCE) == []
    assert stale_tags(tmp_path, "r4", [TagOutcome("tiktok", "x", "stored")], LIMITS,
                      SINCE) == []


def test_rates_and_a_platform_where_every_tag_failed() -> None:
    outcomes = [TagOutcome("tiktok", "a", "layout_changed"),
                TagOutcome("tiktok", "b", "layout_changed"),
                TagOutcome("xiaohongshu", "a", "stored")]
    assert [f.line() for f in failed_platforms(outcomes)] == [
        "tiktok: platform_failed: every tag failed (2): layout_changed x2"]
    found = rates(outcomes, {"snapshots": 1, "posts": 7, "rejects": 2}, LIMITS)
    assert [f.line() for f in found] == [
        "reject_rate: 2 of 10 items rejected (20%, limit 10%)",
        "error_rate: 2 of 3 tags failed (67%, limit 50%)",
    ]
    assert rates(outcomes, {"snapshots": 9, "rejects": 1},
                 HealthThresholds(max_error_rate=0.7)) == []


def test_an_interrupted_run_is_only_checked_for_drops(tmp_path: Path) -> None:
    outcomes = [TagOutcome("tiktok", "a", "error")]
    assert check_run(tmp_path, "r", outcomes, {}, LIMITS, finished=False, now=NOW) == []
    checks = {f.check for f in check_run(tmp_path, "r", outcomes, {}, LIMITS, now=NOW)}
    assert checks == {"platform_failed", "error_rate"}


def test_thresholds_travel_as_settings() -> None:
    limits = HealthThresholds(max_drop=0.25, stale_intervals=5, enabled=False)
    settings = limits.as_settings()
    assert settings["TAGARCHIVE_HEALTH_MAX_DROP"] == "0.25"
    assert HealthThresholds.from_settings(settings.get) == limits
    assert HealthThresholds.from_settings({}.get) == HealthThresholds()


def test_findings_set_the_verdict_columns_and_exit_code(tmp_path: Path) -> None:
    run = RunState(out=str(tmp_path), jobs=[TagJob("tiktok", parse_tag_arg("a"))])
    run.label_from({"TAGARCHIVE_RUN_ID": "20261123T120000Z-0badcafe",
                    "TAGARCHIVE_WATCH": "w", "TAGARCHIVE_TRIGGER": "schedule"})
    run.set_outcome("tiktok", "a", Outcome.STORED)
    run.health_checked = True
    record = run.record({}, NOW, "finished")
    assert (record["run_id"], record["watch"], record["trigger"]) == (
        "20261123T120000Z-0badcafe", "w", "schedule")
    assert (record["health"], record["exit_code"], run.exit_code) == ("healthy", 0, 0)
    run.findings = [{"check": "counter_drop", "platform": "tiktok", "tag": "a", "detail": "d"}]
    record = run.record({}, NOW, "finished")
    assert (record["verdict"], record["health"]) == ("ok", "unhealthy")
    assert record["exit_code"] == run.exit_code == EXIT_UNHEALTHY
    run.set_outcome("tiktok", "b", Outcome.BLOCKED)  # a failed tag says more than health
    assert run.exit_code == EXIT_TAG_FAILED
    assert run.record({}, NOW, "closespider_timeout")["verdict"] == "timeout"
    with pytest.raises(ValueError):
        run.label_from({"TAGARCHIVE_RUN_ID": "../x"})


def test_a_crawl_that_sees_a_sharp_drop_stores_it_and_exits_4(replica: ReplicaServer,
                                                              tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "healthdrop", "ssr")  # served without the browser
    truth = replica.world.topic("tiktok", "healthdrop")
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    store(tmp_path, "snapshots", [snapshot("earlier", "healthdrop", earlier,
                                           views=truth.views * 10)])
    result = crawl(replica, tmp_path, "tiktok", "healthdrop", extra=("--no-browser",))
    assert result.code == 4, result.stderr[-2000:]
    assert "health: tiktok healthdrop: counter_drop: views fell 90%" in result.stderr
    run = [r for r in open_dataset(tmp_path, "runs").to_table().to_pylist()][0]
    assert (run["verdict"], run["health"], run["exit_code"]) == ("ok", "unhealthy", 4)
    assert [f["check"] for f in run["findings"]] == ["counter_drop"]
    kept = [r for r in open_dataset(tmp_path, "snapshots").to_table().to_pylist()
            if r["run_id"] == run["run_id"]]
    assert [r["views"] for r in kept] == [truth.views]
