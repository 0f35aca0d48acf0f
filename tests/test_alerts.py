"""Alerts end to end without the scheduler: Parquet written here, evaluation, a json:// receiver.

The receiver is a stdlib HTTP server on 127.0.0.1 that records each POST before it answers, so
when a send returns its message is already recorded: no waiting is needed. Every expected
number is the one this module wrote into the Parquet.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crawler.services.alerts.service import evaluate
from crawler.services.watchconfig import load_config
from crawler.services.watchmodel import Config
from storage import DatasetWriter, new_run_id, open_dataset, utc_day

T0 = datetime(2025, 1, 13, 10, 0, tzinfo=UTC)
TAG = "tiktok难民"  # the watch's tag "TikTok难民" as snapshots name it


class Receiver:
    """A json:// target on loopback: every POST's path and JSON body, in order."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                posts.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    @property
    def target(self) -> str:
        """The target as the dataset stores it: scheme and host only."""
        return f"json://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


WATCH = '''
out = "data"
state_dir = "state"
[watches.refugees]
platforms = ["xiaohongshu", "tiktok"]
tags = ["TikTok难民"]
every = "1h"
'''


def write_config(tmp_path: Path, alerts: str, watches: str = WATCH) -> Config:
    path = tmp_path / "tagarchive.toml"
    path.write_text(watches + alerts, encoding="utf-8")
    return load_config(path)


def snapshot(root: Path | str, at: datetime, views: int | None, *, platform: str = "xiaohongshu",
             tag: str = TAG, semantics: str | None = "exact", text: str | None = None) -> None:
    row = {"platform": platform, "date": utc_day(at), "tag": tag, "observed_at": at,
           "views": views, "views_semantics": semantics, "views_text": text, "source": "api",
           "run_id": "crawl"}
    with DatasetWriter(root, new_run_id()) as writer:
        writer.add("snapshots", row)


def run_row(root: Path | str, run_id: str, at: datetime, verdict: str = "ok",
            health: str | None = "healthy", outcomes: list[dict[str, Any]] | None = None,
            findings: list[dict[str, Any]] | None = None, reason: str | None = None) -> None:
    row = {"run_id": run_id, "date": utc_day(at), "started_at": at, "finished_at": at,
           "verdict": verdict, "health": health, "outcomes": outcomes or [],
           "findings": findings or [], "watch": "refugees", "reason": reason}
    with DatasetWriter(root, run_id) as writer:
        writer.add("runs", row)


def alert_rows(root: Path | str) -> list[dict[str, Any]]:
    rows = open_dataset(root, "alerts").to_table().to_pylist()
    return sorted(rows, key=lambda r: r["sent_at"])


def test_a_threshold_fires_once_per_episode_and_once_on_recovery(
        tmp_path: Path, receiver: Receiver) -> None:
    alert = f'''
[[alert]]
name = "past-100m"
when = "views >= 100_000_000"
platforms = ["xiaohongshu"]
targets = ["{receiver.url()}"]
'''
    config = write_config(tmp_path, alert)
    assert config.watches["refugees"].tag_keys == [TAG]
    out = config.out
    # below, then past it (display text, rounded), still past it, corrected below, past again
    series = [(90_000_000, "exact", None), (120_000_000, "rounded", "1.2亿"),
              (125_000_000, "rounded", "1.25亿"), (95_000_000, "exact", None),
              (130_000_000, "rounded", "1.3亿")]
    states = []
    for hour, (views, semantics, text) in enumerate(series):
        snapshot(out, T0 + timedelta(hours=hour), views, semantics=semantics, text=text)
        config = load_config(config.path)  # a restarted service: nothing kept in memory
        states.append([r["state"] for r in evaluate(config, "refugees", f"run-{hour}", {})])
    assert states == [[], ["firing"], [], ["resolved"], ["firing"]]

    assert len(receiver.posts) == 3
    first, second, third = (body for _path, body in receiver.posts)
    assert "past-100m" in first["title"]
    assert "≈120,000,000 (rounded: 1.2亿)" in first["message"]
    assert "threshold >= 100,000,000" in first["message"]
    assert first["type"] == "warning"
    assert "resolved" in second["title"]
    assert "no longer holds" in second["message"]
    assert "95,000,000" in second["message"]
    assert second["type"] == "success"
    assert "≈130,000,000" in third["message"]

    rows = alert_rows(out)
    assert [(r["state"], r["value"], r["semantics"]) for r in rows] == [
        ("firing", 120_000_000, "rounded"), ("resolved", 95_000_000, "exact"),
        ("firing", 130_000_000, "rounded")]
    assert {(r["alert"], r["kind"], r["platform"], r["tag"], r["threshold"]) for r in rows} == {
        ("past-100m", "threshold", "xiaohongshu", TAG, 100_000_000.0)}
    assert [r["observed_at"] for r in rows] == [T0 + timedelta(hours=h) for h in (1, 3, 4)]
    assert [r["run_id"] for r in rows] == ["run-1", "run-3", "run-4"]
    for row in rows:
        assert row["targets"] == [receiver.target]
        assert row["deliveries"] == [{"target": receiver.target, "ok": True, "error": None}]


