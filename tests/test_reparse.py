"""`reparse`: today's parsers over the archive, offline, superseding the rows they replace."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.platforms.base import Captcha, TagResult
from crawler.platforms.tiktok import TikTok
from crawler.services.reparse import reparse
from replica.server import ReplicaServer
from replica.world import World
from storage import duckdb_connect
from storage.archive import ArchiveWriter
from storage.compact import compact
from tests.crawl_helpers import crawl, run_cli


class FixedTikTok(TikTok):
    """A 'parser fix': this version reads one more view than the old one did."""

    def handle(self, step: str, page: Any, tag: Any, state: dict[str, Any]) -> Any:
        result = super().handle(step, page, tag, state)
        if isinstance(result, TagResult) and result.snapshot.get("views") is not None:
            result.snapshot["views"] = int(result.snapshot["views"]) + 1
        return result


def rows(root: Path) -> list[tuple]:
    con = duckdb_connect(root)
    return con.execute("select platform, tag, observed_at, views, discussions, archive_record "
                       "from snapshots order by platform, tag").fetchall()


def test_reparse_updates_numbers_without_network(replica: ReplicaServer, tmp_path: Path) -> None:
    replica.world.set_variant("tiktok", "fixme", "ssr")
    result = crawl(replica, tmp_path, "tiktok,xiaohongshu", "fixme")
    assert result.code == 0, result.stderr[-2000:]
    before = rows(tmp_path)
    posts_before = duckdb_connect(tmp_path).execute("select count(*) from posts").fetchall()
    replica.reset_hits()

    # a closed port: reparse must never reach for the network
    report = reparse(tmp_path, adapters={"tiktok": FixedTikTok("http://127.0.0.1:9")})
    assert replica.hits_snapshot() == {}
    assert report.snapshots == 2
    assert report.rejects == 0

    after = rows(tmp_path)
    assert len(after) == len(before) == 2  # superseded, not added
    for old, new in zip(before, after, strict=True):
        assert old[:3] == new[:3]
        assert old[5] == new[5]
        expected_views = old[3] + 1 if old[0] == "tiktok" else old[3]
        assert new[3] == expected_views
        assert new[4] == old[4]
    con = duckdb_connect(tmp_path)
    assert con.execute("select count(*) from posts").fetchall() == posts_before
    assert con.execute("select count(*) from runs where command = 'reparse'").fetchall() == [(1,)]


def test_reparse_cli_without_archive_exits_3(tmp_path: Path) -> None:
    result = run_cli("reparse", "--root", str(tmp_path))
    assert result.code == 3
    assert "no archive" in result.stderr


class FixedTikTokPosts(FixedTikTok):
    """The same fix, also applied to every post's likes."""

    def handle(self, step: str, page: Any, tag: Any, state: dict[str, Any]) -> Any:
        result = super().handle(step, page, tag, state)
        if isinstance(result, TagResult):
            for post in result.posts:
                if post.get("likes") is not None:
                    post["likes"] = int(post["likes"]) + 1
        return result


SNAPSHOT_KEY = "platform, tag, observed_at"
POST_KEY = "platform, tag, post_id, observed_at"


def keyed(root: Path, sql: str) -> dict[tuple, tuple]:
    """Rows of `sql` as {key columns: the rest}; the key (SNAPSHOT_KEY or POST_KEY) is unique."""
    found = duckdb_connect(root).execute(sql).fetchall()
    width = 3 if sql.startswith(f"select {SNAPSHOT_KEY},") else 4
    out = {tuple(r[:width]): tuple(r[width:]) for r in found}
    assert len(out) == len(found), "duplicate keys"
    return out


