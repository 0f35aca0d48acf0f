"""Douyin hashtags: the signed `challenge/detail` JSON, fetched in a live page or rendered.

Shapes (PLATFORMS.md §3): `GET /aweme/v1/web/challenge/detail/?ch_id={cid}&query_type=0` plus
the common parameters (`device_platform=webapp`, `aid=6383`, `webid`, `msToken` from localStorage
"xmst") and an `a_bogus` signature that the site's own script computes in the browser
(MediaCrawler), so the hashtag page `/hashtag/{cid}` is rendered in Chromium and its answers are
captured: `ch_info{cid, cha_name, view_count, user_count}` (exact integers; older answers call it
`challenge_info`) and the feed `challenge/aweme/` → `aweme_list[]` (posts). With signing
sessions (crawler/downloader/signing.py) the same calls are made as `fetch()`es inside a live
page of the site, whose SDK signs them (`in_page_fetch`; steps `api_search`, `api_detail`,
`api_aweme`), with no page navigation per tag; the pages are rendered when that is
unavailable. A name is resolved
through Douyin's own challenge search, `/aweme/v1/web/challenge/search/?keyword=` →
`challenge_list[].challenge_info`, called by the search page [INF: which real page calls it is
not documented; `/search/{name}?type=challenge` is assumed]. Refused calls answer an empty body
or "blocked" (MediaCrawler); the verification page is the "验证码中间页" document.
[INF]: `user_count` is read as participants (users who posted with the tag; TikHub's docs of the
relayed answer call it 话题参与人数, Douyin's own UI label is unverified); `status_code` 8 as
sign-in; `ch_info: null` as an unknown cid; the page's header "1.2亿次播放 · 3.4万人参与" and its
class names (used only when no JSON was captured).
What each number is: `view_count` and `user_count` are stored as exact integers [INF]: no public
capture of Douyin's `challenge/detail` was found (docs/platforms.md lists the search), but
Douyin's challenge objects hold them at full precision (1595798 and 115 in a 2020 challenge
search answer, tests/fixtures/real/douyin/), as does TikTok's app `ch_info` (345523145, 9572),
unlike TikTok's web `stats.viewCount`, which is display-rounded. The
header fallback is display text, rounded ("1.2亿"). `statistics.play_count` is ignored: it is 0
in a 2019 Douyin answer beside digg_count 232733 (zbfzn/douyin-clear-php#7) and third-party code
says the web API always answers 0; likes, comments and shares are full-precision integers there.
No cap on the posts visible under a hashtag is documented (`visibility_cap` stays unset).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

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
    RateLimited,
    RenderSpec,
    SignSpec,
    TagResult,
    check_status,
    load_json,
    mapping,
    shown,
)
from crawler.text.counts import CountParseError, digit_string_value, parse_labelled
from crawler.text.tags import TagRef, normalize_tag
from crawler.text.timestamps import utc_from_epoch

DETAIL_API = r"/aweme/v1/web/challenge/detail/"
AWEME_API = r"/aweme/v1/web/challenge/aweme/"
SEARCH_API = r"/aweme/v1/web/challenge/search/"
LOGIN_CODES = {8}
# the web API's common query [V-src MediaCrawler media_platform/douyin/client.py]; webid and
# msToken are the page's own, added in the page (crawler/downloader/signing_sites.py)
COMMON_QUERY = (("device_platform", "webapp"), ("aid", "6383"), ("channel", "channel_pc_web"),
                ("version_code", "190600"), ("version_name", "19.6.0"), ("pc_client_type", "1"),
                ("cookie_enabled", "true"), ("platform", "PC"))
_END_STATES = ".challenge-header, .challenge-error, .login-panel, #captcha_container, .topic-v2"


class Douyin(Platform):
    """Douyin (www.douyin.com) hashtags, by `id:<cid>` or by name."""

    name = "douyin"
    title = "Douyin"
    default_base_url = "https://www.douyin.com"
    hosts = ("www.douyin.com", "douyin.com")
    browser = "always"
    signin = "optional"  # hashtag pages answer anonymous visitors with fresh cookies
    backfill = ("none (not implemented: the challenge/aweme feed is signed in-page and ranked, "
                "like TikTok's; it would give lower bounds only)")
    counters = {
        "views": "challenge/detail ch_info.view_count (exact [INF]); header '…次播放' as "
                 "fallback (rounded)",
        "participants": "ch_info.user_count (exact [INF]; [INF] meaning); header '…人参与' as "
                        "fallback (rounded)",
    }
    signing_page = "/"  # the front page loads the site's SDK [INF]

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.id is not None:
            if digit_string_value(tag.id) is None:
                raise NotFound(f"Douyin cids are numbers, not {tag.id!r}")
            return self._detail_api(tag.id)
        return Fetch(url=self._api_url("/aweme/v1/web/challenge/search/",
                                       (("keyword", tag.name or ""), ("cursor", "0"),
                                        ("count", "20"))),
                     step="api_search", sign=SignSpec("douyin", fallback=self._search_page(tag)))

    def _api_url(self, path: str, params: tuple[tuple[str, str], ...]) -> str:
        return self.url(path + "?" + urlencode((*COMMON_QUERY, *params), quote_via=quote))

    def _detail_api(self, cid: str) -> Fetch:
        return Fetch(url=self._api_url("/aweme/v1/web/challenge/detail/",
                                       (("ch_id", cid), ("query_type", "0"))),
                     step="api_detail", state={"cid": cid},
                     sign=SignSpec("douyin", fallback=self.hashtag_fetch(cid)))

    def on_api_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        """The challenge search's answer, fetched in the page: the hashtag named so."""
        check_status(page)
        return self._detail_api(_cid_named(api_json(_as_captured(page)), tag))

    def on_api_detail(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        """`challenge/detail`, fetched in the page: checked, then the hashtag's first videos."""
        check_status(page)
        data = api_json(_as_captured(page))
        self._challenge_result(data, page, tag, state["cid"], [], "api")  # fails as it would
        cid = state["cid"]
        return Fetch(url=self._api_url("/aweme/v1/web/challenge/aweme/", (
                         ("ch_id", cid), ("query_type", "0"), ("sort_type", "0"),
                         ("cursor", "0"), ("count", "20"))),
                     step="api_aweme", state={"cid": cid, "detail": data},
                     sign=SignSpec("douyin", fallback=self.hashtag_fetch(cid)))

    def on_api_aweme(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        """The hashtag's first videos, fetched in the page, with the detail read before."""
        check_status(page)
        try:
            awemes = api_json(_as_captured(page)).get("aweme_list") or []
        except PlatformError:
            awemes = []  # the counters are in hand; a refused feed only costs the posts
        return self._challenge_result(state["detail"], page, tag, state["cid"], awemes, "api")

    def _search_page(self, tag: TagRef) -> Fetch:
        return Fetch(
            url=self.url(f"/search/{quote(tag.name or '', safe='')}?type=challenge"),
            step="search",
            render=RenderSpec(capture=(SEARCH_API,), wait_for=".challenge-list, .search-empty, "
                              + _END_STATES),
        )

    def hashtag_fetch(self, cid: str) -> Fetch:
        return Fetch(url=self.url(f"/hashtag/{cid}"), step="hashtag",
                     render=RenderSpec(capture=(DETAIL_API, AWEME_API), wait_for=_END_STATES),
                     state={"cid": cid})

    def on_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        check_status(page)
        searches = page.captured_matching(SEARCH_API)
        if not searches:
            raise _dom_failure(page, "the search page fetched no challenge search JSON")
        return self.hashtag_fetch(_cid_named(api_json(searches[-1]), tag))

    def on_hashtag(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        check_status(page)
        cid = state["cid"]
        details = page.captured_matching(DETAIL_API)
        if not details:
            return parse_header(page, tag, cid, self.url(f"/hashtag/{cid}"))
        awemes: list[Any] = []
        for cap in page.captured_matching(AWEME_API):
            try:
                feed = api_json(cap)
            except PlatformError:
                continue  # the counters are in hand; a refused feed only costs the posts
            awemes.extend(feed.get("aweme_list") or [])
        return self._challenge_result(api_json(details[-1]), page, tag, cid, awemes,
                                      "captured_xhr")

    def _challenge_result(self, data: dict[str, Any], page: Page, tag: TagRef, cid: str,
                          awemes: list[Any], source: str) -> TagResult:
        """The snapshot (and posts) from a `challenge/detail` answer and the feed's videos."""
        key = "ch_info" if "ch_info" in data else "challenge_info"
        if key not in data:
            raise LayoutChanged("challenge/detail JSON has neither ch_info nor challenge_info")
        info = data[key]
        if not isinstance(info, dict) or not info.get("cid"):
            raise NotFound(f"challenge/detail has no {key} for cid {cid} (no such hashtag)")
        counts = {"views": info.get("view_count"), "participants": info.get("user_count")}
        if not any(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
            raise LayoutChanged(f"{key} has neither view_count nor user_count")
        name = str(info.get("cha_name") or tag.name or cid)
        snapshot = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": str(info["cid"]),
            "url": self.url(f"/hashtag/{info['cid']}"),
            "observed_at": page.observed_at,
            "source": source,
            **{k: v for k, v in counts.items() if v is not None},
        }
        for counter, value in counts.items():
            if isinstance(value, int) and not isinstance(value, bool):
                snapshot[f"{counter}_semantics"] = "exact"  # [INF], see the module docstring
        posts: list[dict[str, Any]] = []
        for aweme in awemes:
            post = parse_aweme(aweme, name, snapshot["tag_id"], page, source)
            if post is not None:
                posts.append(post)
        return TagResult(snapshot=snapshot, posts=posts)


def _as_captured(page: Page) -> Captured:
    """An API answer fetched in a live page, read as the same answer captured from a render."""
    return Captured(url=page.url, status=page.status, headers=page.headers, body=page.text)


def _cid_named(data: dict[str, Any], tag: TagRef) -> str:
    """The cid of the hashtag a challenge search answer names exactly as the tag."""
    if "challenge_list" not in data:
        raise LayoutChanged("challenge search JSON has no challenge_list")
    wanted = normalize_tag(tag.name or "")
    names = []
    for entry in data.get("challenge_list") or []:
        info = entry.get("challenge_info") if isinstance(entry, dict) else None
        if not isinstance(info, dict):
            continue
        names.append(str(info.get("cha_name")))
        if normalize_tag(str(info.get("cha_name", ""))) == wanted:
            cid = str(info.get("cid", ""))
            if digit_string_value(cid) is None:
                raise LayoutChanged(f"challenge search entry has no numeric cid: {shown(cid)}")
            return cid
    listed = ", ".join(names[:3]) or "no hashtags"
    raise NotFound(f"challenge search has no hashtag named {tag.name!r} ({listed})")


def api_json(cap: Captured) -> dict[str, Any]:
    """A captured Douyin API answer as JSON, or the named failure it stands for."""
    path = urlsplit(cap.url).path
    if cap.status == 429:
        raise RateLimited(f"HTTP 429 from {path}")
    if cap.status >= 400:
        raise Blocked(f"HTTP {cap.status} from {path}")
    body = cap.body.strip()
    if body in ("", "blocked"):
        # MediaCrawler: how Douyin refuses a call whose a_bogus/msToken or IP it distrusts
        raise Blocked(f"{path} answered {body or 'an empty body'!r}: request refused")
    try:
        data = load_json(body)  # hostile JSON raises UnreadableJSON, not ValueError
    except ValueError as exc:
        raise LayoutChanged(f"{path} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise LayoutChanged(f"{path} answered {type(data).__name__}, not an object")
    code = data.get("status_code", 0)
    if code in LOGIN_CODES:
        raise LoginWall(f"status_code {code}: {data.get('status_msg') or 'sign-in required'}")
    if code != 0:
        raise PlatformError(f"status_code {shown(code)}: {data.get('status_msg') or ''}".strip())
    return data


def parse_aweme(aweme: Any, tag_display: str, tag_id: str, page: Page,
                source: str = "captured_xhr") -> dict[str, Any] | None:
    """One public post from an `aweme_list` entry."""
    if not isinstance(aweme, dict) or not aweme.get("aweme_id"):
        return None
    author = mapping(aweme.get("author"))
    stats = mapping(aweme.get("statistics"))
    created = aweme.get("create_time")
    return {
        "platform": "douyin",
        "post_id": str(aweme["aweme_id"]),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://www.douyin.com/video/{aweme['aweme_id']}",
        "author_id": str(author.get("uid") or "") or None,
        "author_name": author.get("nickname"),
        "text": aweme.get("desc"),
        "created_at": (utc_from_epoch(created) if isinstance(created, int)
                       and not isinstance(created, bool) and created > 0 else None),
        "observed_at": page.observed_at,
        "likes": stats.get("digg_count"),
        "comments": stats.get("comment_count"),
        "shares": stats.get("share_count"),
        "source": source,
    }


def parse_header(page: Page, tag: TagRef, cid: str, url: str) -> TagResult:
    """Fallback when no API JSON was captured: the rendered "…次播放 · …人参与" line."""
    sel = Selector(text=page.text, type="html")
    stats = sel.css(".challenge-header .challenge-stats")
    if not stats:
        raise _dom_failure(page, "hashtag page has neither captured JSON nor a stats line")
    text = "".join(stats[0].css("::text").getall())
    try:
        parsed = parse_labelled(text)
    except CountParseError as exc:
        raise LayoutChanged(f"hashtag stats line no longer parses: {exc}") from exc
    title = "".join(sel.css(".challenge-header h1 ::text").getall()).strip().lstrip("#")
    snapshot: dict[str, Any] = {
        "platform": "douyin",
        "tag_display": title or tag.name or cid,
        "tag_id": cid,
        "url": url,
        "observed_at": page.observed_at,
        "source": "rendered_dom",
    }
    for counter in ("views", "participants"):
        if counter in parsed:
            snapshot[f"{counter}_text"] = parsed[counter].text
            # "1.2亿" is rounded display text; a short number such as "857" is shown exactly
            snapshot[f"{counter}_semantics"] = ("rounded" if parsed[counter].approximate
                                                else "exact")
    return TagResult(snapshot=snapshot)


def _dom_failure(page: Page, detail: str) -> PlatformError:
    sel = Selector(text=page.text, type="html")
    title = (sel.css("title::text").get() or "").strip()
    if title == "验证码中间页" or sel.css("#captcha_container"):
        return Captcha("verification page (验证码中间页)")
    for cap in page.captured:
        try:
            api_json(cap)
        except PlatformError as exc:
            return exc
    if sel.css(".login-panel"):
        return LoginWall("sign-in panel shown (扫码登录)")
    error = " ".join(sel.css(".challenge-error ::text").getall()).strip()
    if "不存在" in error:
        return NotFound(error)
    return LayoutChanged(detail)
