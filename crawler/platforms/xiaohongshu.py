"""Xiaohongshu (RedNote) topics: the topic search, then the topic's notes feed, both signed.

Shapes (PLATFORMS.md §1; real captures in tests/fixtures/real/xiaohongshu/): every edith API call
needs `X-S`/`X-T`/`x-S-Common` headers that the site's own script computes, and an unsigned call
is answered HTTP 461 with `Verifytype` and `Verifyuuid` (the captcha). A tag by name is read
through the two APIs directly, each call signed by the site's own script in a live page
(`window._webmsxyw`, crawler/downloader/signing.py): `api_search` reads the topic search answer,
`api_topic` the notes feed's first page, with no page navigation per tag. When signing is
unavailable, or the feed is not at the path called (404: it moved), the same two steps are
rendered in Chromium and the adapter reads the JSON the page fetched for itself:
1. search (`/search_result?keyword=…`, [INF] which page calls the topic search on the real site)
   captures `POST /web_api/sns/v1/search/topic` → `data.topic_info_dtos[]{id,name,link,view_num}`;
   `view_num` is an integer at full precision (9918059975 and 54486530 in the real sample, no
   display rounding), `link` carries the topic `page_id` (not the same as `id`);
2. the topic page `/page/topics/{page_id}` captures the notes feed. No public capture confirms
   the feed's path, so every known form is accepted:
   - `data{notes[], total_note_count, total_user_count, has_more, cursor}` (the one public sample,
     which names `/api/sns/web/v1/search/recommend` as its path) at that path, `/page/<id>/notes`
     or `/topic/notes` [INF];
   - `data` as a bare list of notes: the older mobile-web `web_api/sns/v1/page/{id}/notes`
     (third-party code reads it so); it carries no totals.
   A captured answer of one of these paths that holds no notes (the same `search/recommend`
   path serves keyword suggestions, `sug_items`) is not the feed and is passed over.
   `total_note_count` → discussions and `total_user_count` → participants (exact integers).
When no feed was captured, what is known is still stored: the exact `view_num` of the topic
search (when the search was captured) and the rendered header "1.2亿浏览 · 281.2万讨论" (display
text, rounded: "1.2亿" is 1.2×10⁸ to the nearest 10⁷); a caveat names what is missing. The tag
fails (`layout_changed`) only when nothing at all was read. Notes: `likes` (an exact integer in
the topic feed) or `interact_info.liked_count`, a string shown rounded from 1万 up ("1.2万",
"10万+": a floor, stored as a lower bound). API codes: 300012 IP block, -100/-101/-104 sign-in
[INF], -510000 not found [INF for topics].
"""

from __future__ import annotations

import json
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
    PlatformError,
    RenderSpec,
    SignSpec,
    TagResult,
    UnreadableJSON,
    check_status,
    load_json,
    mapping,
)
from crawler.platforms.xiaohongshu_timeline import XiaohongshuTimeline
from crawler.text.counts import CountParseError, parse_count, parse_labelled
from crawler.text.tags import TagRef, normalize_tag
from crawler.text.timestamps import utc_from_epoch

SEARCH_API = r"/web_api/sns/v1/search/topic"
SEARCH_PATH = "/web_api/sns/v1/search/topic"
# The feed path the signed path calls: the older mobile-web endpoint, which the replica's topic
# page calls [INF: which path the current topic page calls is unconfirmed; see NOTES_API]
FEED_PATH = "/web_api/sns/v1/page/{page_id}/notes?page_size=20&sort=hot_desc&cursor="
API_HOST = "https://edith.xiaohongshu.com"  # the signed API's host (PLATFORMS.md §1.4)
# Every path a topic notes feed is known or guessed at (see the module docstring): the path the
# only public sample names, the older mobile-web endpoint, and the guess for the current page.
# That path also answers the search box's keyword suggestions (`sug_items`, same repository), so
# only calls naming a topic page (`page_id=` in the query, as the sample's deeplink
# `api_extra{cursor,page_id,sort}` suggests [INF]) are captured: a suggestions answer captured
# first would end the capture before the feed arrived.
RECOMMEND_PATH = "/api/sns/web/v1/search/recommend"
NOTES_API = (r"/page/[0-9a-zA-Z]+/notes|/topic/notes|"
             + re.escape(RECOMMEND_PATH) + r"\?(?:[^#]*&)?page_id=")
