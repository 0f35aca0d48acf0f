"""A small archive with known answers (gaps, an approximate value, a reject, an XSS tag)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import DatasetWriter, utc_day
from tests.crawl_helpers import run_cli

T0 = datetime(2025, 1, 14, tzinfo=UTC)
HOUR = timedelta(hours=1)
RUN_OK = "20250114T000000Z-aaaaaaaa"
RUN_FAILED = "20250114T120000Z-bbbbbbbb"
XSS_TAG = "<script>alert(1)</script>\"'&"
# tiktok "wall": hourly, then ten hours of silence; the silence is the one gap.
TIKTOK_WALL = [(0, 500_000), (1, 900_000), (2, 2_000_000), (3, 12_000_000), (13, 150_000_000)]
# xiaohongshu "wall": already above 100M when first seen, the first value parsed from "1.2亿".
XHS_WALL = [(0.5, 120_000_000, "1.2亿"), (2.5, 130_000_002, None)]


def snapshot(platform: str, tag: str, hours: float, views: int | None, *,
             text: str | None = None, discussions: int | None = None) -> dict[str, Any]:
    observed = T0 + hours * HOUR
    return {"platform": platform, "date": utc_day(observed), "tag": tag, "tag_display": tag,
            "observed_at": observed, "views": views, "views_text": text,
            "views_semantics": "rounded" if text is not None else "exact",
            "discussions": discussions,
            "source": "rendered_dom" if text else "api"}


# posts under "wall": (platform, post_id, hours after T0, lang, hashtags); post 3 is seen twice
# and counts once, on its first day; no created_at, so no sampled-posts chart comes of them
WALL_POSTS = [("tiktok", "1", 1, "en", ["wall", "rednote"]),
              ("tiktok", "2", 2, "zh", ["wall", "rednote", "小红书"]),
              ("tiktok", "3", 3, "en", ["wall", "tiktokrefugee"]),
              ("tiktok", "3", 30, "en", ["wall", "tiktokrefugee"]),
              ("tiktok", "4", 26, None, ["wall", "rednote"]),
              ("tiktok", "5", 27, "en", ["wall"]),
              ("xiaohongshu", "9", 1, "zh", ["wall", "美国"])]


def wall_post(platform: str, post_id: str, hours: float, lang: str | None,
              hashtags: list[str]) -> dict[str, Any]:
    observed = T0 + hours * HOUR
    return {"platform": platform, "date": utc_day(observed), "post_id": post_id, "tag": "wall",
            "observed_at": observed, "lang": lang, "hashtags": hashtags, "source": "api"}


def write_archive(root: Path) -> Path:
    """A two-platform archive with a gap, an approximate value, activity, a reject, a failed
    run, and a tag that is an XSS attempt."""
    with DatasetWriter(root, RUN_OK) as writer:
        for hours, views in TIKTOK_WALL:
            writer.add("snapshots", snapshot("tiktok", "wall", hours, views))
        for hours, views, text in XHS_WALL:
            writer.add("snapshots", snapshot("xiaohongshu", "wall", hours, views, text=text,
                                             discussions=views // 40))
        writer.add("snapshots", snapshot("tiktok", XSS_TAG, 1, 42))
        writer.add("snapshots", snapshot("tiktok", XSS_TAG, 2, 4_200))
        for day, posts, coverage, seen in ((date(2025, 1, 12), 10, "complete", 0),
                                           (date(2025, 1, 13), 100, "lower_bound", 0),
                                           (date(2025, 1, 13), 120, "lower_bound", 1)):
            writer.add("activity", {"platform": "tiktok", "date": day.isoformat(), "tag": "wall",
                                    "day": day, "posts": posts, "participants": posts // 2,
                                    "coverage": coverage, "source": "api",
                                    "observed_at": T0 + seen * HOUR})
        writer.add("rejects", {"date": "2025-01-14", "rejected_at": T0 + 2 * HOUR,
                               "platform": "tiktok", "item_type": "snapshot", "tag": "wall",
                               "reasons": ["views: negative (-5)"], "raw": "{}"})
        writer.add_many("posts", [wall_post(*p) for p in WALL_POSTS])
        writer.add("runs", run_row(RUN_OK, 0, "ok", "stored"))
    with DatasetWriter(root, RUN_FAILED) as writer:
        writer.add("runs", run_row(RUN_FAILED, 12, "failed", "not_found"))
    return root


def run_row(run_id: str, hours: float, verdict: str, status: str) -> dict[str, Any]:
    started = T0 + hours * HOUR
    return {"date": utc_day(started), "run_id": run_id, "command": "crawl", "argv": [],
            "platforms": ["tiktok"], "tags": ["wall"], "started_at": started,
            "finished_at": started + timedelta(seconds=30), "duration_s": 30.0,
            "snapshots": 1, "posts": 0, "activity": 0, "rejects": 0, "requests": 1,
            "rendered_requests": 0, "errors": 0 if verdict == "ok" else 2,
            "outcomes": [{"platform": "tiktok", "tag": "wall", "status": status,
                          "detail": "" if status == "stored" else "tag page says 404"}],
            "verdict": verdict, "exit_code": 0 if verdict == "ok" else 1}


# the demo command docs/analysis.md documents, run once a session for the tests that read it
DEMO_COMMAND = "tagarchive demo --out data"
_DEMO: list[Path] = []


def demo_workdir(factory: pytest.TempPathFactory) -> Path:
    """A directory whose data/ holds the output of the documented demo, made once a session."""
    if not _DEMO:
        workdir = factory.mktemp("demo")
        args = DEMO_COMMAND.split()[1:]
        args[args.index("data")] = str(workdir / "data")
        result = run_cli(*args, timeout=900)
        assert result.code == 0, result.stdout[-3000:] + result.stderr[-3000:]
        _DEMO.append(workdir)
    return _DEMO[0]
