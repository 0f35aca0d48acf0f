"""Transport faults from the replica (replica/faults.py) against real crawls.

Each fault ends one of two ways: retried and stored with the replica's exact numbers, or the tag
is reported by name (one stderr line, its `runs.outcomes` status) with nothing stored for it.
Never a wrong number, never a partial file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from replica.server import ReplicaServer
from tests.crawl_helpers import assert_whole_files, crawl, outcomes, run_record, snapshots

# fast retries and a short download timeout, so a stalled server costs seconds, not minutes
FAST = ("-s", "TAGARCHIVE_BACKOFF_BASE=0.1", "-s", "DOWNLOAD_TIMEOUT=2")


def assert_exact(replica: ReplicaServer, rows: list[dict]) -> None:
    """Every stored snapshot carries the replica's ground truth, counter by counter."""
    for row in rows:
        truth = replica.world.topic(row["platform"], row["tag"])
        for counter in ("views", "posts", "discussions"):
            if row[counter] is not None and row.get(f"{counter}_semantics") == "exact":
                assert row[counter] == getattr(truth, counter), (row["tag"], counter)


def test_resets_stalls_and_5xx_bursts_are_retried_and_stored_exactly(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    world, faults = replica.world, replica.faults
    tags = ("resetmid", "stallfirst", "stallbody", "burst500", "burst502", "burst503", "slowok")
    for tag in tags:
        world.set_variant("tiktok", tag, "ssr")
    faults.add("reset", "/tiktok/tag/resetmid", times=2, fraction=0.4)
    faults.add("stall", "/tiktok/tag/stallfirst", times=1, fraction=0.0, seconds=600)
    faults.add("stall", "/tiktok/tag/stallbody", times=1, fraction=0.6, seconds=600)
    for status in (500, 502, 503):
        world.set_variant("tiktok", f"burst{status}", "server_error", times=3, status=status)
    faults.add("slow", "/tiktok/tag/slowok", times=0, seconds=1.0)  # slower than nothing
    faults.add("reset", "/x/topic/web/details/top", times=1, fraction=0.5)  # a JSON API
    started = time.monotonic()
    result = crawl(replica, tmp_path, "tiktok", *tags, extra=FAST)
    bili = crawl(replica, tmp_path, "bilibili", "resetjson", extra=FAST)
    elapsed = time.monotonic() - started

    assert result.code == 0, result.stderr[-3000:]
    assert bili.code == 0, bili.stderr[-3000:]
    assert (faults.fired["reset"], faults.fired["stall"]) == (3, 2)
    assert faults.fired["slow"] >= 1
    rows = snapshots(tmp_path)
    assert sorted(r["tag"] for r in rows) == sorted((*tags, "resetjson"))
    assert_exact(replica, rows)
    assert_whole_files(tmp_path)
    assert elapsed < 300  # the stalls were timed out (2 s), not waited out (600 s)


def test_faults_that_do_not_clear_are_named_and_store_nothing(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    world, faults = replica.world, replica.faults
    tags = ("alwaysreset", "alwaysstall", "cuthtml", "alwaysbusy", "goodtag")
    for tag in tags:
        world.set_variant("tiktok", tag, "ssr")
    faults.add("reset", "/tiktok/tag/alwaysreset", times=0)
    faults.add("stall", "/tiktok/tag/alwaysstall", times=0, fraction=0.3, seconds=30)
    faults.add("truncate", "/tiktok/tag/cuthtml", times=0, fraction=0.3)
    world.set_variant("tiktok", "alwaysbusy", "server_error", times=50, status=502)
    faults.add("truncate", "/x/topic/web/details/top", times=0, fraction=0.5)  # cut JSON

    result = crawl(replica, tmp_path, "tiktok", *tags, extra=FAST)
    bili = crawl(replica, tmp_path / "bili", "bilibili", "cutjson", extra=FAST)

    assert result.code == 1
    assert bili.code == 1
    got = outcomes(tmp_path)
    assert got[("tiktok", "goodtag")] == "stored"
    assert got[("tiktok", "alwaysreset")] == "error"
    assert got[("tiktok", "alwaysstall")] == "error"
    assert got[("tiktok", "cuthtml")] == "layout_changed"
    assert got[("tiktok", "alwaysbusy")] == "error"
    assert outcomes(tmp_path / "bili")[("bilibili", "cutjson")] == "layout_changed"
    assert "tagarchive: tiktok alwaysstall: error: DownloadTimeoutError: " in result.stderr
    assert ("tagarchive: tiktok alwaysreset: error: ResponseDataLossError: Indicates that "
            "Scrapy couldn't get a complete response\n") in result.stderr
    assert "tagarchive: tiktok alwaysbusy: error: HTTP 502 after retries" in result.stderr
    assert "tagarchive: tiktok cuthtml: layout_changed: " in result.stderr
    assert "tagarchive: bilibili cutjson: layout_changed: " in bili.stderr
    assert "Traceback" not in result.stderr + bili.stderr
    assert [r["tag"] for r in snapshots(tmp_path)] == ["goodtag"]
    assert_exact(replica, snapshots(tmp_path))
    assert not list((tmp_path / "bili").glob("snapshots/**/*.parquet"))
    assert run_record(tmp_path)["verdict"] == "failed"
    assert_whole_files(tmp_path)


def test_a_page_declaring_the_wrong_charset_is_rejected_not_stored_garbled(
    replica: ReplicaServer, tmp_path: Path
) -> None:
    world = replica.world
    world.set_variant("tiktok", "TikTok难民", "ssr")
    world.set_variant("tiktok", "asciionly", "ssr")
    replica.faults.add("charset", "/tiktok/tag/", times=0, charset="iso-8859-1")
    replica.faults.add("charset", "/weibo/", times=0, charset="gbk")

    result = crawl(replica, tmp_path, "tiktok,weibo", "TikTok难民", "asciionly", extra=FAST)

    assert result.code == 1, result.stderr[-2000:]
    got = outcomes(tmp_path)
    # the CJK display name arrives as mojibake: the snapshot is rejected with that reason
    assert got[("tiktok", "tiktok难民")] == "rejected"
    assert "mojibake" in result.stderr
    # Weibo's counter text cannot be read through GBK: named, not guessed
    assert got[("weibo", "tiktok难民")] == "layout_changed"
    assert got[("weibo", "asciionly")] == "layout_changed"
    # an ASCII page decodes the same under either charset: stored, exact
    rows = snapshots(tmp_path)
    assert [(r["platform"], r["tag"]) for r in rows] == [("tiktok", "asciionly")]
    assert_exact(replica, rows)
    rejects = pq.read_table(tmp_path / "rejects").to_pylist()
    assert any("mojibake" in " ".join(r["reasons"]) for r in rejects)


def test_faults_are_scheduled_checked_and_cleared_through_the_admin_api(
    replica: ReplicaServer,
) -> None:
    def admin(action: str, body: dict) -> tuple[int, dict]:
        status, _headers, payload = replica.dispatch(
            "POST", f"/__replica__/{action}", {}, json.dumps(body).encode())
        return status, json.loads(payload)

    status, answer = admin("fault", {"kind": "reset", "match": "/tiktok/tag/x", "times": 2})
    assert status == 200
    assert answer["faults"][0]["remaining"] == 2
    for bad, why in (({"kind": "explode", "match": "/x"}, "unknown fault"),
                     ({"kind": "stall", "match": "/x", "seconds": 9999}, "seconds"),
                     ({"kind": "truncate", "match": "/x", "fraction": 2}, "fraction"),
                     ({"kind": "charset", "match": "/x", "charset": "x\r\ny"}, "charset"),
                     ({"kind": "slow", "match": "/x", "delay": 1}, "unknown fault keys"),
                     ({"kind": "reset", "match": ""}, "non-empty match")):
        status, answer = admin("fault", bad)
        assert status == 400, (bad, answer)
        assert why in answer["error"], (bad, answer)
    # two uses, then the path is served clean; other paths never match
    assert replica.faults.take("/tiktok/tag/y") is None
    assert replica.faults.take("/tiktok/tag/x?lang=en") is not None
    assert replica.faults.take("/tiktok/tag/x") is not None
    assert replica.faults.take("/tiktok/tag/x") is None
    assert replica.faults.fired["reset"] == 2
    assert admin("clear", {}) == (200, {"ok": True})
    assert replica.faults.active() == []