PAGE_ID = re.compile(r"/page/topics/([0-9a-zA-Z]+)")
LOGIN_CODES = {-100, -101, -104}
BLOCK_CODES = {300012, 300011}
NOT_FOUND_CODES = {-510000}


class Xiaohongshu(XiaohongshuTimeline, Platform):
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
        "views": "search/topic view_num (exact); header '…浏览' text as fallback (rounded)",
        "discussions": "notes feed total_note_count (exact); header '…讨论' text as fallback "
                       "(rounded)",
        "participants": "notes feed total_user_count (exact); null without that feed",
    }
    backfill = ("topic notes feed (signed, cursor, create_time in ms), page by page; the "
                "rendered topic page scrolled when signing is unavailable: ranked hot_desc and "
                "capped, so a lower bound")
    timeline_source = "captured_xhr"
    # the topic page loads further notes pages only when scrolled (crawler/downloader/feedscroll.py)
    timeline_scroll = {"rounds": 25, "quiet_ms": 1500, "end": "[data-feed-end]",
                       "ready": ".note-list, .captcha, .error"}
    # a signing session keeps the explore page open: it loads the site's script and its signer
    signing_page = "/explore"

    def api_url(self, path: str) -> str:
        """An edith API URL: the API host, or the overriding base URL (a mirror, the replica)."""
        return (API_HOST if self.base_url == self.default_base_url else self.base_url) + path

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.id is not None:
            # by page id only the topic page names its topic (and so its view_num): rendered
            return self._topic_fetch(tag.id, {})
        keyword = tag.name or ""
        body = {"keyword": keyword, "suggest_topic_request": {"title": "", "desc": f"#{keyword}"},
                "page": {"page_size": 20, "page": 1}}  # PLATFORMS.md §1.1
        return Fetch(
            url=self.api_url(SEARCH_PATH), step="api_search", method="POST",
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            headers={"Content-Type": "application/json;charset=UTF-8"},
            sign=SignSpec("xiaohongshu", uri=SEARCH_PATH, fallback=self._search_page_fetch(tag)),
        )

    def _search_page_fetch(self, tag: TagRef) -> Fetch:
        keyword = tag.name or ""
        return Fetch(
            url=self.url(f"/search_result?keyword={quote(keyword, safe='')}&type=topic"),
            step="search",
            render=RenderSpec(capture=(SEARCH_API,), wait_for="ul.topic-list, .captcha, .empty"),
        )

    def _feed_fetch(self, page_id: str, state: dict[str, Any]) -> Fetch:
        """The topic's notes feed, first page, signed; rendered as the topic page otherwise."""
        uri = FEED_PATH.format(page_id=quote(page_id, safe=""))
        return Fetch(url=self.api_url(uri), step="api_topic",
                     state={**state, "page_id": page_id},
                     sign=SignSpec("xiaohongshu", uri=uri,
                                   fallback=self._topic_fetch(page_id, state)))

    def on_api_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        """The topic search's answer, fetched signed: the topic named so, then its feed."""
        check_status(page)
        match = self._matching_topic(topic_infos(_as_captured(page)), tag)
        return self._feed_fetch(self._page_id(match), {"topic": _topic_state(match)})

    def on_api_topic(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch | TagResult:
        """The notes feed's first page, fetched signed. Gone from that path (404), or an
        answer without notes: the topic page is rendered instead, and read as it reads it."""
        page_id = state["page_id"]
        fallback = self._topic_fetch(page_id, {k: v for k, v in state.items() if k != "page_id"})
        if page.status == 404:
            return fallback
        check_status(page)
        feed = notes_feed(_as_captured(page))
        if feed is None:
            return fallback
        return self._topic_result(page, tag, page_id, state.get("topic"), feed, None, "api")

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
        match = self._matching_topic(topic_infos(searches[-1]), tag)
        return self._topic_fetch(self._page_id(match), {"topic": _topic_state(match)})

    @staticmethod
    def _matching_topic(topics: list[dict[str, Any]], tag: TagRef) -> dict[str, Any]:
        wanted = normalize_tag(tag.name or "")
        match = next((t for t in topics if normalize_tag(str(t.get("name", ""))) == wanted), None)
        if match is None:
            names = ", ".join(str(t.get("name")) for t in topics[:3]) or "no topics"
            raise NotFound(f"topic search has no topic named {tag.name!r} ({names})")
        return match

    @staticmethod
    def _page_id(topic: dict[str, Any]) -> str:
        page_id = page_id_from_link(str(topic.get("link", "")))
        if page_id is None:
            raise LayoutChanged(f"topic link has no page id: {topic.get('link')!r}")
        return page_id

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
        feeds = captured_feeds(page)
        feed = feeds[-1] if feeds else None
        views = _exact_count((topic or {}).get("view_num"))
        # the rendered header is read only for what the JSON did not give; a header that no
        # longer parses costs only those counters when the JSON gave anything
        needs_header = views is None or feed is None or "total_note_count" not in feed
        header = None
        if needs_header:
            try:
                header = header_counts(page.text)
            except LayoutChanged:
                if views is None and feed is None:
                    raise
        if feed is None and header is None and views is None:
            raise _dom_failure(page, "topic page has neither notes JSON, nor the topic search's "
                                     "view_num, nor header counts")
        return self._topic_result(page, tag, page_id, topic, feed, header, "captured_xhr")

    def _topic_result(self, page: Page, tag: TagRef, page_id: str,
                      topic: dict[str, Any] | None, feed: dict[str, Any] | None,
                      header: dict[str, str] | None, json_source: str) -> TagResult:
        """The snapshot and posts from what was read of a topic: the search's entry, the feed,
        the rendered header; `json_source` is how the JSON came (`api` or `captured_xhr`)."""
        views = _exact_count((topic or {}).get("view_num"))
        name = (topic or {}).get("name") or _state_name(page.text) or tag.name or page_id
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": (topic or {}).get("id"),
            "url": self.public_topic_url(page_id),
            "observed_at": page.observed_at,
            "source": json_source if feed is not None or views is not None else "rendered_dom",
        }
        caveats: list[str] = []
        if views is not None:
            snapshot["views"] = views  # full-precision integer (real sample): exact
            snapshot["views_semantics"] = "exact"
        elif header and "views" in header:
            _shown(snapshot, "views", header["views"])
        totals = {"discussions": "total_note_count", "participants": "total_user_count"}
        for counter, key in totals.items():
            value = _exact_count((feed or {}).get(key))
            if value is not None:
                snapshot[counter] = value
                snapshot[f"{counter}_semantics"] = "exact"
            elif header and counter in header:
                _shown(snapshot, counter, header[counter])
        if feed is None:
            caveats.append("discussions, participants: no topic notes feed was captured (its "
                           "path is unconfirmed); read from what else the page showed")
        elif "total_note_count" not in feed:
            caveats.append(f"discussions, participants: the notes feed ({feed['form']}) "
                           "carries no totals")
        if caveats:
            snapshot["caveats"] = caveats
        notes = (feed or {}).get("notes") or []
        posts = [parse_note(n, name, snapshot["tag_id"], page, json_source) for n in notes]
        return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])

    def public_topic_url(self, page_id: str) -> str:
        return self.url(f"/page/topics/{page_id}")


