"""Xiaohongshu (RedNote) topics: resolve the name through topic search, then render the topic page.

Shapes (PLATFORMS.md §1): every edith API call needs `X-S`/`X-T`/`x-S-Common` headers that the
site's own script computes, and an unsigned call is answered HTTP 461 with `Verifytype` and
`Verifyuuid` (the captcha). So both steps are rendered in Chromium and the adapter reads the JSON
the page fetched for itself:
1. search (`/search_result?keyword=…`, [INF] which page calls the topic search on the real site)
   captures `POST /web_api/sns/v1/search/topic` → `data.topic_info_dtos[]{id,name,link,view_num}`;
   `view_num` is the exact view count, `link` carries the topic `page_id` (not the same as `id`);
2. the topic page `/page/topics/{page_id}` captures the notes feed → `data.total_note_count`
   (discussions), `data.total_user_count` (participants), `data.notes[]` (posts). [INF] The real
   notes-feed path is unknown; it is matched by `/page/<page_id>/notes` or `/topic/notes`.
When no JSON was captured the rendered header "1.2亿浏览 · 281.2万讨论" is parsed instead and the
values are marked approximate. API codes: 300012 IP block, -100/-101/-104 sign-in [INF],
-510000 not found [INF for topics].
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from parsel import Selector

from crawler.platforms.base import (
    Blocked,
    Captcha,
    Captured,
    Fetch,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    Platform,
    RenderSpec,
    TagResult,
    UnreadableJSON,
    check_status,
    load_json,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.counts import CountParseError, parse_labelled
from crawler.text.tags import TagRef, normalize_tag
from crawler.text.timestamps import TimestampError, from_epoch_millis, utc_from_epoch

SEARCH_API = r"/web_api/sns/v1/search/topic"
NOTES_API = r"/page/[0-9a-f]+/notes|/topic/notes"
PAGE_ID = re.compile(r"/page/topics/([0-9a-zA-Z]+)")
LOGIN_CODES = {-100, -101, -104}
BLOCK_CODES = {300012, 300011}
NOT_FOUND_CODES = {-510000}


class Xiaohongshu(Platform):
    """Xiaohongshu / RedNote (www.xiaohongshu.com, edith.xiaohongshu.com) topics."""

    name = "xiaohongshu"
    title = "Xiaohongshu (RedNote)"
    color = "#e11d48"  # the report's line colour, brand-like
    default_base_url = "https://www.xiaohongshu.com"
    # the web host and the signed-API host share one base: their paths do not collide
    hosts = ("www.xiaohongshu.com", "xiaohongshu.com", "edith.xiaohongshu.com")
    browser = "always"
    signin = "optional"  # public topics work without; deeper pages and search need web_session
    counters = {
        "views": "search/topic view_num (exact); header '…浏览' text as fallback (approximate)",
        "discussions": "notes feed total_note_count (exact); header '…讨论' text as fallback",
        "participants": "notes feed total_user_count (exact)",
    }
    backfill = ("topic notes feed (signed in-page, cursor, create_time in ms) read by scrolling "
                "the rendered topic page: ranked hot_desc and capped, so a lower bound")
    timeline_source = "captured_xhr"
    # the topic page loads further notes pages only when scrolled (crawler/downloader/feedscroll.py)
    timeline_scroll = {"rounds": 25, "quiet_ms": 1500, "end": "[data-feed-end]",
                       "ready": ".note-list, .captcha, .error"}

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.id is not None:
            return self._topic_fetch(tag.id, {})
        keyword = tag.name or ""
        return Fetch(
            url=self.url(f"/search_result?keyword={quote(keyword, safe='')}&type=topic"),
            step="search",
            render=RenderSpec(capture=(SEARCH_API,), wait_for="ul.topic-list, .captcha, .empty"),
        )

    def _topic_fetch(self, page_id: str, state: dict[str, Any]) -> Fetch:
        return Fetch(
            url=self.url(f"/page/topics/{quote(page_id, safe='')}?naviHidden=yes"),
            step="topic",
            render=RenderSpec(capture=(SEARCH_API, NOTES_API),
                              wait_for=".summary .meta, .error, .captcha"),
            state={**state, "page_id": page_id},
        )

    def on_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        check_status(page)
        searches = page.captured_matching(SEARCH_API)
        if not searches:
            raise _dom_failure(page, "the search page fetched no topic search JSON")
        topics = topic_infos(searches[-1])
        wanted = normalize_tag(tag.name or "")
        match = next((t for t in topics if normalize_tag(str(t.get("name", ""))) == wanted), None)
        if match is None:
            names = ", ".join(str(t.get("name")) for t in topics[:3]) or "no topics"
            raise NotFound(f"topic search has no topic named {tag.name!r} ({names})")
        page_id = page_id_from_link(str(match.get("link", "")))
        if page_id is None:
            raise LayoutChanged(f"topic link has no page id: {match.get('link')!r}")
        return self._topic_fetch(page_id, {"topic": _topic_state(match)})

    def on_topic(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        check_status(page)
        page_id = state["page_id"]
        topic = state.get("topic")
        if topic is None:
            # addressed by id: the topic page's own search call names the topic
            for cap in page.captured_matching(SEARCH_API):
                for t in topic_infos(cap):
                    if page_id_from_link(str(t.get("link", ""))) == page_id:
                        topic = _topic_state(t)
        notes_caps = page.captured_matching(NOTES_API)
        feed = notes_feed(notes_caps[-1]) if notes_caps else None
        header = header_counts(page.text)
        if feed is None and header is None:
            raise _dom_failure(page, "topic page has neither notes JSON nor header counts")
        name = (topic or {}).get("name") or _state_name(page.text) or tag.name or page_id
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": (topic or {}).get("id"),
            "url": self.public_topic_url(page_id),
            "observed_at": page.observed_at,
            "source": "captured_xhr" if feed is not None or topic else "rendered_dom",
        }
        if topic and topic.get("view_num") is not None:
            snapshot["views"] = topic["view_num"]
        elif header and "views" in header:
            snapshot["views_text"] = header["views"]
        if feed is not None and feed.get("total_note_count") is not None:
            snapshot["discussions"] = feed["total_note_count"]
        elif header and "discussions" in header:
            snapshot["discussions_text"] = header["discussions"]
        if feed is not None and feed.get("total_user_count") is not None:
            snapshot["participants"] = feed["total_user_count"]
        if feed is None and topic is None:
            snapshot["source"] = "rendered_dom"
        notes = (feed or {}).get("notes") or []
        posts = [parse_note(n, name, snapshot["tag_id"], page) for n in notes]
        return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])

    def public_topic_url(self, page_id: str) -> str:
        return self.url(f"/page/topics/{page_id}")


    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """The topic page, rendered and scrolled; by name, the topic search resolves it first."""
        state = {"window": window.as_state()}
        if tag.id is not None:
            return self._timeline_topic(tag.id, state)
        search = self.first_fetch(tag)
        return Fetch(url=search.url, step="backfill_search", render=search.render, state=state)

    def _timeline_topic(self, page_id: str, state: dict[str, Any]) -> Fetch:
        return Fetch(url=self.url(f"/page/topics/{quote(page_id, safe='')}?naviHidden=yes"),
                     step="backfill",
                     render=RenderSpec(capture=(SEARCH_API, NOTES_API),
                                       wait_for=".note-list, .error, .captcha"),
                     state={**state, "page_id": page_id})

    def on_backfill_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        found = self.on_search(page, tag, state)
        topic = found.state.get("topic") or {}
        return TimelinePage(next_fetch=self._timeline_topic(found.state["page_id"], state),
                            tag_display=topic.get("name"))

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        """Every notes page the scrolled topic page fetched (hot_desc: a ranked sample)."""
        check_status(page)
        feeds = [notes_feed(cap) for cap in page.captured_matching(NOTES_API)]
        if not feeds:
            raise _dom_failure(page, "the topic page fetched no notes feed")
        name = tag.name or _state_name(page.text) or state["page_id"]
        notes = [n for feed in feeds for n in feed.get("notes") or []]
        posts = []
        for note in notes:
            post = parse_note(note, name, None, page)
            if post is None:
                continue
            try:  # milliseconds, read without float rounding
                post["created_at"] = from_epoch_millis(note.get("create_time"))
            except TimestampError as exc:
                raise LayoutChanged(f"note {post['post_id']}: create_time: {exc}") from exc
            posts.append(post)
        more = bool(feeds[-1].get("has_more"))
        return TimelinePage(posts=posts, oldest_seen=oldest(posts), ranked=True, capped=more,
                            tag_display=_state_name(page.text))


def _topic_state(topic: dict[str, Any]) -> dict[str, Any]:
    return {"id": topic.get("id"), "name": topic.get("name"), "view_num": topic.get("view_num")}


def _api_error(cap: Captured, data: Any) -> Exception | None:
    """The named failure an edith API answer signals, if any."""
    if cap.status in (461, 471):
        kind = cap.headers.get("verifytype", "?")
        return Captcha(f"HTTP {cap.status} verification required (Verifytype {kind})")
    if not isinstance(data, dict):
        if cap.status >= 400:
            return Blocked(f"HTTP {cap.status} from {urlsplit(cap.url).path}")
        return LayoutChanged(f"{urlsplit(cap.url).path} did not answer JSON")
    code = data.get("code")
    if code in BLOCK_CODES:
        return Blocked(f"API code {code}: {data.get('msg', '')}".strip())
    if code in LOGIN_CODES:
        return LoginWall(f"API code {code}: {data.get('msg', '')}".strip())
    if code in NOT_FOUND_CODES:
        return NotFound(f"API code {code}: {data.get('msg', '')}".strip())
    if data.get("success") is False:
        return Blocked(f"API code {code}: {data.get('msg', '')}".strip())
    return None


def topic_infos(cap: Captured) -> list[dict[str, Any]]:
    """`data.topic_info_dtos` of a captured topic search answer."""
    data = cap.json()
    error = _api_error(cap, data)
    if error is not None:
        raise error
    dtos = (data.get("data") or {}).get("topic_info_dtos")
    if not isinstance(dtos, list):
        raise LayoutChanged("topic search JSON has no data.topic_info_dtos")
    return [t for t in dtos if isinstance(t, dict)]


def notes_feed(cap: Captured) -> dict[str, Any]:
    """`data` of a captured topic notes feed answer."""
    data = cap.json()
    error = _api_error(cap, data)
    if error is not None:
        raise error
    feed = data.get("data")
    if not isinstance(feed, dict) or "notes" not in feed:
        raise LayoutChanged("notes feed JSON has no data.notes")
    return feed


def page_id_from_link(link: str) -> str | None:
    match = PAGE_ID.search(link)
    return match.group(1) if match else None


def header_counts(html: str) -> dict[str, str] | None:
    """The header's display text per counter, e.g. {'views': '1.2亿', 'discussions': '281.2万'}."""
    meta = Selector(text=html).css(".summary .meta")
    if not meta:
        return None
    text = "".join(meta[0].css("::text").getall())
    try:
        parsed = parse_labelled(text)
    except CountParseError as exc:
        raise LayoutChanged(f"topic header no longer parses: {exc}") from exc
    return {name: count.text for name, count in parsed.items()}


