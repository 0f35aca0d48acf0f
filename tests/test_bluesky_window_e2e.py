"""Bluesky through the whole crawl: multi-page walks stored as window counts (or lower bounds),
their posts once each, the archive enough to parse them again; expected values from the truth."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from crawler.services.reparse import reparse
from replica.bluesky import BlueskyApp
from replica.server import ReplicaServer
from storage import duckdb_connect
from tests.crawl_helpers import run_cli

ENV = {"TAGARCHIVE_BLUESKY_HANDLE": "walker.bsky.social",
       "TAGARCHIVE_BLUESKY_APP_PASSWORD": "walk-erte-stpa-ss02"}
# space: more posts in 24 h than a page holds; caturday: more than the replica's per-query cap
# (1,000) lets one query list; nowplaying: its cursor pages answer 403
TAGS = ("space", "caturday", "nowplaying")


def _snapshots(out: Path) -> dict[str, tuple[Any, ...]]:
    con = duckdb_connect(out)
    return {r[0]: r[1:] for r in con.execute(
        "select tag, posts, posts_semantics, participants, participants_semantics, window_start, "
        "window_end, posts_seen, visibility_cap, caveats from snapshots "
        "where platform = 'bluesky'").fetchall()}


def test_walks_store_window_counts_lower_bounds_and_every_post_once(replica: ReplicaServer,
                                                                   tmp_path: Path) -> None:
    world = replica.world
    app = replica.platforms["bluesky"]
    assert isinstance(app, BlueskyApp)
    world.set_variant("bluesky", "nowplaying", "cursor_forbidden")
    out = tmp_path / "out"
    # --privacy keep: post URLs and ids are checked as the AppView names them
    result = run_cli("crawl", "bluesky", *TAGS, "--out", str(out), "--replica", replica.url,
                     "--delay", "0", "--concurrency", "2", "--privacy", "keep", env=ENV)
    assert result.code == 0, result.stderr[-3000:]
    got = _snapshots(out)
    assert set(got) == set(TAGS)
    con = duckdb_connect(out)
    for tag in TAGS:
        posts, posts_kind, people, people_kind, start, end, seen, cap, caveats = got[tag]
        assert end == world.now()  # the AppView's Date: the world's clock
        truth = world.timeline("bluesky", tag, until=end, since=start, limit=10**6)
        stored = con.execute("select post_id, url from posts where platform = 'bluesky' and "
                             "tag = ?", [tag]).fetchall()
        assert len(stored) == len({p for p, _u in stored}) == seen
        assert cap == 10_000
        if tag == "space":
            assert (posts, posts_kind) == (len(truth), "window")
            assert (people, people_kind) == (len({p.author_id for p in truth}), "window")
            assert not [c for c in caveats if c.startswith("posts: the ")]  # no stop named
            continue
        # a lower bound: exactly the window's posts among those the walk listed
        listed = {f"at://{p.author_id}/app.bsky.feed.post/{p.id}" for p in
                  world.timeline("bluesky", tag, until=end, since=start, limit=seen)}
        counted = [p for p in truth
                   if f"at://{p.author_id}/app.bsky.feed.post/{p.id}" in listed]
        assert len(counted) < len(truth)
        assert (posts, posts_kind) == (len(counted), "lower_bound")
        assert (people, people_kind) == (len({p.author_id for p in counted}), "lower_bound")
        reason = "HTTP 403" if tag == "nowplaying" else "no further cursor"
        assert reason in caveats[0]
    # URLs by handle, or by DID where the handle no longer verifies
    by_uri = {f"at://{p.author_id}/app.bsky.feed.post/{p.id}": p for p in world.timeline(
        "bluesky", "space", until=world.now() + timedelta(seconds=1), limit=10**4)}
    urls = con.execute("select post_id, url from posts where tag = 'space'").fetchall()
    assert any("/profile/did:plc:" in u for _p, u in urls)
    for post_id, url in urls:
        if post_id in by_uri:
            assert url == app.post_url(by_uri[post_id])

    # the archive holds every page with the walk's state: parsed again, the same numbers
    report = reparse(out)
    assert report.not_reparsed == {}
    assert _snapshots(out) == got
