"""Weibo topics: the m.weibo.cn topic container over plain HTTP (no JavaScript, no signature).

Shapes (PLATFORMS.md §4, third-party code and types): `GET m.weibo.cn/api/container/getIndex?
containerid=231522type=1&t=10&q=#{tag}#&page_type=searchall` answers `{ok, data{cardlistInfo,
cards}}`. The headline is `cardlistInfo.cardlist_head_cards[0].head_data`: `title` "#tag#",
`midtext` "阅读2.3亿 讨论4.5万" (reads and discussions, display text only: Weibo gives no raw
integers here, so both are stored as text and read as rounded) and `downtext` "…主持人：{host}".
A super-topic (超话, containerid `100808` + 32 hex digits, addressed `id:100808…`) answers
`data.pageInfo` instead (a real capture, Drelf2018/WeiboSpider test/test.go, 2022): its summary is
`desc_more[0]` "阅读1607.2万　帖子4115　粉丝5810", parts separated by full-width spaces (U+3000);
帖子 is the super-topic's posts, 粉丝 its followers, which no counter holds (not participants: a
follower need not post), so it is not stored. Public posts are `cards[]` with `card_type` 9 (an
int, or the string "9" in the super-topic capture) holding an `mblog`, or nested in
`cards[].card_group[]`; a post shown twice (a super-topic's "评论微博了" cards repeat the post
commented on) is kept once. `mblog.created_at` is "Tue Feb 23 12:28:47 +0800 2021" or relative
text ("2分钟前").
Answers: `{"ok":0,"msg":"这里还没有内容"}` is an empty container (the topic does not exist —
third-party code notes Weibo also says it to some anonymous visitors); `{"ok":-100,"url":
".../signin/..."}` is sign-in; a redirect to the Sina Visitor System is its verification page.
HTTP 432 (third-party: "without a cookie") is read as a block, HTTP 418 as Weibo's rate limit
[INF, widely reported].
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from parsel import Selector

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
    Unsupported,
    check_status,
    load_json,
    mapping,
    shown,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.counts import CountParseError, parse_count, parse_labelled
from crawler.text.tags import TagRef
from crawler.text.timestamps import TimestampError, from_epoch_seconds, from_weibo_display

API_PATH = "/api/container/getIndex"
SEARCH_PAGES = 50  # s.weibo.com lists at most 50 result pages per query
SEARCH_PAGE_SIZE = 10  # posts per result page [INF]
CHINA = timezone(timedelta(hours=8))
_HOST = re.compile(r"主持人\s*[：:]\s*(?P<host>\S.*?)\s*$")
# ASCII digits, and few of them: int() of a 5,000-digit run raises, a huge one overflows
_AGO = re.compile(r"^(?P<n>[0-9]{1,9})\s*(?P<unit>秒|分钟|小时)前$")
_YESTERDAY = re.compile(r"^昨天\s*(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})$")
_AGO_UNITS = {"秒": timedelta(seconds=1), "分钟": timedelta(minutes=1), "小时": timedelta(hours=1)}


SUPER_TOPIC = re.compile(r"100808[0-9a-f]{32}")
# the super-topic's 帖子 tab; the real capture is its 名人动态 tab (`_-_live`), and that the
# 帖子 tab carries the same `pageInfo.desc_more` is [INF]
SUPER_TOPIC_TAB = "_-_feed"
SUMMARY_IGNORED = ("粉丝",)  # a super-topic's followers: no counter holds them


def topic_container(name: str) -> str:
    """The containerid of a topic's search container, e.g. "231522type=1&t=10&q=#旅行#"."""
    return f"231522type=1&t=10&q=#{name}#"