_STATE = re.compile(r"window\.__INITIAL_STATE__\s*=\s*(\{.*?\})\s*</script>", re.S)


def initial_state(html: str) -> dict[str, Any] | None:
    """`window.__INITIAL_STATE__`, which holds bare `undefined` and so is not strict JSON."""
    match = _STATE.search(html)
    if match is None:
        return None
    text = re.sub(r"(?<=[:\[,])\s*undefined\b", "null", match.group(1))
    try:
        state = load_json(text)
    except (ValueError, UnreadableJSON):  # only names the topic: unreadable is absent
        return None
    return state if isinstance(state, dict) else None


def _state_name(html: str) -> str | None:
    state = initial_state(html) or {}
    topic = state.get("topic") or {}
    return topic.get("name") if isinstance(topic, dict) else None


def _dom_failure(page: Page, detail: str) -> Exception:
    sel = Selector(text=page.text)
    if sel.css(".captcha"):
        return Captcha("verification page shown")
    for cap in page.captured:
        error = _api_error(cap, cap.json())
        if error is not None:
            return error
    if sel.css(".error"):
        text = " ".join(sel.css(".error ::text").getall()).strip()
        return NotFound(text or "topic page shows an error")
    return LayoutChanged(detail)


def parse_note(note: dict[str, Any], tag_display: str, tag_id: str | None,
               page: Page) -> dict[str, Any] | None:
    """One public post from a notes-feed entry."""
    if not isinstance(note, dict) or not note.get("id"):
        return None
    user = note.get("user") or {}
    created = note.get("create_time")
    created_at = None
    if isinstance(created, int) and not isinstance(created, bool) and 0 < created < 2**53:
        created_at = utc_from_epoch(created / 1000)  # milliseconds
    return {
        "platform": "xiaohongshu",
        "post_id": str(note["id"]),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://www.xiaohongshu.com/explore/{note['id']}",
        "author_id": user.get("userid") or user.get("user_id"),
        "author_name": user.get("nickname"),
        "text": note.get("title") or note.get("desc"),
        "created_at": created_at,
        "observed_at": page.observed_at,
        "likes": note.get("likes"),
        "source": "captured_xhr",
    }