def _as_captured(page: Page) -> Captured:
    """An API answer fetched directly, read as the same answer captured from a rendered page."""
    return Captured(url=page.url, status=page.status, headers=page.headers, body=page.text)


def _topic_state(topic: dict[str, Any]) -> dict[str, Any]:
    return {"id": topic.get("id"), "name": topic.get("name"), "view_num": topic.get("view_num")}


def _api_error(cap: Captured, data: Any) -> Exception | None:
    """The named failure an edith API answer signals, if any."""
    if cap.status in (461, 471):
        kind = cap.headers.get("verifytype", "?")
        return Captcha(f"HTTP {cap.status} verification required (Verifytype {kind})")
    if cap.status == 406 and cap.headers.get("x-kong-sign") == "1":
        # a refused signature (docs/access.md): in a rendered page the page's own, a one-off
        # (a cookie the page changed between signing and sending [INF]); no block, so the
        # platform is not cooled off for it
        return PlatformError(f"HTTP 406 signature refused (X-Kong-Sign: 1) on "
                             f"{urlsplit(cap.url).path}")
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


def notes_feed(cap: Captured) -> dict[str, Any] | None:
    """A captured topic notes feed answer as `{notes, form, …totals}`, or None when the answer
    holds no notes (another call on a shared path, e.g. keyword suggestions).

    Forms (module docstring): `data{notes[], total_note_count, total_user_count, has_more,
    cursor}`, or `data` as a bare list of notes (older mobile web, no totals). `form` names
    which, for caveats.
    """
    data = cap.json()
    error = _api_error(cap, data)
    if error is not None:
        raise error
    feed = data.get("data")
    if isinstance(feed, list):
        return {"notes": feed, "form": "data as a list of notes"}
    if isinstance(feed, dict) and isinstance(feed.get("notes"), list):
        return {**feed, "form": "data.notes"}
    return None