class Weibo(Platform):
    """Weibo (m.weibo.cn) topics, by name; super-topics (超话) by `id:100808…`."""

    name = "weibo"
    title = "Weibo"
    default_base_url = "https://m.weibo.cn"
    # s.weibo.com serves the search a backfill walks (with a base-URL override, from that base)
    hosts = ("m.weibo.cn", "s.weibo.com")
    signin = "optional"  # topic containers usually answer a mobile UA; deeper paging needs SUB
    backfill = ("s.weibo.com search by timescope, one UTC day per query, split into hours when "
                "a day fills the 50-page cap: complete, lower bound only for an hour still "
                "capped; needs the user's session")
    timeline_source = "rendered_dom"  # server-rendered search HTML
    counters = {
        "views": "getIndex cardlist_head_cards[0].head_data.midtext '阅读…', or a super-topic's "
                 "pageInfo.desc_more[0] (rounded display text)",
        "discussions": "… midtext '讨论…' (rounded display text)",
        "posts": "a super-topic's desc_more[0] '帖子…' (display text)",
    }
    # s.weibo.com lists at most 50 result pages per query (weibo-search's FURTHER_THRESHOLD
    # guidance, other scrapers' notes), ten posts a page [INF]
    visibility_cap = SEARCH_PAGES * SEARCH_PAGE_SIZE

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            if tag.id is not None and SUPER_TOPIC.fullmatch(tag.id):
                return self.super_topic_fetch(tag.id)
            raise Unsupported("Weibo topics are addressed by name (#话题#); id: is for "
                              "super-topics (100808 and 32 hex digits)")
        container = quote(topic_container(tag.name), safe="")
        return Fetch(
            url=self.url(f"{API_PATH}?containerid={container}&page_type=searchall"),
            step="topic",
            # what the m.weibo.cn page itself sends with its XHR
            headers={"Accept": "application/json, text/plain, */*",
                     "X-Requested-With": "XMLHttpRequest", "MWeibo-Pwa": "1",
                     "Referer": self.public_topic_url(tag.name)},
        )

    def super_topic_fetch(self, topic_id: str) -> Fetch:
        """The super-topic's container (m.weibo.cn /p/index?containerid=… fetches the same)."""
        container = quote(topic_id + SUPER_TOPIC_TAB, safe="")
        return Fetch(
            url=self.url(f"{API_PATH}?containerid={container}"),
            step="topic",
            headers={"Accept": "application/json, text/plain, */*",
                     "X-Requested-With": "XMLHttpRequest", "MWeibo-Pwa": "1",
                     "Referer": self.url(f"/p/index?containerid={topic_id}")},
        )

    def public_topic_url(self, name: str) -> str:
        return self.url("/search?containerid=" + quote(topic_container(name), safe=""))

    def on_topic(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        body = api_body(page)
        data = mapping(body.get("data"))
        heads = mapping(data.get("cardlistInfo")).get("cardlist_head_cards")
        head = heads[0].get("head_data") if heads and isinstance(heads[0], dict) else None
        info = mapping(data.get("pageInfo"))
        if isinstance(head, dict):
            counts = midtext_counts(head.get("midtext"))
            name = str(head.get("title") or "").strip().strip("#") or (tag.name or "")
            topic_id, url = None, self.public_topic_url(tag.name or name)  # keyed by name
        elif "desc_more" in info:
            topic_id = super_topic_id(info)
            counts = midtext_counts(_first(info.get("desc_more")), what="pageInfo.desc_more[0]")
            name = str(info.get("page_title") or info.get("nick") or "").strip() or (
                tag.name or topic_id)
            printed = info.get("page_url")
            url = printed if isinstance(printed, str) and printed.startswith(
                ("http://", "https://")) else f"{REAL_ORIGIN}/p/index?containerid={topic_id}"
        else:
            raise LayoutChanged("no cardlistInfo.cardlist_head_cards[0].head_data (topic) "
                                "nor pageInfo.desc_more (super-topic)")
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": topic_id,
            "url": url,
            "observed_at": page.observed_at,
            "source": "api",
            "visibility_cap": self.visibility_cap,
        }
        for counter, text in counts.items():
            snapshot[f"{counter}_text"] = text
        posts = [parse_mblog(m, name, page, topic_id) for m in mblogs(data.get("cards"))]
        return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])


    def search_url(self, path: str) -> str:
        """s.weibo.com for the real site; the overridden base (the replica) serves both hosts."""
        if self.base_url == self.default_base_url.rstrip("/"):
            return SEARCH_ORIGIN + path
        return self.url(path)

    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """One search per UTC day of the window, newest day first (weibo-search's approach)."""
        if tag.name is None:
            raise Unsupported("Weibo topics are addressed by name (#话题#), not id:")
        days = [[start.isoformat(), (start + timedelta(days=1)).isoformat(), "day"]
                for start in (datetime.combine(d, datetime.min.time(), UTC)
                              for d in reversed(window.days()))]
        return self._search_fetch(tag.name, days, 1)

    def _search_fetch(self, name: str, slices: list[list[str]], page: int) -> Fetch:
        start, end = (china_hour(datetime.fromisoformat(t)) for t in slices[0][:2])
        scope = f"custom:{start}:{end}"
        query = (f"q={quote(f'#{name}#', safe='')}&typeall=1&suball=1"
                 f"&timescope={quote(scope, safe=':')}&Refer=g&page={page}")
        return Fetch(url=self.search_url(f"{SEARCH_PATH}?{query}"), step="backfill",
                     headers={"Accept": "text/html,application/xhtml+xml",
                              "Referer": SEARCH_ORIGIN + "/"},
                     state={"slices": slices, "page": page})

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        """One page of one timescope's results; a day whose results fill all 50 pages is
        walked again hour by hour, an hour that still fills them is marked capped."""
        check_search_answer(page)
        name = tag.name or ""
        slices, number = state["slices"], int(state["page"])
        start, end = (datetime.fromisoformat(t) for t in slices[0][:2])
        kind = slices[0][2]
        sel = Selector(text=page.text)
        listed = len(sel.css("ul.s-scroll li"))
        if kind == "day" and number == 1 and listed >= SEARCH_PAGES:
            hours = [[(end - timedelta(hours=h + 1)).isoformat(),
                      (end - timedelta(hours=h)).isoformat(), "hour"] for h in range(24)]
            return TimelinePage(next_fetch=self._search_fetch(name, hours + slices[1:], 1))
        reference = server_time(page.text) or page.observed_at
        cards = sel.css("div.card-wrap[mid]")
        posts = [parse_search_card(c, name, page, reference, start, end) for c in cards]
        capped = kind == "hour" and number == 1 and listed >= SEARCH_PAGES
        if cards and sel.css("a.next") and number < min(listed, SEARCH_PAGES):
            after: Fetch | None = self._search_fetch(name, slices, number + 1)
        elif len(slices) > 1:
            after = self._search_fetch(name, slices[1:], 1)
        else:
            after = None
        return TimelinePage(posts=posts, next_fetch=after, oldest_seen=oldest(posts),
                            capped=capped, capped_span=(start, end) if capped else None)


