"""Douyin replica: client-rendered hashtag and search pages, and the signed challenge APIs.

Real (PLATFORMS §3, MediaCrawler): the API paths and common parameters (`device_platform=webapp`,
`aid=6383`, `channel=channel_pc_web`, `version_code=190600`, `webid`, `msToken` from localStorage
"xmst"), an `a_bogus` on every call that only the page's script can compute, `ch_info{cid,
cha_name, desc, view_count, user_count, create_time}`, `aweme_list[]{aweme_id, desc,
create_time, author, statistics, cha_list}` with `has_more`/`cursor`, `challenge_list[]
.challenge_info`; an empty body or "blocked" for refused calls; the "验证码中间页" verification
document. The a_bogus function is a stand-in (FNV-1a over a key assembled at run time in
static/douyin.js), like the TikTok and Xiaohongshu signers.
[INF]: that the web search page `/search/{keyword}?type=challenge` calls challenge/search (the
endpoint is real, the page that calls it is not documented); the page markup; `status_code` 8
"用户未登录" for the login wall; `ch_info: null` for an unknown cid; the `layout_changed`
redesign; `play_count` served as 0 (third-party: "this field no longer returns real data").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from replica.base import (
    JS,
    NO_ICON,
    Query,
    Response,
    empty_response,
    esc,
    fnv1a32,
    gate,
    html_response,
    json_response,
    method_not_allowed,
    not_found,
    respond,
    static_file,
)
from replica.signing import SignerState, script, versioned_key
from replica.truth import ChineseTruth, int_of
from replica.world import LIST_CAP, PostTruth, TagNotFound, TopicTruth, World

PLATFORM = "douyin"
DETAIL = "/aweme/v1/web/challenge/detail"
AWEME = "/aweme/v1/web/challenge/aweme"
SEARCH = "/aweme/v1/web/challenge/search"
# static/douyin.js assembles the same key at run time
SIGN_KEY = "douyin_web:a_bogus:v1"
MIN_MS_TOKEN = 16
PAGE_MAX = 20
LOGIN_BODY = {"status_code": 8, "status_msg": "用户未登录"}


def a_bogus(canonical_query: str, key: str = SIGN_KEY) -> str:
    """a_bogus for a canonical query ("k=v&k=v", decoded, in order, without a_bogus)."""
    return "DY" + f"{fnv1a32((key + '|' + canonical_query).encode('utf-8')):08x}"


def signature_refusal(query: Query, signer: SignerState) -> str | None:
    """Why a call's msToken and a_bogus are refused (replica/signing.py REASONS), or None."""
    canonical = "&".join(f"{k}={v}" for k, v in query.pairs if k != "a_bogus")
    token, given = query.get("msToken", ""), query.get("a_bogus", "")
    if len(token) < MIN_MS_TOKEN or not given:
        return "unsigned"
    if hmac.compare_digest(given, a_bogus(canonical, versioned_key(SIGN_KEY, signer.version))):
        return None
    old = any(hmac.compare_digest(given, a_bogus(canonical, versioned_key(SIGN_KEY, v)))
              for v in range(1, signer.version))
    return "stale_key" if old else "bad_signature"


def signed(query: Query, signer: SignerState | None = None) -> bool:
    """Whether the call carries what the current script's SDK adds to it."""
    return signature_refusal(query, signer or SignerState()) is None


class DouyinTruth(ChineseTruth):
    """Douyin's ground truth: decimal cids, 11-digit user ids, many views per video."""

    catalog = ("TikTok难民", "美食", "旅行", "健身")
    views_per_post = (200.0, 3000.0)  # a Douyin video gathers views like a TikTok one [INF]
    uid_digits = 11  # [INF]

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        # cids are decimal: 11 digits for old topics, 16 for those made since ~2019 [INF]
        return str(1_600_000_000_000_000 + int_of(seed, platform, key) % 10**14), None


