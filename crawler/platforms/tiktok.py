"""TikTok tag pages: `/tag/{name}` server-rendered JSON first, the page's own API when it is not.

Shapes (PLATFORMS.md §2): `<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">` →
`__DEFAULT_SCOPE__["webapp.challenge-detail"]` → `statusCode`, `challengeInfo.challenge{id,title,
desc}`, `stats{videoCount,viewCount}` (ints), `statsV2` (the same as strings), `itemList[]`.
Anonymous visitors sometimes get a variant without that scope whose JavaScript fetches
`/api/challenge/detail/` signed with `X-Bogus`; only the page's script can sign, so for that
tag the crawler calls the API itself, each call signed by the site's own
`byted_acrawler.frontierSign` in a live page (crawler/downloader/signing.py): `api_detail`
reads `challenge/detail`, `api_items` the first `challenge/item_list` page. When signing is
unavailable the tag page is rendered instead and the JSON it received is read (captured XHR).
Not found is `statusCode` 10205 or a hollow `challengeInfo` without an id.

What the numbers are (docs/data.md; real captures in tests/fixtures/real/tiktok/):
- `stats.viewCount` is the figure TikTok rounds for display, served as an integer: 179900000
  beside the share text "179.0m views" (#jeopardy, 2021), 37100000000 beside "37099.0m views"
  (#duett, 2020). Stored as `rounded`.
- `stats.videoCount` comes back 0 (or not at all) beside a non-zero `viewCount`: #fyp in 2020
  and 2024, #duett (tiktok-scraper#375, TikTok-Api#285, TikTokPy#88). That is not a count:
  `posts` is null with a caveat. A non-zero videoCount is rounded like the views
  (750200000 in tiktok-scraper#375).
- Post `diggCount`, `playCount`, `commentCount`, `shareCount` are rounded (1500000, 115500000,
  16600, 16800 in 2021; 866000, 14200000, 18900, 34700 in 2025), and the items' `statsV2`
  strings repeat the rounded figures ("866000", "14200000"): both are stored as `rounded`.
- A challenge's `statsV2` has no public capture: it is read only when present, and taken as
  rounded like `stats` [INF] (on items it is rounded; on user profiles it can be finer).
- A tag page lists a few hundred videos at most (TikTok-Api#948: 466-481 of any tag, never
  500): `visibility_cap`.
Uncertain: `statsV2` on the current tag page is a third-party expectation [INF]; it is read only
when present.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from parsel import Selector

from crawler.platforms.base import (
    Blocked,
    Captcha,
    Fetch,
    LayoutChanged,
    NotFound,
    Page,
    Platform,
    RenderSpec,
    SignSpec,
    TagResult,
    Unsupported,
    check_status,
    load_json,
    shown,
)
from crawler.platforms.tiktok_timeline import TikTokTimeline
from crawler.text.counts import CountParseError, digit_string_value, parse_count
from crawler.text.tags import TagRef
from crawler.text.timestamps import utc_from_epoch

SCOPE = "webapp.challenge-detail"
# the web API's base query [V-src TikTokPy src/tiktokapipy/util/queries.py, 2023-06]; msToken
# and X-Bogus are added when the call is signed
API_QUERY = (("aid", "1988"), ("app_name", "tiktok_web"), ("device_platform", "web_pc"),
             ("region", "US"), ("browser_language", "en-US"))
ITEM_COUNT = 30  # what the web page asks for
NOT_FOUND_CODES = {10205}
DETAIL_API = r"/api/challenge/detail/"
ITEMS_API = r"/api/challenge/item_list/"
# TikTok-Api#948 (2022): "Always less than 500" videos of any tag, 466-481 for count=10000
VISIBILITY_CAP = 500
ROUNDED = "rounded"  # every TikTok counter is a display-rounded integer (module docstring)


class TikTok(TikTokTimeline, Platform):
    """TikTok (www.tiktok.com) hashtag pages."""

    name = "tiktok"
    title = "TikTok"
    color = "#0e7490"  # the report's line colour, brand-like
    default_base_url = "https://www.tiktok.com"
    hosts = ("www.tiktok.com", "tiktok.com", "m.tiktok.com")
    browser = "fallback"
    counters = {
        "views": "challengeInfo.stats.viewCount (rounded for display by TikTok)",
        "posts": "challengeInfo.stats.videoCount (rounded; 0 or missing beside views is a known "
                 "glitch, stored as null); h2 'N posts' text when rendered only",
    }
    visibility_cap: ClassVar[int | None] = VISIBILITY_CAP
    backfill = ("challenge/item_list (signed), page by page from the tag page; the rendered "
                "tag page scrolled when signing is unavailable: ranked and capped, so a lower "
                "bound")
    signing_page = "/"  # the site root loads the script that holds byted_acrawler (TikTok-Api)
    timeline_source = "captured_xhr"
    # the tag page loads item_list pages only when scrolled (crawler/downloader/feedscroll.py)
    timeline_scroll = {"rounds": 15, "quiet_ms": 1500, "end": "[data-feed-end]",
                       "ready": '[data-e2e="challenge-item-list"], '
                                '[data-e2e="challenge-not-found"], #captcha-verify-container, '
                                '[data-e2e="load-error"]'}

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported("TikTok tags are addressed by name, not id:")
        return Fetch(url=self.tag_url(tag.name), step="tag_page")

    def tag_url(self, name: str) -> str:
        return self.url("/tag/" + quote(name, safe=""))

    def on_tag_page(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch | TagResult:
        check_status(page)
        universal = extract_universal_data(page.text)
        if universal is None:
            raise _layout_or_wall(page.text, "no __UNIVERSAL_DATA_FOR_REHYDRATION__ script")
        scope = universal.get("__DEFAULT_SCOPE__", {})
        detail = scope.get(SCOPE)
        if detail is None:
            # the client-rendered variant: only the page's own script can sign the API calls,
            # which a live page does for the crawler; the tag page rendered when it cannot
            rendered = Fetch(
                url=page.url,
                step="rendered",
                render=RenderSpec(capture=(DETAIL_API, ITEMS_API),
                                  wait_for='[data-e2e="challenge-vvcount"]'),
            )
            return Fetch(url=self._api_url("/api/challenge/detail/",
                                           (("challengeName", tag.name or ""),)),
                         step="api_detail", sign=SignSpec("tiktok", fallback=rendered))
        return parse_detail(detail, page, source="embedded_json",
                            items=detail.get("itemList") or [])

    def _api_url(self, path: str, params: tuple[tuple[str, str], ...]) -> str:
        return self.url(path + "?" + urlencode((*API_QUERY, *params), quote_via=quote))

    def on_api_detail(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch | TagResult:
        """`challenge/detail`, fetched signed: the challenge, then its first videos."""
        check_status(page)
        detail = _json_body(page, "challenge/detail")
        challenge = (detail.get("challengeInfo") or {}).get("challenge") or {}
        if detail.get("statusCode") in NOT_FOUND_CODES or not challenge.get("id"):
            return parse_detail(detail, self._tag_page(page, tag), source="api", items=[])
        rendered = Fetch(url=self.tag_url(tag.name or ""), step="rendered",
                         render=RenderSpec(capture=(DETAIL_API, ITEMS_API),
                                           wait_for='[data-e2e="challenge-vvcount"]'))
        items = self._api_url("/api/challenge/item_list/", (
            ("challengeID", str(challenge["id"])), ("count", str(ITEM_COUNT)), ("cursor", "0")))
        return Fetch(url=items, step="api_items", state={"detail": detail},
                     sign=SignSpec("tiktok", fallback=rendered))

    def on_api_items(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        """The first `challenge/item_list` page, fetched signed, with the detail read before."""
        check_status(page)
        data = _json_body(page, "item_list")
        items = data.get("itemList") or []
        if not isinstance(items, list):
            raise LayoutChanged("item_list answered no itemList")
        return parse_detail(state["detail"], self._tag_page(page, tag), source="api",
                            items=items, post_source="api")

    def _tag_page(self, page: Page, tag: TagRef) -> Page:
        """An API answer as the tag's page: the snapshot's URL is the tag page's."""
        return replace(page, url=self.tag_url(tag.name or ""))

    def on_rendered(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        check_status(page)
        details = page.captured_matching(DETAIL_API)
        items_resp = page.captured_matching(ITEMS_API)
        items: list[dict[str, Any]] = []
        for cap in items_resp:
            data = cap.json()
            if isinstance(data, dict):
                items.extend(data.get("itemList") or [])
        for cap in details:
            data = cap.json()
            if cap.status == 200 and data is None:
                raise Blocked("challenge/detail answered an empty body (bot detection)")
            if isinstance(data, dict):
                return parse_detail(data, page, source="captured_xhr", items=items)
        return parse_rendered_dom(page, tag)

    def on_challenge_detail(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        """A `/api/challenge/detail/` answer on its own (or the 2020 `node/share/tag` one, whose
        `challengeInfo` has the same layout): a captured XHR body saved apart from its page.

        The crawl never fetches the API itself (it must be signed in the page); this reads
        such a body when it is the whole page, as a saved capture or an archived record is.
        """
        check_status(page)
        detail = _json_body(page, "challenge/detail")
        return parse_detail(detail, page, source="api", items=detail.get("itemList") or [])


def _json_body(page: Page, what: str) -> dict[str, Any]:
    """The page's body as the JSON object an API answered; an empty 200 is bot detection."""
    if page.status == 200 and not page.text.strip():
        raise Blocked(f"{what} answered an empty body (bot detection)")
    try:
        data = load_json(page.text)
    except ValueError as exc:
        raise LayoutChanged(f"{what} answer is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LayoutChanged(f"{what} answer is not a JSON object")
    return data


_UNIVERSAL_ID = "__UNIVERSAL_DATA_FOR_REHYDRATION__"
_UNIVERSAL_OPEN = f'<script id="{_UNIVERSAL_ID}" type="application/json">'
_SCRIPT_END = re.compile(r"</script", re.I)
# Anything before the script that could make the HTML parser read it as something else: a
# comment or CDATA, a raw-text element (its content is text, not tags), an open <script>.
_RAW_CONTEXT = re.compile(
    r"<!--|<!\[|<(/?)(script|style|title|textarea|noscript|template|xmp|iframe|noembed|"
    r"noframes|plaintext)\b", re.I)


def _universal_script_text(html: str) -> str | None:
    """The rehydration script's text, as `script#__UNIVERSAL_DATA_FOR_REHYDRATION__::text`
    reads it.

    The page as served has the script exactly once, with exactly these attributes, after
    plain markup. That case is read with string searches: building the whole HTML tree
    for one script was a third of the adapter's parse. Any other page (a comment, an open
    raw-text element, a carriage return or NUL the parser would rewrite) goes to the parser.
    """
    start = html.find(_UNIVERSAL_OPEN)
    if start >= 0 and html.count(_UNIVERSAL_ID) == 1 and "\x00" not in html and "\r" not in html:
        body = start + len(_UNIVERSAL_OPEN)
        end = _SCRIPT_END.search(html, body)
        if (end is not None and end.start() > body and "<!--" not in html[body:end.start()]
                and _plain_prefix(html, start)):
            return html[body:end.start()]
    return Selector(text=html).css(f"script#{_UNIVERSAL_ID}::text").get()


def _plain_prefix(html: str, stop: int) -> bool:
    """True when every raw-text element before `stop` is closed and no comment opens."""
    open_: dict[str, int] = {}
    for match in _RAW_CONTEXT.finditer(html, 0, stop):
        if match.group(2) is None:
            return False
        name = match.group(2).lower()
        depth = open_.get(name, 0) + (-1 if match.group(1) else 1)
        if depth < 0 or depth > 1:
            return False
        open_[name] = depth
    return not any(open_.values())


def extract_universal_data(html: str) -> dict[str, Any] | None:
    """The rehydration JSON of a TikTok page, or None when the page has none."""
    raw = _universal_script_text(html)
    if raw is None:
        return None
    try:
        data = load_json(raw)  # hostile JSON (too deep, huge numbers) raises UnreadableJSON
    except ValueError as exc:
        raise LayoutChanged(f"rehydration JSON does not parse: {exc}") from exc
    return data if isinstance(data, dict) else None


def _layout_or_wall(html: str, detail: str) -> Exception:
    sel = Selector(text=html)
    if sel.css("#captcha-verify-container, .captcha_verify_container"):
        return Captcha("verification page ('Verify to continue')")
    if "Couldn't find this hashtag" in html:
        return NotFound("Couldn't find this hashtag")
    return LayoutChanged(detail)


def _counter(stats: dict[str, Any], stats_v2: dict[str, Any], key: str) -> int | str | None:
    """The counter's integer: the int in `stats`, else the digit string in `statsV2`.

    Not an exact count for all that: TikTok rounds both (module docstring).
    """
    value = stats.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        # statsV2 exists because ints above 2^53 lose precision in JavaScript, and a user's
        # statsV2 can be finer than its stats ("97944" beside 97900): trust it when they differ
        # (the usual page repeats the int as its digits, which needs no parse to agree)
        text = stats_v2.get(key)
        if (isinstance(text, str) and text != str(value)
                and digit_string_value(text) not in (None, value)):
            return text
        return value
    text = stats_v2.get(key)
    return text if isinstance(text, str) else value


def _check_counter_text(stats_v2: dict[str, Any], key: str) -> None:
    """A tag's `statsV2` counter must read as a count: a digit string, or counter text such as
    full-width digits. Anything else ("²", 5,000 digits) means the page is not the one this
    adapter reads, so the tag is `layout_changed` instead of a guess."""
    text = stats_v2.get(key)
    if not isinstance(text, str) or digit_string_value(text) is not None:
        return
    try:
        parse_count(text)
    except CountParseError as exc:
        raise LayoutChanged(f"statsV2.{key}: counter {shown(text)} is not a number "
                            f"({exc.reason})") from None


def parse_detail(detail: dict[str, Any], page: Page, *, source: str,
                 items: list[dict[str, Any]], post_source: str | None = None) -> TagResult:
    """A snapshot (and posts) from a `webapp.challenge-detail` scope or an API answer."""
    status = detail.get("statusCode", detail.get("status_code", 0))
    info = detail.get("challengeInfo")
    if status in NOT_FOUND_CODES:
        raise NotFound(detail.get("statusMsg") or "Couldn't find this hashtag")
    if not isinstance(info, dict):
        raise LayoutChanged("challengeInfo missing from challenge detail")
    challenge = info.get("challenge") or {}
    if not challenge.get("id"):
        raise NotFound("challengeInfo has no challenge id (hollow: tag does not exist)")
    stats = info.get("stats")
    stats_v2 = info.get("statsV2") or {}
    if not isinstance(stats, dict) and not stats_v2:
        raise LayoutChanged("challengeInfo has neither stats nor statsV2")
    stats = stats or {}
    if not isinstance(stats, dict) or not isinstance(stats_v2, dict):
        raise LayoutChanged("challengeInfo.stats or statsV2 is not an object")
    for key in ("viewCount", "videoCount"):
        _check_counter_text(stats_v2, key)
    title = challenge.get("title") or ""
    snapshot = {
        "platform": "tiktok",
        "tag_display": title,
        "tag_id": str(challenge["id"]),
        "url": page.url,
        "observed_at": page.observed_at,
        **tag_counters(_counter(stats, stats_v2, "viewCount"),
                       _counter(stats, stats_v2, "videoCount"), "videoCount" in stats_v2
                       or "videoCount" in stats),
        "visibility_cap": VISIBILITY_CAP,
        "source": source,
    }
    posts = [parse_item(item, title, str(challenge["id"]), page, source=post_source)
             for item in items]
    return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])


def _count_of(value: int | str | None) -> int | None:
    """The number a counter stands for: an int, a digit string, or counter text."""
    if value is None or isinstance(value, int):
        return value
    exact = digit_string_value(value)
    if exact is not None:
        return exact
    try:
        return parse_count(value).value
    except CountParseError:
        return None


def tag_counters(views: int | str | None, posts: int | str | None,
                 posts_given: bool) -> dict[str, Any]:
    """A tag's views and posts as stored, each with what it is (module docstring).

    A videoCount of 0, or none at all, beside views above 0 is TikTok's known glitch, not a
    count: posts is null, with a caveat naming which of the two it was.
    """
    counters: dict[str, Any] = {"views": views, "posts": posts}
    if views is not None:
        counters["views_semantics"] = ROUNDED
    shown = _count_of(views) or 0
    if shown > 0 and _count_of(posts) in (0, None):
        counters["posts"] = None
        said = "videoCount 0" if posts_given else "no videoCount"
        counters["caveats"] = [f"posts: {said} beside viewCount > 0 "
                               "(known TikTok glitch, not a count)"]
    elif posts is not None:
        counters["posts_semantics"] = ROUNDED
    return counters


def parse_item(item: dict[str, Any], tag_display: str, tag_id: str,
               page: Page, source: str | None = None) -> dict[str, Any] | None:
    """One public post from an `itemList` entry; its counters are TikTok's rounded figures."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    author = item.get("author") or {}
    stats = item.get("stats") or {}
    stats_v2 = item.get("statsV2") or {}
    created = item.get("createTime")
    unique_id = author.get("uniqueId") or ""
    post_id = str(item["id"])
    return {
        "platform": "tiktok",
        "post_id": post_id,
        "tag_display": tag_display,
        "tag_id": tag_id or None,  # a feed read on its own does not name its challenge
        "url": f"https://www.tiktok.com/@{_quoted(unique_id)}/video/{item['id']}",
        "author_id": str(author.get("id") or "") or None,
        "author_name": author.get("nickname") or unique_id or None,
        # the handle names the author in the URL (crawler/rules/privacy.py hashes it there)
        "author_aliases": [unique_id] if unique_id else None,
        "text": item.get("desc"),
        "created_at": _from_epoch_seconds(created),
        "observed_at": page.observed_at,
        **_post_counters(stats, stats_v2),
        "source": source or ("embedded_json" if not page.rendered else "captured_xhr"),
    }


# what urllib's quote(s) leaves as it is (its always-safe characters and "/"): a handle made
# only of these, as TikTok's are, is its own quoted form
_QUOTE_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")


def _quoted(handle: str) -> str:
    return handle if _QUOTE_SAFE.fullmatch(handle) else quote(handle)


POST_KEYS = {"likes": "diggCount", "comments": "commentCount", "shares": "shareCount",
             "plays": "playCount"}
_POST_COUNTERS = tuple((name, key, f"{name}_semantics") for name, key in POST_KEYS.items())


def _post_counters(stats: dict[str, Any], stats_v2: dict[str, Any]) -> dict[str, Any]:
    """A post's counters, each `rounded` when present (stats and statsV2 alike, module
    docstring)."""
    counters: dict[str, Any] = {}
    for name, key, semantics in _POST_COUNTERS:
        value = _counter(stats, stats_v2, key)
        counters[name] = value
        if value is not None:
            counters[semantics] = ROUNDED
    return counters


def _from_epoch_seconds(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = digit_string_value(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return utc_from_epoch(value)
    return None


_POSTS_TEXT = re.compile(r"^\s*(?P<count>.+?)\s+posts?\s*$", re.I)


def parse_rendered_dom(page: Page, tag: TagRef) -> TagResult:
    """Fallback when no API JSON was captured: the rendered `challenge-vvcount` text."""
    sel = Selector(text=page.text)
    if sel.css("#captcha-verify-container"):
        raise Captcha("verification page ('Verify to continue')")
    if "Couldn't find this hashtag" in page.text:
        raise NotFound("Couldn't find this hashtag")
    h2 = sel.css('h2[data-e2e="challenge-vvcount"]')
    text = " ".join(h2.css("::text").getall()).strip()
    if not text:
        raise LayoutChanged("rendered page has neither captured API JSON nor challenge-vvcount")
    title = " ".join(sel.css('h1[data-e2e="challenge-title"] ::text').getall()).strip()
    match = _POSTS_TEXT.match(text)
    if h2.attrib.get("title", "posts") != "posts" or match is None:
        raise LayoutChanged(f"challenge-vvcount no longer reads 'N posts': {text!r}")
    snapshot = {
        "platform": "tiktok",
        "tag_display": title.lstrip("#") or (tag.name or ""),
        "tag_id": None,
        "url": page.url,
        "observed_at": page.observed_at,
        "posts_text": match.group("count"),
        "posts_seen": len(sel.css('[data-e2e="challenge-item"]')),
        "visibility_cap": VISIBILITY_CAP,
        "source": "rendered_dom",
    }
    return TagResult(snapshot=snapshot)