def test_reparse_rederives_every_observation_of_several_runs(replica: ReplicaServer,
                                                              tmp_path: Path) -> None:
    tags = ("fixme", "everyrun", "thirdtag")
    for tag in tags:
        replica.world.set_variant("tiktok", tag, "ssr")
    start = replica.world.clock.now()
    try:
        for _ in range(3):  # three scheduled runs, the replica's counters moving between them
            result = crawl(replica, tmp_path, "tiktok,xiaohongshu", *tags)
            assert result.code == 0, result.stderr[-2000:]
            replica.world.clock.tick(6)
    finally:
        replica.world.clock.set(start)
    snap_sql = (f"select {SNAPSHOT_KEY}, views, discussions, archive_record, run_id "
                "from snapshots")
    post_sql = f"select {POST_KEY}, likes, comments, archive_record, run_id from posts"
    snaps, posts = keyed(tmp_path, snap_sql), keyed(tmp_path, post_sql)
    assert len(snaps) == 3 * 6  # every run observed every (platform, tag)
    for platform, tag in {(k[0], k[1]) for k in snaps}:  # and saw other numbers each time
        views = {v[0] or v[1] for k, v in snaps.items() if k[:2] == (platform, tag)}
        assert len(views) == 3, (platform, tag, views)
    repeated = {k[:3] for k in posts}
    assert len(repeated) < len(posts)  # the same posts, observed again by later runs

    report = reparse(tmp_path, compact_after=False,
                     adapters={"tiktok": FixedTikTokPosts("http://127.0.0.1:9")})
    assert report.failures == {}
    assert report.rejects == 0
    assert (report.snapshots, report.posts) == (len(snaps), len(posts))
    mine = f" where run_id = '{report.run_id}'"
    new_snaps, new_posts = keyed(tmp_path, snap_sql + mine), keyed(tmp_path, post_sql + mine)
    assert new_snaps.keys() == snaps.keys()
    assert new_posts.keys() == posts.keys()
    def fixed(platform: str, value: int | None) -> int | None:
        return value + 1 if platform == "tiktok" and value is not None else value

    for key, (views, discussions, record, _run) in snaps.items():
        assert new_snaps[key][:3] == (fixed(key[0], views), discussions, record)
    for key, (likes, comments, record, _run) in posts.items():
        assert new_posts[key][:3] == (fixed(key[0], likes), comments, record)
    assert any(k[0] == "tiktok" and v[0] is not None for k, v in posts.items())

    # compaction (as `reparse` runs it) keeps every snapshot observation, each the re-parsed
    # row, and of posts the day's last observation under each tag, also re-parsed
    compact(tmp_path, datasets=["snapshots", "posts", "activity"], include_today=True)
    final_snaps, final_posts = keyed(tmp_path, snap_sql), keyed(tmp_path, post_sql)
    assert final_snaps == new_snaps
    last_seen = {}
    for key in new_posts:
        day = (*key[:3], key[3].date())
        last_seen[day] = max(last_seen.get(day, key[3]), key[3])
    assert final_posts == {k: v for k, v in new_posts.items()
                           if last_seen[(*k[:3], k[3].date())] == k[3]}


def _write_pages(root: Path, pages: list[tuple[str, str, bytes, datetime]]) -> dict[str, str]:
    """Archive TikTok tag pages as crawls do: (run id, tag, body, observed at) each.

    Returns {tag: WARC-Record-ID}.
    """
    records = {}
    for run_id in dict.fromkeys(p[0] for p in pages):
        writer = ArchiveWriter(root, run_id)
        for _run, tag, body, when in (p for p in pages if p[0] == run_id):
            ref = writer.write_response(
                "tiktok", url=f"http://127.0.0.1/tiktok/tag/{tag}", status=200,
                headers={"content-type": "text/html; charset=utf-8"}, body=body,
                observed_at=when,
                meta={"Platform": "tiktok", "Tag": {"name": tag, "id": None},
                      "Step": "tag_page", "State": {}, "Run-Id": run_id})
            records[tag] = ref.record_id
        writer.close()
    return records


def _tiktok_page(world: World, tag: str) -> tuple[bytes, re.Match[str], dict[str, Any]]:
    """A replica TikTok tag page (server-rendered), its data script, and that script's JSON."""
    world.set_variant("tiktok", tag, "ssr")
    status, _headers, body = ReplicaServer(world=world).dispatch("GET", f"/tiktok/tag/{tag}", {})
    assert status == 200
    found = UNIVERSAL.search(body.decode("utf-8"))
    assert found is not None
    return body, found, json.loads(found.group(2))


UNIVERSAL = re.compile(r'(<script[^>]*__UNIVERSAL_DATA_FOR_REHYDRATION__[^>]*>)(.*?)(</script>)',
                       re.S)
RUN_A, RUN_B = "20260110T120000Z-0000000a", "20260110T130000Z-0000000b"
AT = datetime(2026, 1, 10, 12, tzinfo=UTC)


def _hostile_pages(world: World) -> dict[str, bytes]:
    """Hostile JSON in a TikTok page's data script, one kind per tag."""
    body, found, superscript = _tiktok_page(world, "hostile")
    text = body.decode("utf-8")

    def with_script(script: str) -> bytes:
        return (text[:found.start(2)] + script + text[found.end(2):]).encode("utf-8")

    info = superscript["__DEFAULT_SCOPE__"]["webapp.challenge-detail"]["challengeInfo"]
    info["statsV2"]["viewCount"] = "²"  # str.isdigit() says True; int() refuses it
    return {
        "deepnesting": with_script("[" * 100_000 + "]" * 100_000),
        "superscripttwo": with_script(json.dumps(superscript)),
        "hugenumber": with_script(found.group(2).replace(
            '"viewCount":', '"viewCount": ' + "9" * 5000 + ', "was":', 1)),
    }


