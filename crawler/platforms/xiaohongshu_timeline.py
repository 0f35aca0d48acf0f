"""Xiaohongshu's timeline (`tagarchive backfill`): a topic's notes feed, page by page.

By name, the topic search resolves the topic, then the notes feed is read one cursor page after
the other, each call signed in a live page like a crawl's (crawler/downloader/signing.py): no
page navigation per tag. Each signed step carries the rendered way as its fallback, taken when
signing is unavailable: the search page, then the topic page rendered and scrolled, its own
notes calls captured (crawler/downloader/feedscroll.py). A feed the signed path cannot follow
(gone from its path, or in the list form without a cursor) is read from the rendered topic
page too. By page id (`id:…`) the topic page is rendered: only it names the topic, as for a
crawl. The feed is `hot_desc` and capped: a ranked sample, so every day is a lower bound.

The steps are a mixin of the adapter (crawler/platforms/xiaohongshu.py), whose helpers they
read at call time: that module imports this one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from crawler.platforms.base import Fetch, LayoutChanged, Page, RenderSpec, SignSpec, check_status
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.tags import TagRef
from crawler.text.timestamps import TimestampError, from_epoch_millis

if TYPE_CHECKING:
    from crawler.platforms.xiaohongshu import Xiaohongshu


def _xhs() -> Any:
    from crawler.platforms import xiaohongshu

    return xiaohongshu


class XiaohongshuTimeline:
    """The backfill steps of the Xiaohongshu adapter."""

    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """By name the signed topic search (the search page rendered instead); by page id the
        topic page, rendered and scrolled."""
        me = cast("Xiaohongshu", self)
        state: dict[str, Any] = {"window": window.as_state()}
        if tag.id is not None:
            return me._timeline_topic(tag.id, state)
        page = me._search_page_fetch(tag)
        rendered = Fetch(url=page.url, step="backfill_search", render=page.render, state=state)
        search = me.first_fetch(tag)
        return replace(search, step="backfill_api_search", state=state,
                       sign=SignSpec("xiaohongshu", uri=_xhs().SEARCH_PATH, fallback=rendered))

    def _timeline_topic(self, page_id: str, state: dict[str, Any]) -> Fetch:
        """The topic page, rendered and scrolled: every notes page it fetches is captured."""
        me = cast("Xiaohongshu", self)
        return Fetch(url=me.url(f"/page/topics/{quote(page_id, safe='')}?naviHidden=yes"),
                     step="backfill",
                     render=RenderSpec(capture=(_xhs().SEARCH_API, _xhs().NOTES_API),
                                       wait_for=".note-list, .error, .captcha"),
                     state={**state, "page_id": page_id})

    def _timeline_feed(self, page_id: str, state: dict[str, Any],
                       cursor: str = "") -> Fetch:
        """One page of the topic's notes feed, signed; the topic page rendered otherwise."""
        me = cast("Xiaohongshu", self)
        uri = (_xhs().FEED_PATH.format(page_id=quote(page_id, safe=""))
               + quote(cursor, safe=""))
        return Fetch(url=me.api_url(uri), step="backfill_api",
                     state={**state, "page_id": page_id, "cursor": cursor},
                     sign=SignSpec("xiaohongshu", uri=uri,
                                   fallback=me._timeline_topic(page_id, state)))

    def on_backfill_api_search(self, page: Page, tag: TagRef,
                               state: dict[str, Any]) -> TimelinePage:
        """The topic search's answer, fetched signed: the topic, then its feed's first page."""
        me = cast("Xiaohongshu", self)
        check_status(page)
        x = _xhs()
        match = me._matching_topic(x.topic_infos(x._as_captured(page)), tag)
        name = match.get("name")
        return TimelinePage(next_fetch=me._timeline_feed(me._page_id(match),
                                                           {**state, "name": name}),
                            tag_display=name if isinstance(name, str) else None)

    def on_backfill_api(self, page: Page, tag: TagRef,
                        state: dict[str, Any]) -> TimelinePage:
        """One notes-feed page fetched signed: its notes, and the page its cursor names."""
        me = cast("Xiaohongshu", self)
        page_id = state["page_id"]
        walk = {k: v for k, v in state.items() if k not in ("page_id", "cursor")}
        rendered = TimelinePage(next_fetch=me._timeline_topic(page_id, walk))
        if page.status == 404:  # the feed moved: the topic page knows where
            return rendered
        check_status(page)
        feed = _xhs().notes_feed(_xhs()._as_captured(page))
        if feed is None or "cursor" not in feed:  # no notes, or the list form: no cursor
            return rendered
        name = tag.name or state.get("name") or page_id
        posts = dated_notes(feed.get("notes") or [], name, page, "api")
        more, cursor = bool(feed.get("has_more")), feed.get("cursor")
        follow = more and isinstance(cursor, str) and cursor != ""
        return TimelinePage(
            posts=posts, oldest_seen=oldest(posts), ranked=True, capped=more and not follow,
            next_fetch=me._timeline_feed(page_id, walk, str(cursor)) if follow else None,
            tag_display=state.get("name"))

    def on_backfill_search(self, page: Page, tag: TagRef,
                           state: dict[str, Any]) -> TimelinePage:
        me = cast("Xiaohongshu", self)
        found = me.on_search(page, tag, state)
        topic = found.state.get("topic") or {}
        return TimelinePage(next_fetch=me._timeline_topic(found.state["page_id"], state),
                            tag_display=topic.get("name"))

    def on_backfill(self, page: Page, tag: TagRef,
                    state: dict[str, Any]) -> TimelinePage:
        """Every notes page the scrolled topic page fetched (hot_desc: a ranked sample)."""
        check_status(page)
        x = _xhs()
        feeds = x.captured_feeds(page)
        if not feeds:
            raise x._dom_failure(page, "the topic page fetched no notes feed")
        name = tag.name or x._state_name(page.text) or state["page_id"]
        notes = [n for feed in feeds for n in feed.get("notes") or []]
        posts = dated_notes(notes, name, page, "captured_xhr")
        # the list form says nothing of further pages: an unknown end is read as capped
        more = bool(feeds[-1].get("has_more", True))
        return TimelinePage(posts=posts, oldest_seen=oldest(posts), ranked=True, capped=more,
                            tag_display=x._state_name(page.text))


def dated_notes(notes: list[Any], name: str, page: Page, source: str) -> list[dict[str, Any]]:
    """The posts of notes-feed entries, each dated by its `create_time` (milliseconds)."""
    posts = []
    for note in notes:
        post = _xhs().parse_note(note, name, None, page, source)
        if post is None:
            continue
        try:  # milliseconds, read without float rounding
            post["created_at"] = from_epoch_millis(note.get("create_time"))
        except TimestampError as exc:
            raise LayoutChanged(f"note {post['post_id']}: create_time: {exc}") from exc
        posts.append(post)
    return posts