class DouyinApp:
    """Replica of www.douyin.com hashtag pages and /aweme/v1/web/challenge/* for one World."""

    platform = PLATFORM
    truth = DouyinTruth()  # what replica.world knows about Douyin

    def __init__(self, world: World, prefix: str = "/douyin") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        # the SDK's version (its a_bogus key) and whether it hooks the page's fetch, so that
        # any fetch the page makes is signed (replica/signing.py); a_bogus carries no time [INF]
        self.signing = SignerState()

    def kind(self, method: str, path: str) -> str:
        route = path.rstrip("/")
        if route in (DETAIL, AWEME, SEARCH):
            return route.rsplit("/", 1)[1]
        if path.startswith("/hashtag/"):
            return "hashtag_page"
        if path.startswith("/search/"):
            return "search_page"
        if path == "/static/douyin.js":
            return "static"
        if path in ("", "/"):
            return "home"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "static":
            text = script(static_file("douyin.js").decode("utf-8"), self.signing)
            return respond(200, text, JS, Cache_Control="no-cache")
        if kind == "home":
            # the site's front page loads the same bundle and SDK [INF: its markup]
            return self._page(None, "抖音-记录美好生活")
        if kind in ("hashtag_page", "search_page"):
            key = path.split("/", 2)[2].split("/", 1)[0]
            if kind == "hashtag_page":
                name = self.world.lookup(PLATFORM, key)
                return self._page(name, f"#{name or key} - 抖音")
            return self._page(key, f"{key} - 抖音搜索")
        if kind == "detail":
            return self._detail(query)
        if kind == "aweme":
            return self._aweme(query)
        return self._search(query)

    # -- pages --------------------------------------------------------------------------------

    def _page(self, name: str | None, title: str) -> Response:
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=False)
            if failure:
                return failure
            if self.world.has_variant(PLATFORM, name, "captcha"):
                return html_response(200, _VERIFY_PAGE)
        page = (
            '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title>{NO_ICON}"
            "<style>body{font-family:sans-serif;margin:2em}.challenge-stats span"
            "{font-weight:bold}</style></head><body>"
            '<div id="root"><div class="loading">加载中…</div></div>'
            f'<script src="{esc(self.prefix)}/static/douyin.js"></script></body></html>'
        )
        return html_response(200, page)

    # -- APIs ---------------------------------------------------------------------------------

    def _refusal(self, name: str | None, query: Query) -> Response | None:
        """Rate limit, an unsigned call, or a variant's refusal, in the order Douyin checks."""
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=True)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, name) if name else {}
        reason = signature_refusal(query, self.signing)
        if reason is not None:
            self.signing.refuse(reason)
        if reason is not None or "captcha" in variants:
            return empty_response()
        if "ip_block" in variants:
            return respond(200, "blocked", "text/plain; charset=utf-8")
        if "login_wall" in variants:
            return json_response(200, LOGIN_BODY)
        return None

    def _topic(self, name: str | None) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name) if name else None
        except TagNotFound:
            return None

    def _envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        now_ms = int(self.world.now().timestamp() * 1000)
        logid = hashlib.sha256(f"{self.world.seed}|{now_ms}".encode()).hexdigest()[:34].upper()
        return {"status_code": 0, **payload,
                "extra": {"now": now_ms, "logid": logid, "fatal_item_ids": []},
                "log_pb": {"impr_id": logid}}

    def challenge_info(self, topic: TopicTruth) -> dict[str, Any]:
        created = 1_500_000_000 + int(self.world.unit(PLATFORM, topic.topic_id, "ctime") * 2e8)
        return {
            "cid": topic.topic_id,
            "cha_name": topic.name,
            "desc": "",
            "view_count": topic.views,
            "user_count": topic.participants,
            "create_time": created,
            "type": 1,
            "is_commerce": False,
            "share_info": {
                "share_url": f"https://www.iesdouyin.com/share/challenge/{topic.topic_id}/"},
        }

    def _detail(self, query: Query) -> Response:
        name = self.world.lookup(PLATFORM, query.get("ch_id", ""))
        refusal = self._refusal(name, query)
        if refusal:
            return refusal
        topic = self._topic(name)
        if topic is None:
            return json_response(200, self._envelope({"ch_info": None}))
        info = self.challenge_info(topic)
        if self.world.has_variant(PLATFORM, topic.name, "layout_changed"):
            redesigned = {"id": topic.topic_id, "title": topic.name,
                          "stats": {"plays": topic.views, "creators": topic.participants}}
            return json_response(200, self._envelope({"challenge_detail": redesigned}))
        return json_response(200, self._envelope({"ch_info": info}))

    @staticmethod
    def aweme(post: PostTruth, topic: TopicTruth) -> dict[str, Any]:
        return {
            "aweme_id": post.id,
            "desc": post.text,
            "create_time": int(post.created_at.timestamp()),
            "author": {"uid": post.author_id, "nickname": post.author_nickname,
                       "unique_id": "", "sec_uid": "MS4wLjABAAAA" + post.author_id},
            "statistics": {"aweme_id": post.id, "digg_count": post.likes,
                           "comment_count": post.comments, "share_count": post.shares,
                           "collect_count": post.collects, "play_count": 0},
            "cha_list": [{"cid": topic.topic_id, "cha_name": topic.name}],
        }

    def _aweme(self, query: Query) -> Response:
        name = self.world.lookup(PLATFORM, query.get("ch_id", ""))
        refusal = self._refusal(name, query)
        if refusal:
            return refusal
        try:
            cursor = max(0, int(query.get("cursor", "0") or 0))
            count = max(1, min(PAGE_MAX, int(query.get("count", "20") or 20)))
        except ValueError:
            return json_response(200, {"status_code": 2, "status_msg": "参数错误"})
        topic = self._topic(name)
        if topic is None or cursor >= LIST_CAP:
            return json_response(200, self._envelope(
                {"aweme_list": [], "has_more": 0, "cursor": cursor}))
        posts = self.world.posts_for(PLATFORM, topic.name, limit=cursor + count + 1)
        window = posts[cursor:cursor + count]
        end = cursor + len(window)
        more = len(posts) > end and end < LIST_CAP
        return json_response(200, self._envelope({
            "aweme_list": [self.aweme(p, topic) for p in window],
            "has_more": int(more), "cursor": end}))

    def _search(self, query: Query) -> Response:
        keyword = query.get("keyword", "").strip()
        refusal = self._refusal(keyword or None, query)
        if refusal:
            return refusal
        found: list[dict[str, Any]] = []
        topic = self._topic(keyword or None)
        if topic is not None:
            found.append({"challenge_info": self.challenge_info(topic)})
            for related in self.world.related(PLATFORM, keyword):
                other = self._topic(related)
                if other is not None:
                    found.append({"challenge_info": self.challenge_info(other)})
        return json_response(200, self._envelope(
            {"challenge_list": found, "has_more": 0, "cursor": len(found), "keyword": keyword}))


_VERIFY_PAGE = (
    '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>验证码中间页</title>'
    f"{NO_ICON}</head><body>"
    '<div id="captcha_container" class="captcha_verify_container">'
    "<p>请完成下列验证后继续</p><p>拖动滑块完成拼图</p></div></body></html>"
)
