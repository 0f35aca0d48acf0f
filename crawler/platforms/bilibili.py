"""Bilibili topics: `x/topic/web/details/top` over plain HTTP, names resolved by topic search.

Shapes (PLATFORMS.md §5): `GET app.bilibili.com/x/topic/web/details/top?topic_id={id}` needs no
sign-in and answers `{code, message, ttl, data.top_details.topic_item{id, name, view, discuss,
dynamics, fav, like, share, jump_url, ctime}, topic_creator}` with exact integers (a real saved
response, [V-sample]). A missing topic is `{"code":4401031,"message":"话题不存在","data":null}`.
A name is resolved through the site's own topic search, `GET /x/topic/pub/search?keywords=`
(bilibili-API-collect `docs/dynamic/topic.md`): `data.topic_items[]{id, name, view, discuss,
stat_desc}`; it matches by substring, so the exact name is picked from the list. The search
endpoint's page size can differ from what was asked (same document).
The topic feed (`details/cards`; `x/polymer/web-dynamic/v1/feed/topic` answers the same shape, a
real 20-item page in bilibili-API-collect `docs/dynamic/topic.md`) lists polymer dynamics. Their
text: `module_dynamic.desc.text` is what the author wrote with the post, and it is null for many
(bilibili-API-collect `docs/dynamic/all.md`: desc "其他动态时为null"; 10 of the 20 video dynamics
in the real page). A video dynamic (`DYNAMIC_TYPE_AV`) carries its video in
`major.archive{title, desc, stat{play: "39.3万", danmaku}}`, an opus (`MAJOR_TYPE_OPUS`) its text
in `major.opus{title, summary.text}`. A post's text is those parts joined by newlines, in that
order: desc.text, the major's title, its desc (or summary); a part equal to or contained in
another is dropped (desc.text often repeats the title or the description), and so is "-", the
description of a video that has none. `module_stat` counts are integers (exact); the video's
plays are only display text ("39.3万") and are stored as that text, so they read as rounded.
Error codes (the `code` field of every answer): -352 "风控校验失败" with `data.v_voucher` is
Bilibili's risk-control verification (captcha), -412 "请求被拦截" (often HTTP 412) a block,
-101 "账号未登录" sign-in, -509/-799 too many requests — from third-party clients, and [INF]
for the topic endpoints, which were not seen answering them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from crawler.platforms.base import (
    Blocked,
    Captcha,
    Fetch,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    Platform,
    PlatformError,
    RateLimited,
    TagResult,
    check_status,
    load_json,
    mapping,
    shown,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.counts import digit_string_value
from crawler.text.tags import TagRef, normalize_tag
from crawler.text.timestamps import TimestampError, from_epoch_seconds

DETAILS_PATH = "/x/topic/web/details/top"
SEARCH_PATH = "/x/topic/pub/search"
PUBLIC_TOPIC = "https://m.bilibili.com/topic-detail?topic_id={id}"
NOT_FOUND_CODES = {4401031}
CAPTCHA_CODES = {-352}
BLOCK_CODES = {-412, -403}
LOGIN_CODES = {-101}
RATE_CODES = {-509, -799}
SEARCH_PAGE_SIZE = 20
CARDS_PATH = "/x/topic/web/details/cards"
CARDS_PAGE_SIZE = 20


class Bilibili(Platform):
    """Bilibili (app.bilibili.com) topics, by `id:<topic_id>` or by name."""

    name = "bilibili"
    title = "Bilibili"
    default_base_url = "https://app.bilibili.com"
    # the public topic pages live on m./www., the JSON on app./api.; only the JSON is fetched
    hosts = ("app.bilibili.com", "api.bilibili.com")
    backfill = ("topic cards feed (details/cards, sort_by=3 newest) by offset, pub_ts in "
                "seconds: chronological, complete")
    timeline_source = "api"
    counters = {
        "views": "details/top data.top_details.topic_item.view (exact)",
        "posts": "details/top …topic_item.dynamics, the number of 动态 (exact)",
        "discussions": "details/top …topic_item.discuss (exact)",
    }

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.id is not None:
            if not is_topic_id(tag.id):
                raise NotFound(f"Bilibili topic ids are numbers, not {tag.id!r}")
            return self.details_fetch(tag.id)
        keyword = quote(tag.name or "", safe="")
        return Fetch(
            url=self.url(f"{SEARCH_PATH}?keywords={keyword}&page_size={SEARCH_PAGE_SIZE}"
                         "&page_num=1&offset=0"),
            step="search",
            headers=_HEADERS,
        )

    def details_fetch(self, topic_id: str) -> Fetch:
        return Fetch(url=self.url(f"{DETAILS_PATH}?topic_id={topic_id}"), step="details",
                     headers=_HEADERS, state={"topic_id": topic_id})

    def on_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        data = api_data(page)
        items = data.get("topic_items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise LayoutChanged("topic search JSON has no data.topic_items")
        wanted = normalize_tag(tag.name or "")
        for item in items:
            if isinstance(item, dict) and normalize_tag(str(item.get("name", ""))) == wanted:
                topic_id = item.get("id")
                if not is_topic_id(str(topic_id)):
                    raise LayoutChanged(f"topic search item has no numeric id: {shown(topic_id)}")
                return self.details_fetch(str(topic_id))
        names = ", ".join(str(i.get("name")) for i in items[:3] if isinstance(i, dict))
        raise NotFound(f"topic search has no topic named {tag.name!r} ({names or 'no topics'})")

    def on_details(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        data = api_data(page)
        details = data.get("top_details") if isinstance(data, dict) else None
        item = details.get("topic_item") if isinstance(details, dict) else None
        if not isinstance(item, dict):
            raise LayoutChanged("details/top JSON has no data.top_details.topic_item")
        if not item.get("id"):
            raise NotFound("details/top topic_item has no id")
        counts = {field: item.get(key) for field, key in
                  (("views", "view"), ("posts", "dynamics"), ("discussions", "discuss"))}
        if all(value is None for value in counts.values()):
            raise LayoutChanged("topic_item has none of view, dynamics, discuss")
        topic_id = str(item["id"])
        snapshot = {
            "platform": self.name,
            "tag_display": item.get("name") or tag.name or topic_id,
            "tag_id": topic_id,
            # the platform's own share link (m.bilibili.com), as printed in the answer
            "url": item.get("jump_url") or item.get("share_url")
            or PUBLIC_TOPIC.format(id=topic_id),
            "observed_at": page.observed_at,
            "source": "api",
            **{k: v for k, v in counts.items() if v is not None},
        }
        return TagResult(snapshot=snapshot)


    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """The topic's id first (details/top by id, or topic search by name), then its cards."""
        state = {"window": window.as_state()}
        if tag.id is not None:
            if not is_topic_id(tag.id):
                raise NotFound(f"Bilibili topic ids are numbers, not {tag.id!r}")
            fetch = self.details_fetch(tag.id)
            return Fetch(url=fetch.url, step="backfill_topic", headers=_HEADERS,
                         state={**state, "topic_id": tag.id})
        fetch = self.first_fetch(tag)
        return Fetch(url=fetch.url, step="backfill_search", headers=_HEADERS, state=state)

    def cards_fetch(self, topic_id: str, offset: str, state: dict[str, Any]) -> Fetch:
        """One page of the topic's 动态, newest first (sort_by=3)."""
        query = (f"topic_id={topic_id}&page_size={CARDS_PAGE_SIZE}&sort_by=3&source=Web"
                 f"&offset={quote(offset, safe='')}")
        return Fetch(url=self.url(f"{CARDS_PATH}?{query}"), step="backfill", headers=_HEADERS,
                     state={"window": state["window"], "topic_id": topic_id})

    def on_backfill_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        found = self.on_search(page, tag, state)
        return TimelinePage(next_fetch=self.cards_fetch(found.state["topic_id"], "", state))

    def on_backfill_topic(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        snapshot = self.on_details(page, tag, state).snapshot
        return TimelinePage(next_fetch=self.cards_fetch(snapshot["tag_id"], "", state),
                            tag_display=snapshot["tag_display"])

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        data = api_data(page)
        feed = mapping(mapping(data).get("topic_card_list"))
        items = feed.get("items")
        if not isinstance(items, list):
            raise LayoutChanged("details/cards JSON has no data.topic_card_list.items")
        topic_id = state["topic_id"]
        posts = [parse_dynamic(card, topic_id, tag, page) for card in items
                 if isinstance(card, dict) and isinstance(card.get("dynamic_card_item"), dict)]
        offset = feed.get("offset")
        more = bool(feed.get("has_more")) and isinstance(offset, str | int) and str(offset)
        return TimelinePage(posts=posts, oldest_seen=oldest(posts),
                            next_fetch=self.cards_fetch(topic_id, str(offset), state)
                            if more else None)


def parse_dynamic(card: dict[str, Any], topic_id: str, tag: TagRef,
                  page: Page) -> dict[str, Any]:
    """One post from a card's `dynamic_card_item` (`pub_ts` is Unix seconds)."""
    item = card["dynamic_card_item"]
    modules = mapping(item.get("modules"))
    author = mapping(modules.get("module_author"))
    dynamic_id = item.get("id_str")
    if not isinstance(dynamic_id, str) or digit_string_value(dynamic_id) is None:
        raise LayoutChanged(f"a dynamic card has no numeric id_str: {shown(dynamic_id)}")
    try:
        created = from_epoch_seconds(author.get("pub_ts"))
    except TimestampError as exc:
        raise LayoutChanged(f"dynamic {dynamic_id}: module_author.pub_ts: {exc}") from exc
    stat = mapping(modules.get("module_stat"))
    dynamic = mapping(modules.get("module_dynamic"))
    archive = mapping(mapping(dynamic.get("major")).get("archive"))
    plays = mapping(archive.get("stat")).get("play")
    return {
        "platform": "bilibili",
        "post_id": dynamic_id,
        "tag_display": tag.name,
        "tag_id": topic_id,
        "url": f"https://t.bilibili.com/{dynamic_id}",
        "author_id": str(author["mid"]) if author.get("mid") is not None else None,
        "author_name": author.get("name"),
        "text": dynamic_text(dynamic),
        "created_at": created,
        "observed_at": page.observed_at,
        "likes": (stat.get("like") or {}).get("count"),
        "comments": (stat.get("comment") or {}).get("count"),
        "shares": (stat.get("forward") or {}).get("count"),
        # display text ("39.3万"): the normalize rule parses it and marks it rounded
        "plays": plays if isinstance(plays, str | int) and not isinstance(plays, bool) else None,
        "source": "api",
    }


# the description Bilibili shows for a video that has none (4 of the 20 in the real feed page)
EMPTY_DESC = "-"


def dynamic_text(dynamic: dict[str, Any]) -> str | None:
    """A dynamic's text: desc.text, then its video's (or opus's) title and description, each
    part once (see the module docstring); None when it has none."""
    major = mapping(dynamic.get("major"))
    archive, opus = mapping(major.get("archive")), mapping(major.get("opus"))
    candidates = (mapping(dynamic.get("desc")).get("text"),
                  archive.get("title"), archive.get("desc"),
                  opus.get("title"), mapping(opus.get("summary")).get("text"))
    parts = [p.strip() for p in candidates if isinstance(p, str)]
    parts = [p for p in parts if p and p != EMPTY_DESC]
    kept = [p for i, p in enumerate(parts)
            if not any(p in q and (len(q) > len(p) or j < i)
                       for j, q in enumerate(parts) if j != i)]
    return "\n".join(kept) or None


# app.bilibili.com answers browsers' XHR from the topic page; a Referer from it is what they send
_HEADERS = {"Accept": "application/json, text/plain, */*",
            "Referer": "https://www.bilibili.com/"}


def is_topic_id(text: str) -> bool:
    """Topic ids are ASCII digit strings ("²" passes `str.isdigit()`, and is no id)."""
    return digit_string_value(text) is not None


def api_data(page: Page) -> Any:
    """`data` of a Bilibili JSON answer, or the named failure its `code` stands for."""
    try:
        body = load_json(page.text)  # hostile JSON raises UnreadableJSON, not ValueError
    except ValueError:
        check_status(page)
        raise LayoutChanged(f"HTTP {page.status} answer is not JSON") from None
    if not isinstance(body, dict) or "code" not in body:
        check_status(page)
        raise LayoutChanged("answer has no `code` envelope")
    code = body.get("code")
    message = str(body.get("message") or body.get("msg") or "")
    error = _code_error(code, message)
    if error is not None:
        raise error
    check_status(page)
    if code != 0:
        raise PlatformError(f"API code {shown(code)}: {message}".strip())
    return body.get("data")


def _code_error(code: Any, message: str) -> PlatformError | None:
    detail = f"API code {code}: {message}".strip()
    if code in NOT_FOUND_CODES:
        return NotFound(detail)
    if code in CAPTCHA_CODES:
        return Captcha(f"{detail} (risk-control verification, v_voucher)")
    if code in BLOCK_CODES:
        return Blocked(detail)
    if code in LOGIN_CODES:
        return LoginWall(detail)
    if code in RATE_CODES:
        return RateLimited(detail)
    return None