def test_tiktok_is_not_evaluated_when_the_alert_names_xiaohongshu(
        tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f'''
[[alert]]
name = "past-100m"
when = "views >= 100_000_000"
platforms = ["xiaohongshu"]
targets = ["{receiver.url()}"]
''')
    snapshot(config.out, T0, 500_000_000, platform="tiktok")
    assert evaluate(config, "refugees", "run-0", {}) == []
    assert receiver.posts == []


def test_an_unreachable_target_is_recorded_and_the_others_still_get_theirs(
        tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    dead = closed_port()
    config = write_config(tmp_path, f'''
[[alert]]
name = "first"
when = "views > 10"
targets = ["json://127.0.0.1:{dead}/hook", "{receiver.url('first')}"]

[[alert]]
name = "second"
when = "views > 20"
targets = ["{receiver.url('second')}"]
''')
    snapshot(config.out, T0, 1000)
    caplog.set_level(logging.INFO, logger="tagarchive.alerts")
    rows = evaluate(config, "refugees", "run-0", {})
    assert sorted((r["alert"], r["platform"]) for r in rows) == [
        ("first", "xiaohongshu"), ("second", "xiaohongshu")]
    assert sorted(path for path, _ in receiver.posts) == ["/first", "/second"]

    stored = {r["alert"]: r for r in alert_rows(config.out)}
    failed, took = stored["first"]["deliveries"]
    assert failed["target"] == f"json://127.0.0.1:{dead}"
    assert failed["ok"] is False
    assert "Connection refused" in failed["error"]
    assert took == {"target": receiver.target, "ok": True, "error": None}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"alert first: firing to json://127.0.0.1:{dead} failed:")


def test_growth_over_a_window_compares_with_the_snapshot_one_window_back(
        tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f'''
[[alert]]
name = "fast"
when = "views +50% in 24h"
platforms = ["xiaohongshu"]
targets = ["{receiver.url()}"]
''')
    values = {0: 1000, 12: 1200, 24: 1600, 36: 2000, 48: 2100}
    states = []
    for hour, views in values.items():
        snapshot(config.out, T0 + timedelta(hours=hour), views)
        states.append([r["state"] for r in evaluate(config, "refugees", f"r{hour}", {})])
    # hour 24: 1000 -> 1600; hour 36: 1200 -> 2000, still past +50%; hour 48: 1600 -> 2100
    assert states == [[], [], ["firing"], [], ["resolved"]]
    firing, resolved = alert_rows(config.out)
    assert (firing["baseline"], firing["value"]) == (1000, 1600)
    assert firing["baseline_at"] == T0
    assert firing["change"] == pytest.approx((1600 - 1000) / 1000)
    assert firing["threshold"] == pytest.approx(0.5)
    assert (resolved["baseline"], resolved["value"]) == (1600, 2100)
    assert resolved["change"] == pytest.approx((2100 - 1600) / 1600)
    assert "+60.0%" in receiver.posts[0][1]["message"]