SEARCH_ORIGIN = "https://s.weibo.com"
REAL_ORIGIN = "https://m.weibo.cn"
SEARCH_PATH = "/weibo"
SIGNIN_HINT = "s.weibo.com search needs your signed-in session: --session weibo=cookies.txt"
_SERVERTIME = re.compile(r"\$CONFIG\[['\"]servertime['\"]\]\s*=\s*['\"]?(\d+)")
_COUNT = re.compile(r"(\d+)")
# a display time is to the minute ("N小时前": to the hour); a card further from its query's
# timescope than that is misread, not rounded
_SLACK = timedelta(hours=1)


def china_hour(moment: datetime) -> str:
    """A timescope bound: the China-time hour "2025-01-05-8" (no zero padding, weibo-search)."""
    local = moment.astimezone(CHINA)
    return f"{local:%Y-%m-%d}-{local.hour}"


def server_time(html: str) -> datetime | None:
    """`$CONFIG['servertime']` of a weibo.com page: the server's clock when it rendered it."""
    match = _SERVERTIME.search(html)
    if match is None:
        return None
    try:
        return from_epoch_seconds(match.group(1))
    except TimestampError:
        return None


def check_search_answer(page: Page) -> None:
    """The named failure an s.weibo.com answer stands for, if any."""
    location = page.headers.get("location", "")
    if 300 <= page.status < 400 and location:
        where = urlsplit(location)
        if "visitor" in where.path:
            raise Captcha(f"redirected to the Sina Visitor System ({where.hostname})")
        if "passport" in (where.hostname or "") or "signin" in where.path or "login" in (
                where.hostname or ""):
            raise LoginWall(f"{SIGNIN_HINT} (redirected to {where.hostname}{where.path})")
    if page.status == 432:
        raise Blocked("HTTP 432 (Weibo's answer to requests it will not serve anonymously)")
    if page.status == 418:
        raise RateLimited("HTTP 418 (Weibo's rate limit)")
    check_status(page)
    if "Sina Visitor System" in page.text:
        raise Captcha("the Sina Visitor System verification page")
    sel = Selector(text=page.text)
    if not sel.css("#pl_feedlist_index, div.card-no-result"):
        raise LayoutChanged("s.weibo.com answer has neither a feed list nor a no-result card")