def captured_feeds(page: Page) -> list[dict[str, Any]]:
    """Every notes feed the page fetched, in order; answers of the same paths that hold no
    notes are passed over."""
    feeds = []
    for cap in page.captured_matching(NOTES_API):
        feed = notes_feed(cap)
        if feed is not None:
            feeds.append(feed)
    return feeds


def _exact_count(value: Any) -> int | None:
    """An API counter that is an integer (not a boolean), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _shown(record: dict[str, Any], counter: str, text: str) -> None:
    """A counter known only as display text: the text and what it is ("1.2亿" is rounded; a
    short number such as "57" is shown exactly)."""
    record[f"{counter}_text"] = text
    record[f"{counter}_semantics"] = text_semantics(text)


def text_semantics(text: str) -> str:
    """What a displayed count is: `lower_bound` for a floor ("10万+"), `rounded` for a scaled
    figure ("1.2万"), `exact` for plain digits."""
    stripped = text.strip()
    if stripped.endswith("+"):
        return "lower_bound"
    try:
        return "rounded" if parse_count(stripped).approximate else "exact"
    except CountParseError:
        return "rounded"


def page_id_from_link(link: str) -> str | None:
    match = PAGE_ID.search(link)
    return match.group(1) if match else None


def header_counts(html: str) -> dict[str, str] | None:
    """The header's display text per counter, e.g. {'views': '1.2亿', 'discussions': '281.2万'}."""
    meta = Selector(text=html, type="html").css(".summary .meta")
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
    sel = Selector(text=page.text, type="html")
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


def parse_note(note: Any, tag_display: str, tag_id: str | None,
               page: Page, source: str = "captured_xhr") -> dict[str, Any] | None:
    """One public post from a notes-feed entry.

    Read in every known note shape: the topic feed's `{id, title, likes, user{userid}}`; the
    web API's note cards `{id, note_card{display_title, user{user_id}, interact_info{liked_count}}}`
    or `{note_id, display_title, interact_info, user}` (homefeed, search, collect samples); and
    the same cards camel-cased in the pages' `__INITIAL_STATE__` (`noteCard`, `displayTitle`,
    `interactInfo.likedCount`, `user.userId`).
    """
    if not isinstance(note, dict):
        return None
    card = mapping(_key(note, "note_card", "noteCard"))
    body = {**card, **{k: v for k, v in note.items() if k not in ("note_card", "noteCard")}}
    note_id = _key(body, "id", "note_id", "noteId")
    if not isinstance(note_id, str | int) or isinstance(note_id, bool) or not str(note_id):
        return None
    user = mapping(body.get("user"))
    created = _key(body, "create_time", "time")
    created_at = None
    if isinstance(created, int) and not isinstance(created, bool) and 0 < created < 2**53:
        created_at = utc_from_epoch(created / 1000)  # milliseconds
    post: dict[str, Any] = {
        "platform": "xiaohongshu",
        "post_id": str(note_id),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://www.xiaohongshu.com/explore/{note_id}",
        "author_id": _key(user, "userid", "user_id", "userId"),
        "author_name": _key(user, "nickname", "nick_name", "nickName"),
        "text": _key(body, "title", "display_title", "displayTitle", "desc"),
        "created_at": created_at,
        "observed_at": page.observed_at,
        "source": source,
    }
    likes = body.get("likes")
    interact = mapping(_key(body, "interact_info", "interactInfo"))
    liked_count = _key(interact, "liked_count", "likedCount")
    if _exact_count(likes) is not None:
        post["likes"] = likes  # the topic feed's integer: exact
    elif isinstance(liked_count, str) and liked_count.strip():
        post["likes"] = liked_count.strip()  # "602" exact; "1.5万" rounded; "10万+" a floor
        post["likes_semantics"] = text_semantics(liked_count)
    elif likes is not None:
        post["likes"] = likes  # anything else is passed on for validation to name
    return post


def _key(record: dict[str, Any], *names: str) -> Any:
    """The first of `names` that `record` holds with a value that is not empty."""
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None