def test_a_hostile_archived_page_is_skipped_named_and_the_rest_reparsed(tmp_path: Path) -> None:
    world = World(seed=2025)
    calm = {tag: _tiktok_page(world, tag)[0] for tag in ("calmone", "calmtwo")}
    hostile = _hostile_pages(world)
    pages = [(RUN_A, "calmone", calm["calmone"], AT)]
    pages += [(RUN_A, tag, body, AT + timedelta(minutes=1)) for tag, body in hostile.items()]
    pages += [(RUN_A, "calmtwo", calm["calmtwo"], AT + timedelta(minutes=2))]
    records = _write_pages(tmp_path, pages)

    result = run_cli("reparse", "--root", str(tmp_path))
    assert result.code == 1, result.stderr[-3000:]  # every other page reparsed; these named
    assert "5 archived pages -> 2 snapshots" in result.stdout
    assert "3 pages not reparsed (layout_changed 3)" in result.stdout
    named = [line for line in result.stderr.splitlines()
             if line.startswith("tagarchive: not reparsed: ")]
    assert len(named) == 3
    for tag in hostile:
        [line] = [line for line in named if records[tag] in line]
        assert f"tiktok {tag}: layout_changed: " in line
        assert "archive/platform=tiktok/" in line
    assert "Traceback" not in result.stderr

    con = duckdb_connect(tmp_path)
    assert sorted(con.execute("select tag from snapshots").fetchall()) == [("calmone",),
                                                                           ("calmtwo",)]
    [(verdict, code, outcomes)] = con.execute(
        "select verdict, exit_code, outcomes from runs where command = 'reparse'").fetchall()
    assert (verdict, code) == ("failed", 1)
    skipped = [o for o in outcomes if o["status"] != "stored"]
    assert sorted(o["tag"] for o in skipped) == sorted(hostile)
    for outcome in skipped:
        assert outcome["status"] == "layout_changed"
        assert records[outcome["tag"]] in outcome["detail"]


class BrokenTikTok(TikTok):
    """An adapter that fails in ways no adapter should: raising anything, answering junk."""

    def handle(self, step: str, page: Any, tag: Any, state: dict[str, Any]) -> Any:
        if tag.name == "raises":
            raise ZeroDivisionError("a bug in the parser")
        if tag.name == "answersjunk":
            return {"not": "a result"}
        if tag.name == "badfields":
            return TagResult(snapshot={"no_such_column": 1})
        if tag.name == "captchapage":  # the platform's word, as when it was crawled
            raise Captcha("verification page")
        return super().handle(step, page, tag, state)


def test_whatever_the_adapter_raises_or_answers_skips_that_page_only(tmp_path: Path) -> None:
    world = World(seed=2025)
    tags = ("calmone", "raises", "answersjunk", "badfields", "captchapage", "calmtwo")
    records = _write_pages(tmp_path, [(RUN_A, tag, _tiktok_page(world, tag)[0], AT)
                                      for tag in tags])
    report = reparse(tmp_path, adapters={"tiktok": BrokenTikTok()})
    assert (report.pages, report.snapshots) == (6, 2)
    assert report.failures == {"layout_changed": 3, "captcha": 1}
    assert report.not_reparsed == {"layout_changed": 3}  # named; a captcha page only counted
    assert report.no_tag_data == {"captcha": 1}
    assert report.exit_code == 1
    assert {(p.tag, p.record) for p in report.skipped} == {
        (tag, records[tag]) for tag in ("raises", "answersjunk", "badfields")}
    assert "ZeroDivisionError: a bug in the parser" in [
        p.detail for p in report.skipped if p.tag == "raises"][0]


def test_each_archived_run_is_deduplicated_on_its_own(tmp_path: Path) -> None:
    """Two observations of a tag in one run: stored once, as the crawl did; in two runs: twice."""
    world = World(seed=2025)
    body = _tiktok_page(world, "twice")[0]
    _write_pages(tmp_path, [(RUN_A, "twice", body, AT),
                            (RUN_A, "twice", body, AT + timedelta(minutes=1)),
                            (RUN_B, "twice", body, AT + timedelta(hours=1))])
    report = reparse(tmp_path, compact_after=False)
    assert (report.pages, report.snapshots, report.exit_code) == (3, 2, 0)
    times = duckdb_connect(tmp_path).execute(
        "select observed_at from snapshots order by 1").fetchall()
    assert [t[0] for t in times] == [AT, AT + timedelta(hours=1)]