def _count_text(text: str | None) -> int | None:
    """"转发 28" -> 28; "转发" (none yet) -> 0; "1万+" and other text -> None."""
    stripped = re.sub(r"^\s*(转发|评论|赞)?\s*", "", text or "").strip()
    if not stripped:
        return 0
    # counter text: full-width digits read, "²" or a 5,000-digit run does not
    try:
        count = parse_count(stripped)
    except CountParseError:
        return None
    return None if count.approximate else count.value


def parse_search_card(card: Selector, name: str, page: Page, reference: datetime,
                      start: datetime, end: datetime) -> dict[str, Any]:
    """One post from an s.weibo.com `card-wrap`; its time is clamped into the query's scope."""
    mid = card.attrib.get("mid", "")
    content = card.css("div.content")
    author = content.css("div.info a.name")
    href = author.attrib.get("href", "") if author else ""
    uid = urlsplit(href if "//" in href else "//x" + href).path.strip("/").split("/")[0]
    when = content.xpath('./p[@class="from"]/a[1]//text()').getall()
    try:
        created = from_weibo_display("".join(when), reference)
    except TimestampError as exc:
        raise LayoutChanged(f"weibo card {mid}: {exc}") from exc
    if not start - _SLACK <= created < end + _SLACK:
        raise LayoutChanged(f"weibo card {mid}: {created.isoformat()} is outside its timescope "
                            f"{start.isoformat()}..{end.isoformat()}")
    # the timescope proves the hour; the display time only rounds within it
    created = min(max(created, start), end - timedelta(seconds=1))
    text_node = card.css('p[node-type="feed_list_content_full"]') or card.css(
        'p[node-type="feed_list_content"]')
    text = " ".join(text_node[0].xpath("string(.)").get("").split()) if text_node else None
    link = content.xpath('./p[@class="from"]/a[1]/@href').get("")
    path = urlsplit(link if "//" in link else "//x" + link).path
    like = card.css('a[action-type="feed_list_like"] em::text').get()
    return {
        "platform": "weibo",
        "post_id": mid,
        "tag_display": name,
        "tag_id": None,
        "url": f"https://weibo.com{path}" if path.count("/") == 2 else None,
        "author_id": uid or None,
        "author_name": author.attrib.get("nick-name") if author else None,
        "text": text or None,
        "created_at": created,
        "observed_at": page.observed_at,
        "likes": _count_text(like),
        "comments": _count_text(card.css('a[action-type="feed_list_comment"]::text').get()),
        "shares": _count_text(card.css('a[action-type="feed_list_forward"]::text').get()),
        "source": "rendered_dom",
    }


def api_body(page: Page) -> dict[str, Any]:
    """The `ok: 1` JSON answer of getIndex, or the named failure the answer stands for."""
    location = page.headers.get("location", "")
    if 300 <= page.status < 400 and location:
        where = urlsplit(location)
        if "visitor" in where.path or "Sina Visitor System" in page.text:
            raise Captcha(f"redirected to the Sina Visitor System ({where.hostname})")
        if "passport" in (where.hostname or "") or "signin" in where.path:
            raise LoginWall(f"redirected to sign-in ({where.hostname}{where.path})")
    if page.status == 432:
        raise Blocked("HTTP 432 (Weibo's answer to requests it will not serve anonymously)")
    if page.status == 418:
        raise RateLimited("HTTP 418 (Weibo's rate limit)")
    check_status(page)
    try:
        body = load_json(page.text)  # hostile JSON raises UnreadableJSON, not ValueError
    except ValueError:
        if "Sina Visitor System" in page.text:
            raise Captcha("the Sina Visitor System verification page") from None
        raise LayoutChanged(f"HTTP {page.status} answer is not JSON") from None
    if not isinstance(body, dict) or "ok" not in body:
        raise LayoutChanged("answer has no `ok` envelope")
    ok, msg = body.get("ok"), str(body.get("msg") or "")
    if ok == -100:
        target = urlsplit(str(body.get("url") or ""))
        raise LoginWall(f"ok -100: sign-in required ({target.hostname}{target.path})")
    if ok == 0:
        raise NotFound(f"ok 0: {msg or 'empty container'}")
    if ok != 1:
        raise PlatformError(f"ok {shown(ok)}: {msg}".strip())
    return body