def test_a_surge_is_scored_against_the_tags_own_recent_growth(
        tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f'''
[[alert]]
name = "surging"
when = "views surge"
platforms = ["xiaohongshu"]
history = 6
targets = ["{receiver.url()}"]
''')
    values = [1_000_000, 1_010_000, 1_022_120, 1_033_000, 1_042_000, 1_053_000, 1_064_000,
              1_300_000]
    for hour, views in enumerate(values):
        snapshot(config.out, T0 + timedelta(hours=hour), views)
    rows = evaluate(config, "refugees", "run-7", {})
    assert [r["state"] for r in rows] == ["firing"]
    # the expected score from the values written above, by the documented formula
    rates = [(b - a) / a for a, b in zip(values, values[1:], strict=False)]  # hourly
    latest, earlier = rates[-1], rates[:-1]
    centre = sorted(earlier)[len(earlier) // 2 - 1:len(earlier) // 2 + 1]
    median = sum(centre) / 2
    deviations = sorted(abs(r - median) for r in earlier)
    mad = (deviations[2] + deviations[3]) / 2
    expected = (latest - median) / max(1.4826 * mad, 0.01 * abs(median))
    assert rows[0]["score"] == pytest.approx(expected)
    assert rows[0]["change"] == pytest.approx(latest)
    assert (rows[0]["baseline"], rows[0]["value"]) == (1_064_000, 1_300_000)
    assert rows[0]["threshold"] == 3.5


def test_unhealthy_and_login_lost_come_from_the_runs_row(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    config = write_config(tmp_path, f'''
[[alert]]
name = "sick"
when = "unhealthy"
targets = ["{receiver.url('sick')}"]

[[alert]]
name = "signin"
when = "login lost"
targets = ["{receiver.url('signin')}"]
''')
    out = config.out
    stored = [{"platform": "xiaohongshu", "tag": TAG, "status": "stored", "detail": None},
              {"platform": "tiktok", "tag": TAG, "status": "stored", "detail": None}]
    walled = [{"platform": "xiaohongshu", "tag": TAG, "status": "login_wall",
               "detail": "the session was refused"}, stored[1]]
    drop = {"check": "counter_drop", "platform": "tiktok", "tag": TAG,
            "detail": "views fell 97% since the previous snapshot"}
    run_row(out, "r1", T0)
    run_row(out, "r2", T0 + timedelta(hours=1), "failed", "unhealthy", walled, [drop])
    run_row(out, "r3", T0 + timedelta(hours=2), "failed", "unhealthy", walled, [drop])
    run_row(out, "r4", T0 + timedelta(hours=3), "skipped", None, [])
    run_row(out, "r5", T0 + timedelta(hours=4), "ok", "healthy", stored)
    changes = []
    for run_id in ("r1", "r2", "r3", "r4", "r5"):
        rows = evaluate(config, "refugees", run_id, {})
        changes.append(sorted((r["alert"], r["state"], r["platform"] or r["watch"])
                              for r in rows))
    assert changes == [
        [],
        [("sick", "firing", "refugees"), ("signin", "firing", "xiaohongshu")],
        [], [],
        [("sick", "resolved", "refugees"), ("signin", "resolved", "xiaohongshu")]]
    sick = next(body for path, body in receiver.posts if path == "/sick")
    assert "views fell 97% since the previous snapshot" in sick["message"]
    signin = next(body for path, body in receiver.posts if path == "/signin")
    assert "the session was refused" in signin["message"]
    assert len(receiver.posts) == 4


def test_secrets_come_from_the_environment_and_never_reach_logs_or_parquet(
        tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    token, whole = "tok-5f3a9c1e77", "whole-82be3c55d1"
    config = write_config(tmp_path, f'''
[[alert]]
name = "past"
when = "views >= 100"
targets = ["json://127.0.0.1:{receiver.port}/hook/${{HOOK_TOKEN}}", "${{WHOLE_URL}}",
           "json://127.0.0.1:{receiver.port}/${{NOT_SET}}"]
''')
    environ = {"HOOK_TOKEN": token, "WHOLE_URL": f"json://127.0.0.1:{receiver.port}/w/{whole}"}
    snapshot(config.out, T0, 1000)
    caplog.set_level(logging.DEBUG)
    rows = evaluate(config, "refugees", "run-0", environ)
    assert sorted(path for path, _ in receiver.posts) == [f"/hook/{token}", f"/w/{whole}"]
    assert [d["ok"] for d in rows[0]["deliveries"]] == [True, True, False]
    assert rows[0]["deliveries"][2]["error"] == "${NOT_SET} is not set in the environment"
    assert rows[0]["targets"] == [receiver.target] * 3

    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "alert past firing" in logged  # the log was captured at all
    files = list((tmp_path / "data" / "alerts").rglob("*.parquet"))
    assert files
    stored = json.dumps(alert_rows(config.out), default=str, ensure_ascii=False)
    for secret in (token, whole):
        assert secret not in logged
        assert secret not in stored
        assert all(secret.encode() not in f.read_bytes() for f in files)
