"""TikTok's timeline (`tagarchive backfill`): a tag's `challenge/item_list` feed, page by page.

The tag page is fetched over HTTP, as a crawl's is. A server-rendered page carries the feed's
first page (`itemList`) and the challenge; the further pages are `challenge/item_list` calls
from `cursor`, each signed in a live page (`X-Bogus`, crawler/downloader/signing.py), with no
page navigation. A client-rendered tag page carries neither: the signed `challenge/detail`
names the challenge, and its feed is read from cursor 0. Each signed step carries the rendered
tag page, scrolled (crawler/downloader/feedscroll.py), as its fallback, taken when signing is
unavailable; so is a tag page with no data script at all. The feed is ordered by relevance and
stops at a cap: a ranked sample, so every day is a lower bound.

The steps are a mixin of the adapter (crawler/platforms/tiktok.py), whose helpers they read at
call time: that module imports this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from parsel import Selector

from crawler.platforms.base import (
    Blocked,
    Captcha,
    Fetch,
    LayoutChanged,
    NotFound,
    Page,
    RenderSpec,
    SignSpec,
    Unsupported,
    check_status,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.tags import TagRef
from crawler.text.timestamps import TimestampError, from_epoch_seconds

if TYPE_CHECKING:
    from crawler.platforms.tiktok import TikTok

CAPTCHA_CSS = "#captcha-verify-container, .captcha_verify_container"


def _tt() -> Any:
    from crawler.platforms import tiktok

    return tiktok


class TikTokTimeline:
    """The backfill steps of the TikTok adapter."""

    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """The tag page over HTTP; what it carries says how the feed is read (module doc)."""
        if tag.name is None:
            raise Unsupported("TikTok tags are addressed by name, not id:")
        me = cast("TikTok", self)
        return Fetch(url=me.tag_url(tag.name), step="backfill_tag_page",
                     state={"window": window.as_state()})

    def _timeline_rendered(self, tag: TagRef, state: dict[str, Any]) -> Fetch:
        """The tag page, rendered and scrolled: each item_list page it fetches is captured."""
        me = cast("TikTok", self)
        return Fetch(url=me.tag_url(tag.name or ""), step="backfill",
                     render=RenderSpec(capture=(_tt().DETAIL_API, _tt().ITEMS_API),
                                       wait_for='[data-e2e="challenge-item-list"], '
                                                '[data-e2e="challenge-not-found"], '
                                                '#captcha-verify-container, '
                                                '[data-e2e="load-error"]'),
                     state={"window": state["window"]})

    def _timeline_items(self, tag: TagRef, state: dict[str, Any], challenge: dict[str, Any],
                        cursor: str) -> Fetch:
        """One item_list page from `cursor`, signed; the tag page rendered otherwise."""
        me, tt = cast("TikTok", self), _tt()
        url = me._api_url("/api/challenge/item_list/", (
            ("challengeID", str(challenge["id"])), ("count", str(tt.ITEM_COUNT)),
            ("cursor", cursor)))
        return Fetch(url=url, step="backfill_api_items",
                     state={"window": state["window"], "cursor": cursor,
                            "challenge": {"id": str(challenge["id"]),
                                          "title": challenge.get("title") or tag.name or ""}},
                     sign=SignSpec("tiktok", fallback=self._timeline_rendered(tag, state)))

    def on_backfill_tag_page(self, page: Page, tag: TagRef,
                             state: dict[str, Any]) -> TimelinePage:
        """The tag page over HTTP: its first feed page, or the challenge to look up."""
        me, tt = cast("TikTok", self), _tt()
        check_status(page)
        if Selector(text=page.text).css(CAPTCHA_CSS):
            raise Captcha("verification page ('Verify to continue')")
        universal = tt.extract_universal_data(page.text)
        if universal is None:  # not a page this reads: the rendered page names what it is
            return TimelinePage(next_fetch=self._timeline_rendered(tag, state))
        detail = universal.get("__DEFAULT_SCOPE__", {}).get(tt.SCOPE)
        if not isinstance(detail, dict):  # client-rendered: the signed challenge/detail
            url = me._api_url("/api/challenge/detail/", (("challengeName", tag.name or ""),))
            return TimelinePage(next_fetch=Fetch(
                url=url, step="backfill_api_detail", state={"window": state["window"]},
                sign=SignSpec("tiktok", fallback=self._timeline_rendered(tag, state))))
        if detail.get("statusCode") in tt.NOT_FOUND_CODES:
            raise NotFound(detail.get("statusMsg") or "Couldn't find this hashtag")
        challenge = (detail.get("challengeInfo") or {}).get("challenge") or {}
        if not challenge.get("id"):
            raise LayoutChanged("the tag page names no challenge id")
        title = challenge.get("title") or tag.name or ""
        posts = timeline_posts(detail.get("itemList") or [], title, str(challenge["id"]), page)
        cursor = str(detail.get("cursor") or "0")  # where the page's own calls go on [INF]
        more = bool(detail.get("hasMore", True)) and cursor.isdigit()
        return TimelinePage(
            posts=posts, oldest_seen=oldest(posts), ranked=True, tag_display=title or None,
            next_fetch=self._timeline_items(tag, state, challenge, cursor) if more else None)

    def on_backfill_api_detail(self, page: Page, tag: TagRef,
                               state: dict[str, Any]) -> TimelinePage:
        """`challenge/detail`, fetched signed: the challenge, then its feed from cursor 0."""
        tt = _tt()
        check_status(page)
        detail = tt._json_body(page, "challenge/detail")
        if detail.get("statusCode") in tt.NOT_FOUND_CODES:
            raise NotFound(detail.get("statusMsg") or "Couldn't find this hashtag")
        challenge = (detail.get("challengeInfo") or {}).get("challenge") or {}
        if not challenge.get("id"):
            raise LayoutChanged("challenge/detail names no challenge id")
        return TimelinePage(next_fetch=self._timeline_items(tag, state, challenge, "0"),
                            tag_display=challenge.get("title") or None)

    def on_backfill_api_items(self, page: Page, tag: TagRef,
                              state: dict[str, Any]) -> TimelinePage:
        """One `challenge/item_list` page, fetched signed, and the page its cursor names."""
        check_status(page)
        data = _tt()._json_body(page, "item_list")
        items = data.get("itemList")
        if not isinstance(items, list):
            raise LayoutChanged(f"item_list answered no itemList (HTTP {page.status})")
        challenge = state["challenge"]
        posts = timeline_posts(items, challenge["title"], challenge["id"], page, source="api")
        more, cursor = bool(data.get("hasMore")), str(data.get("cursor") or "")
        # onward only: a cursor that does not move would ask for the same page forever
        follow = more and cursor.isdigit() and int(cursor) > int(state["cursor"])
        return TimelinePage(
            posts=posts, oldest_seen=oldest(posts), ranked=True, capped=more and not follow,
            next_fetch=self._timeline_items(tag, state, challenge, cursor) if follow else None,
            tag_display=challenge["title"] or None)

    def on_backfill_item_list(self, page: Page, tag: TagRef,
                              state: dict[str, Any]) -> TimelinePage:
        """One `item_list` answer on its own: `itemList[]` (challenge feed) or `items[]` (the
        2021 `/api/item_list/` feed), `hasMore`. Ranked, so a lower bound like `on_backfill`."""
        check_status(page)
        data = _tt()._json_body(page, "item_list")
        items = data.get("itemList", data.get("items"))
        if not isinstance(items, list):
            raise LayoutChanged("item_list answered neither itemList nor items")
        posts = timeline_posts(items, tag.name or "", "", page, source="api")
        return TimelinePage(posts=posts, oldest_seen=oldest(posts), ranked=True,
                            capped=bool(data.get("hasMore")), tag_display=None)

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        """The tag page rendered and scrolled: its markup's first page and every item_list
        page it fetched."""
        tt = _tt()
        check_status(page)
        if Selector(text=page.text).css(CAPTCHA_CSS):
            raise Captcha("verification page ('Verify to continue')")
        universal = tt.extract_universal_data(page.text) or {}
        detail = universal.get("__DEFAULT_SCOPE__", {}).get(tt.SCOPE)
        items: list[dict[str, Any]] = []
        if isinstance(detail, dict):  # server-rendered: the first page is in the markup
            if detail.get("statusCode") in tt.NOT_FOUND_CODES:
                raise NotFound(detail.get("statusMsg") or "Couldn't find this hashtag")
            items.extend(detail.get("itemList") or [])
        for cap in page.captured_matching(tt.DETAIL_API):
            data = cap.json()
            if cap.status == 200 and data is None:
                raise Blocked("challenge/detail answered an empty body (bot detection)")
            if isinstance(data, dict) and data.get("statusCode") in tt.NOT_FOUND_CODES:
                raise NotFound(data.get("statusMsg") or "Couldn't find this hashtag")
            detail = detail if isinstance(detail, dict) else data
        if "Couldn't find this hashtag" in page.text and not items:
            raise NotFound("Couldn't find this hashtag")
        more = False
        for cap in page.captured_matching(tt.ITEMS_API):
            data = cap.json()
            if cap.status == 200 and data is None:
                raise Blocked("item_list answered an empty body (bot detection)")
            if not isinstance(data, dict) or not isinstance(data.get("itemList"), list):
                raise LayoutChanged(f"item_list answered no itemList (HTTP {cap.status})")
            items.extend(data["itemList"])
            more = bool(data.get("hasMore"))
        if not isinstance(detail, dict) and not items:
            raise LayoutChanged("the tag page showed neither challenge detail nor videos")
        challenge = ((detail or {}).get("challengeInfo") or {}).get("challenge") or {}
        title, tag_id = challenge.get("title") or tag.name or "", str(challenge.get("id") or "")
        posts = timeline_posts(items, title, tag_id, page)
        # ranked: counts are a lower bound whatever happens; `capped` also says the page still
        # had more when scrolling stopped
        return TimelinePage(posts=posts, oldest_seen=oldest(posts), ranked=True, capped=more,
                            tag_display=title or None)


def timeline_posts(items: list[Any], title: str, tag_id: str, page: Page,
                   source: str | None = None) -> list[dict[str, Any]]:
    """The posts of a feed page, each dated by its `createTime` (Unix seconds)."""
    posts = []
    for item in items:
        post = _tt().parse_item(item, title, tag_id, page, source=source)
        if post is None:
            continue
        try:  # Unix seconds; a millisecond value is refused, not dated in the year 56000
            post["created_at"] = from_epoch_seconds(item.get("createTime"))
        except TimestampError as exc:
            raise LayoutChanged(f"video {post['post_id']}: createTime: {exc}") from exc
        posts.append(post)
    return posts