def midtext_counts(midtext: Any, what: str = "midtext") -> dict[str, str]:
    """Display text per counter from "阅读2.3亿 讨论4.5万" ({"views": "2.3亿", ...}) or a
    super-topic's "阅读1607.2万　帖子4115　粉丝5810" ({"views": …, "posts": "4115"}; 粉丝 is
    read and left out)."""
    if not isinstance(midtext, str) or not midtext.strip():
        raise LayoutChanged(f"topic head has no {what}")
    try:
        parsed = parse_labelled(midtext, ignore=SUMMARY_IGNORED)
    except CountParseError as exc:
        raise LayoutChanged(f"{what} no longer reads '阅读… 讨论…' or '阅读… 帖子…': "
                            f"{exc}") from exc
    counts = {name: count.text for name, count in parsed.items()
              if name in ("views", "discussions", "posts")}
    if not counts:
        raise LayoutChanged(f"{what} has none of 阅读, 讨论, 帖子: {shown(midtext)}")
    return counts


def _first(value: Any) -> Any:
    """The first element of a JSON list, else None."""
    return value[0] if isinstance(value, list) and value else None


def super_topic_id(info: dict[str, Any]) -> str:
    """The super-topic's id ("100808" + 32 hex digits) from `pageInfo.containerid`
    ("1008081a12…_-_live") or `share_pageid`."""
    for value in (str(info.get("containerid") or "").split("_-_")[0],
                  info.get("share_pageid")):
        if isinstance(value, str) and SUPER_TOPIC.fullmatch(value):
            return value
    raise LayoutChanged(f"pageInfo names no super-topic id: {shown(info.get('containerid'))}")


def topic_host(head_data: dict[str, Any]) -> str | None:
    """The host named in `downtext` ("…主持人：{name}"); not stored: no column holds it yet."""
    match = _HOST.search(str(head_data.get("downtext") or ""))
    return match.group("host") if match else None


def mblogs(cards: Any) -> list[dict[str, Any]]:
    """Every `mblog` of `card_type` 9 (or "9"), at the top level or inside a `card_group`,
    each post once (the first time it is shown)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for mblog in _mblogs(cards):
        mid = str(mblog.get("mid") or mblog.get("idstr") or mblog.get("id") or "")
        if mid and mid in seen:
            continue
        seen.add(mid)
        out.append(mblog)
    return out


def _mblogs(cards: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for card in cards if isinstance(cards, list) else []:
        if not isinstance(card, dict):
            continue
        if card.get("card_type") in (9, "9") and isinstance(card.get("mblog"), dict):
            out.append(card["mblog"])
        out.extend(_mblogs(card.get("card_group")))
    return out


def parse_created_at(text: Any, observed_at: datetime) -> datetime | None:
    """`created_at` as UTC: the absolute form, or relative text measured from `observed_at`.

    Date-only forms ("02-23", "2021-02-23") give None: the time of day would be invented.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        pass
    if text == "刚刚":
        return observed_at
    try:
        if match := _AGO.match(text):
            return observed_at - int(match["n"]) * _AGO_UNITS[match["unit"]]
        if match := _YESTERDAY.match(text):
            day = observed_at.astimezone(CHINA) - timedelta(days=1)
            local = day.replace(hour=int(match["h"]), minute=int(match["m"]), second=0,
                                microsecond=0)
            return local.astimezone(UTC)
    except (OverflowError, ValueError):  # "999999999小时前" (before year 1), "昨天 25:61"
        return None
    return None


def plain_text(mblog: dict[str, Any]) -> str | None:
    """The post's text without Weibo's link markup."""
    raw = mblog.get("raw_text") or mblog.get("text_raw")
    if isinstance(raw, str):
        return raw
    text = mblog.get("text")
    if not isinstance(text, str):
        return None
    flat = Selector(text=f"<div>{text}</div>").xpath("string(.)").get() or ""
    return html.unescape(flat).strip()


def parse_mblog(mblog: dict[str, Any], tag_display: str, page: Page,
                tag_id: str | None = None) -> dict[str, Any] | None:
    """One public post from an `mblog`."""
    mid = mblog.get("mid") or mblog.get("idstr") or mblog.get("id")
    if not mid:
        return None
    user = mapping(mblog.get("user"))
    return {
        "platform": "weibo",
        "post_id": str(mid),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://m.weibo.cn/detail/{mid}",
        "author_id": str(user["id"]) if user.get("id") else None,
        "author_name": user.get("screen_name"),
        "text": plain_text(mblog),
        "created_at": parse_created_at(mblog.get("created_at"), page.observed_at),
        "observed_at": page.observed_at,
        "likes": mblog.get("attitudes_count"),
        "comments": mblog.get("comments_count"),
        "shares": mblog.get("reposts_count"),
        "source": "api",
    }
