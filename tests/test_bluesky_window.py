"""Bluesky's window counts: a cursor walk over searchPosts, checked against the replica's truth.

Every expected count comes from the replica's ground truth (`World.timeline` over the stored
window) or, for the real capture, from its raw body; never from the adapter under test.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crawler.platforms.base import Fetch, NotFound, Page, TagResult
from crawler.platforms.bluesky import Bluesky, parse_post, post_time
from crawler.text.tags import TagRef
from replica.bluesky import BlueskyApp, iso_ms
from replica.clock import ReplicaClock
from replica.server import ReplicaServer
from replica.world import PostTruth, World
from tests.fixture_helpers import FIXTURES
from tests.fixtures.regenerate import fetch_plain, session_headers

NOW = datetime(2025, 1, 15, tzinfo=UTC)
LOGIN = {"identifier": "window.bsky.social", "password": "wind-owte-stpa-ss01"}
REAL = FIXTURES / "real" / "bluesky" / "postviews_twitwi_handle_invalid_year0"


@pytest.fixture(scope="module")
def server() -> Iterator[ReplicaServer]:
    """A replica of its own, its clock fixed (the session replica's may be moved by others)."""
    with ReplicaServer(world=World(seed=2025, clock=ReplicaClock(start=NOW))) as srv:
        yield srv


@pytest.fixture
def app(server: ReplicaServer) -> Iterator[BlueskyApp]:
    bluesky = server.platforms["bluesky"]
    assert isinstance(bluesky, BlueskyApp)
    server.world.clear_variants()
    yield bluesky
    server.world.clear_variants()
    bluesky.search_cap = type(bluesky)(server.world).search_cap


class Walk:
    """The adapter's walk through the replica, page by page, as the spider would drive it."""

    def __init__(self, server: ReplicaServer, adapter: Bluesky | None = None) -> None:
        self.adapter = adapter or Bluesky(server.base_url("bluesky"))
        self.session = session_headers(self.adapter, {"login": LOGIN})
        self.pages: list[Page] = []
        self.states: list[dict[str, Any]] = []

    def run(self, tag: str) -> TagResult:
        ref = TagRef(tag, None)
        fetch = self.adapter.first_fetch(ref)
        while True:
            status, headers, text = fetch_plain(fetch.url, {**fetch.headers, **self.session})
            page = Page(url=fetch.url, status=status, headers=headers, text=text,
                        observed_at=datetime.now(UTC))
            self.pages.append(page)
            self.states.append(fetch.state)
            result = self.adapter.handle(fetch.step, page, ref, fetch.state)
            if isinstance(result, TagResult):
                return result
            assert isinstance(result, Fetch)
            fetch = result


def window_truth(world: World, tag: str, result: TagResult) -> list[PostTruth]:
    """The replica's posts created in the snapshot's stated window."""
    snap = result.snapshot
    return world.timeline("bluesky", tag, until=snap["window_end"], since=snap["window_start"],
                          limit=10**6)


def newest(world: World, tag: str, n: int) -> list[PostTruth]:
    """The n newest posts the search lists first."""
    return world.timeline("bluesky", tag, until=world.now() + timedelta(seconds=1), limit=n)


def test_window_counts_are_the_truth_over_several_pages(server: ReplicaServer,
                                                        app: BlueskyApp) -> None:
    walk = Walk(server)
    result = walk.run("space")
    snap = result.snapshot
    assert (snap["window_start"], snap["window_end"]) == (NOW - timedelta(hours=24), NOW)
    truth = window_truth(server.world, "space", result)
    assert len(truth) > 100  # more than one page holds
    assert len(walk.pages) >= 2
    assert (snap["posts"], snap["posts_semantics"]) == (len(truth), "window")
    assert (snap["participants"], snap["participants_semantics"]) == (
        len({p.author_id for p in truth}), "window")
    assert snap["visibility_cap"] == 10_000
    # every post the walk saw is stored once, the window's among them
    ids = [p["post_id"] for p in result.posts]
    assert len(ids) == len(set(ids)) == snap["posts_seen"]
    assert {f"at://{p.author_id}/app.bsky.feed.post/{p.id}" for p in truth} <= set(ids)


def test_page_bound_stops_the_walk_at_a_lower_bound(server: ReplicaServer,
                                                    app: BlueskyApp) -> None:
    class OnePage(Bluesky):
        max_walk_pages: ClassVar[int] = 1

    result = Walk(server, OnePage(server.base_url("bluesky"))).run("space")
    snap = result.snapshot
    seen = [p for p in newest(server.world, "space", 100)
            if snap["window_start"] <= p.created_at < snap["window_end"]]
    assert len(seen) < len(window_truth(server.world, "space", result))
    assert (snap["posts"], snap["posts_semantics"]) == (len(seen), "lower_bound")
    assert (snap["participants"], snap["participants_semantics"]) == (
        len({p.author_id for p in seen}), "lower_bound")
    assert snap["caveats"][0].startswith("posts: the walk stopped at its bound of 1 pages")
    assert snap["window_end"] == NOW  # the window is still stated


def test_a_403_cursor_page_stops_the_walk_at_a_lower_bound(server: ReplicaServer,
                                                           app: BlueskyApp) -> None:
    server.world.set_variant("bluesky", "space", "cursor_forbidden")
    walk = Walk(server)
    result = walk.run("space")
    snap = result.snapshot
    assert walk.pages[-1].status == 403
    seen = [p for p in newest(server.world, "space", 100)
            if snap["window_start"] <= p.created_at < snap["window_end"]]
    assert (snap["posts"], snap["posts_semantics"]) == (len(seen), "lower_bound")
    assert snap["participants_semantics"] == "lower_bound"
    assert "answered HTTP 403" in snap["caveats"][0]
    assert len(result.posts) == 100  # the first page's posts are kept


def test_the_per_query_cap_stops_the_walk_at_a_lower_bound(server: ReplicaServer,
                                                           app: BlueskyApp) -> None:
    app.search_cap = 200  # the replica stops giving a cursor after 200 results
    result = Walk(server).run("caturday")
    snap = result.snapshot
    seen = [p for p in newest(server.world, "caturday", 200)
            if snap["window_start"] <= p.created_at < snap["window_end"]]
    assert len(seen) < len(window_truth(server.world, "caturday", result))
    assert (snap["posts"], snap["posts_semantics"]) == (len(seen), "lower_bound")
    assert snap["caveats"][0].startswith("posts: the search gave no further cursor after 200")


def test_invalid_handles_get_urls_by_did(server: ReplicaServer, app: BlueskyApp) -> None:
    result = Walk(server).run("nowplaying")
    truth = {f"at://{p.author_id}/app.bsky.feed.post/{p.id}": p
             for p in newest(server.world, "nowplaying", len(result.posts))}
    invalid = [p for p in result.posts if app.handle_invalid(truth[p["post_id"]].author_id)]
    assert invalid  # the replica serves some
    for post in result.posts:
        assert post["url"] == app.post_url(truth[post["post_id"]])
    for post in invalid:
        assert post["url"].startswith("https://bsky.app/profile/did:plc:")
        assert post["author_name"] == truth[post["post_id"]].author_nickname


def test_hits_total_is_not_what_is_stored(server: ReplicaServer, app: BlueskyApp) -> None:
    server.world.set_variant("bluesky", "python", "hits_total")
    walk = Walk(server)
    result = walk.run("python")
    assert json.loads(walk.pages[0].text)["hitsTotal"] == server.world.topic("bluesky",
                                                                             "python").posts
    truth = window_truth(server.world, "python", result)
    assert result.snapshot["posts"] == len(truth)
    assert result.snapshot["posts"] != server.world.topic("bluesky", "python").posts


def test_odd_created_at_keeps_the_window_and_is_named(server: ReplicaServer,
                                                      app: BlueskyApp) -> None:
    result = Walk(server).run("space")
    truth = {f"at://{p.author_id}/app.bsky.feed.post/{p.id}": p
             for p in newest(server.world, "space", len(result.posts))}
    written = {uri: app.created_at(p) for uri, p in truth.items()}
    odd = {uri for uri, text in written.items() if text != iso_ms(truth[uri].created_at)}
    # no usable time: year 0000, or set after the answer (far in the future)
    unusable = {uri for uri, text in written.items()
                if text.startswith("0000") or datetime.fromisoformat(text) > NOW}
    assert unusable
    assert odd - unusable  # offsets, microseconds, a few seconds late: readable
    for post in result.posts:
        # created_at is sortAt: indexedAt, the truth's time, whenever createdAt is not earlier
        assert post["created_at"] == truth[post["post_id"]].created_at
    assert result.snapshot["posts"] == len(window_truth(server.world, "space", result))
    assert (f"created_at: {len(unusable)} posts' record.createdAt is no usable time"
            in result.snapshot["caveats"][-1])


def test_a_post_shown_twice_is_counted_once(server: ReplicaServer, app: BlueskyApp) -> None:
    walk = Walk(server)
    result = walk.run("space")
    adapter, ref = walk.adapter, TagRef("space", None)
    again = adapter.handle("search", walk.pages[1], ref, walk.states[1])  # page 2 once more
    assert isinstance(again, TagResult)
    assert again.snapshot == result.snapshot
    first = adapter.handle("search", walk.pages[0], ref, {})
    assert isinstance(first, Fetch)
    replayed = adapter.handle("search", walk.pages[0], ref, first.state)  # page 1 twice
    assert isinstance(replayed, Fetch)
    assert replayed.state["walk"]["posts"] == first.state["walk"]["posts"]
    assert replayed.state["walk"]["in_window"] == first.state["walk"]["in_window"]


def test_the_walk_state_is_plain_data(server: ReplicaServer, app: BlueskyApp) -> None:
    walk = Walk(server)
    walk.run("space")
    state = walk.states[1]
    assert json.loads(json.dumps(state)) == state  # the archive stores it as JSON
    assert pickle.loads(pickle.dumps(state)) == state  # request meta, Redis queues
    assert len(state["walk"]["posts"]) == 100


def test_a_search_with_no_tagged_post_is_not_found(server: ReplicaServer,
                                                   app: BlueskyApp) -> None:
    with pytest.raises(NotFound):
        Walk(server).run("nosuchtag")


def _real_views() -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = json.loads((REAL / "body.json").read_text())["posts"]
    return views


def _page() -> Page:
    return Page(url="https://bsky.social/", status=200, headers={}, text="",
                observed_at=datetime(2026, 1, 22, 10, 12, 46, tzinfo=UTC))


def test_real_invalid_handle_is_named_by_its_did() -> None:
    """twitwi's payload 107: handle.invalid, its DID in the URI (read from the raw body)."""
    view = _real_views()[0]
    assert view["author"]["handle"] == "handle.invalid"
    post = parse_post(view, "x", _page())
    assert post is not None
    assert post["url"] == ("https://bsky.app/profile/did:plc:n5pm4vggu475okayqvqipkoh/post/"
                           "3lmdcgp3a7cnd")
    assert post["author_name"] == "Smurf McSmurf"  # its displayName, not "handle.invalid"
    # createdAt 20:21:33.946451Z (microseconds) before indexedAt 20:21:34.382Z
    assert post["created_at"] == datetime(2025, 4, 8, 20, 21, 33, 946451, tzinfo=UTC)


def test_real_year_zero_is_no_time() -> None:
    """twitwi's payload 122: createdAt and indexedAt both "0000-10-14T15:06:10.730Z"."""
    view = _real_views()[2]
    assert view["record"]["createdAt"] == view["indexedAt"] == "0000-10-14T15:06:10.730Z"
    assert post_time(view["indexedAt"]) is None
    post = parse_post(view, "x", _page())
    assert post is not None
    assert post["created_at"] is None
    assert post["url"] == "https://bsky.app/profile/koro.icu/post/3kbpuogc6fz2o"


def test_real_offset_created_at_reads_as_utc() -> None:
    """twitwi's payload 113: createdAt "2024-11-22T09:30:54+01:00", indexedAt 08:30:55.765Z."""
    post = parse_post(_real_views()[1], "FernandoAlonso", _page())
    assert post is not None
    assert post["created_at"] == datetime(2024, 11, 22, 8, 30, 54, tzinfo=UTC)


def test_real_case_files_exist() -> None:
    for name in ("body.json", "page.json", "expected.json", "provenance.md"):
        assert Path(REAL, name).is_file(), name
