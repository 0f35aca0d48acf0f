"""Xiaohongshu replica: topic H5 pages, web search page and the signed edith-style JSON APIs."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import random
import re
import struct
import uuid
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from replica.base import (
    JS,
    NO_ICON,
    Query,
    Response,
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
from replica.truth import (
    ANCHOR_AT,
    ZH_ANIMAL,
    ZH_FOOD,
    Anchor,
    PlatformTruth,
    born,
    byte_pick,
    object_id,
    story_title,
)
from replica.world import LIST_CAP, PostTruth, TagNotFound, TopicTruth, World

PLATFORM = "xiaohongshu"
REAL_HOST = "https://www.xiaohongshu.com"
SEARCH_TOPIC = "/web_api/sns/v1/search/topic"
# The real path of the topic notes feed is unknown [INF]; the shape follows PLATFORMS §1.1.
NOTES_RE = re.compile(r"^/web_api/sns/v1/page/([^/]+)/notes/?$")
# The other forms the feed is known in (crawler/platforms/xiaohongshu.py), one variant each:
# - notes_list_data: the older mobile-web answer of the same path, `data` a bare list of notes
#   (third-party code reads it so), paged by `page`, without totals;
# - notes_recommend_path: the path the one public sample of the feed names,
#   `/api/sns/web/v1/search/recommend` (`?page_id=&sort=&cursor=&page_size=`, query [INF]); the
#   same path answers keyword suggestions (`?keyword=`, `data.sug_items`, as in that sample's
#   repository), which the replica's topic page also fetches;
# - notes_uncaptured: the feed at a path no adapter pattern names [INF, invented], so a crawler
#   captures none; the page renders as usual from it.
# Under the last two the feed has moved: its old path answers 404 for that tag.
RECOMMEND_PATH = "/api/sns/web/v1/search/recommend"
UNCAPTURED_FEED_PATH = "/api/sns/web/v1/topic_feed/page"  # [INF] invented
FEED_VARIANTS = {"notes_list_data": "list", "notes_recommend_path": "recommend",
                 "notes_uncaptured": "uncaptured"}
TOPIC_PAGE_RE = re.compile(r"^/page/topics/([^/]+)/?$")
# Signing key of script version 1 (replica/signing.py: each version has its own). static/xhs.js
# assembles the same string at runtime; the real X-S algorithm (xhshow) is not reproduced, this
# FNV scheme stands in for it. x-S-Common is built as on the real site (see xsc_encode).
SIGN_KEY = "xhs_web-pc_134fe01"
NOTES_PAGE_MAX = 20

# Assets a real topic page loads and a scraper does not need: a cover image per note card, the
# author's avatar, the header logo and a web font. The real ones come from xhscdn.com hosts; the
# replica serves them itself under /assets/ so that nothing leaves 127.0.0.1. The bytes are
# generated. [INF] sizes: covers 30-150 KB, avatars and logo 2-6 KB, the font 100 KB.
# [INF] cache headers: a month
# for images, a year (immutable) for the font. Covers and avatars are noise PNGs, so Chromium
# decodes them; the font is random bytes behind a woff2 magic, so Chromium downloads it and then
# rejects it (the cost of decoding a real font is not modelled) [INF].
ASSETS = "/assets/"
FONT_PATH = "/assets/fonts/xhs-sans.woff2"
LOGO_PATH = "/assets/logo/xhs.png"  # the header logo, on every page
IMAGE_RE = re.compile(r"^/assets/(cover|avatar|logo)/([^/]+)\.png$")
PNG = "image/png"
WOFF2 = "font/woff2"
IMAGE_CACHE = "public, max-age=2592000"  # [INF]
FONT_CACHE = "public, max-age=31536000, immutable"  # [INF]
COVER_BYTES = range(30_000, 150_001, 10_000)  # [INF] a pool of 13 sizes, 30-150 KB
AVATAR_BYTES = range(2_000, 6_001, 1_000)  # [INF] a pool of 5 sizes, 2-6 KB
FONT_BYTES = 100_000  # [INF]

# Error bodies. 461 + Verifytype/Verifyuuid and code 300012 are documented (PLATFORMS §1.4);
# the -101 login text and the -510000 "话题不存在" topic message are invented [INF].
CAPTCHA_BODY = {"code": 461, "success": False, "msg": ""}
# A signature the API gateway refuses: HTTP 406, `X-Kong-Sign: 1`, this body [3P: logs in
# jackwener/xiaohongshu-cli #18 and NanmiCoder/MediaCrawler #755; Cloxl/xhshow #104]
SIGNATURE_REFUSED_BODY = {"code": -1, "success": False}
LOGIN_BODY = {"code": -101, "success": False, "msg": "无登录信息，或登录信息为空"}
IP_BLOCK_BODY = {"code": 300012, "success": False, "msg": "网络连接异常，请检查网络设置或重启试试"}
TOPIC_GONE_BODY = {"code": -510000, "success": False, "msg": "话题不存在"}
BAD_REQUEST_BODY = {"code": -1, "success": False, "msg": "参数错误"}  # [INF]


def _b64json(text: str) -> Any:
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None


# x-S-Common is the site's base64, with its own alphabet, of the UTF-8 JSON
# {s0, s1, x0..x4 (platform and versions), x5: the a1 cookie, x6: X-t, x7: X-s, x8: b1 from
# localStorage, x9: mrc(X-t + X-s + b1), x10: a sign count, …} [V-src MediaCrawler
# media_platform/xhs/playwright_sign.py, xhs_sign.py]. mrc is CRC-32 (the standard table) over
# the first 57 characters, XORed with 0xEDB88320 and read as a signed 32-bit integer (same
# source). That the server checks x5, x6, x7 and x9 is [INF]; the replica does.
XSC_ALPHABET = "ZmserbBoHQtNP+wOcza/LpngG8yJq42KWYj0DSfdikx3VT16IlUAFM97hECvuRX5"
_STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_FROM_XSC = str.maketrans(XSC_ALPHABET, _STD_ALPHABET)
_TO_XSC = str.maketrans(_STD_ALPHABET, XSC_ALPHABET)


def mrc(text: str) -> int:
    """x9 of x-S-Common: CRC-32 of the first 57 characters, XOR 0xEDB88320, signed 32-bit."""
    value = zlib.crc32(text[:57].encode("latin-1", "replace")) ^ 0xEDB88320
    return value - (1 << 32) if value >= 1 << 31 else value


def xsc_encode(payload: dict[str, Any]) -> str:
    """A JSON object in x-S-Common's encoding."""
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(raw).decode("ascii").translate(_TO_XSC)


def xsc_decode(text: str) -> Any:
    """The JSON x-S-Common carries, or None when it is not in that encoding."""
    try:
        return json.loads(base64.b64decode(text.translate(_FROM_XSC), validate=True))
    except (binascii.Error, ValueError):
        return None


def sign_payload(uri: str, body: bytes, x_t: str, key: str = SIGN_KEY) -> str:
    """Hex digest carried in X-S: FNV-1a-32 over key + uri + body + X-T."""
    return f"{fnv1a32(key.encode() + uri.encode() + body + x_t.encode()):08x}"


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def signature_refusal(uri: str, headers: Mapping[str, str], body: bytes,
                      signer: SignerState) -> str | None:
    """Why this call's X-S, X-T and x-S-Common are refused (replica/signing.py REASONS), or
    None when they are what the current script would send for it."""
    x_s = headers.get("x-s", "")
    x_t = headers.get("x-t", "")
    common_raw = headers.get("x-s-common", "")
    if not (x_s and x_t and common_raw):
        return "unsigned"
    payload = _b64json(x_s[4:]) if x_s.startswith("XYW_") else None
    common = xsc_decode(common_raw)
    if not x_t.isdigit() or not isinstance(payload, dict) or not isinstance(common, dict):
        return "bad_signature"
    b1 = common.get("x8")
    a1 = _cookie(headers, "a1")
    if not (common.get("x6") == x_t and common.get("x7") == x_s and isinstance(b1, str)
            and common.get("x9") == mrc(x_t + x_s + b1) and common.get("x5")
            and (a1 is None or common.get("x5") == a1)):
        return "bad_signature"
    given = str(payload.get("payload", ""))
    if not hmac.compare_digest(given, sign_payload(
            uri, body, x_t, versioned_key(SIGN_KEY, signer.version))):
        old = any(hmac.compare_digest(given, sign_payload(uri, body, x_t,
                                                          versioned_key(SIGN_KEY, v)))
                  for v in range(1, signer.version))
        return "stale_key" if old else "bad_signature"
    if signer.expired(int(x_t)):
        return "expired"
    return None


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def noise_png(size: int, seed: int, aspect: float = 1.0) -> bytes:
    """A valid RGB PNG of random pixels, about `size` bytes (noise does not compress)."""
    width = max(1, int((size / (3 * aspect)) ** 0.5))
    height = max(1, int(width * aspect))
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + rnd.randbytes(3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows, 1)) + _png_chunk(b"IEND", b""))


@functools.cache
def _image_pool(kind: str) -> tuple[bytes, ...]:
    # A small pool, picked by a hash of the id: distinct URLs, bounded replica memory and CPU.
    if kind == "cover":
        return tuple(noise_png(n, n, aspect=4 / 3) for n in COVER_BYTES)
    return tuple(noise_png(n, n) for n in AVATAR_BYTES)


@functools.cache
def _font() -> bytes:
    return b"wOF2" + random.Random(FONT_BYTES).randbytes(FONT_BYTES - 4)


def asset(path: str) -> Response:
    """A cover, an avatar, the logo or the web font, with cache headers; else 404."""
    if path == FONT_PATH:
        return respond(200, _font(), WOFF2, Cache_Control=FONT_CACHE)
    match = IMAGE_RE.match(path)
    if match is None:
        return not_found()
    pool = _image_pool(match.group(1))
    body = pool[fnv1a32(match.group(2).encode()) % len(pool)]
    return respond(200, body, PNG, Cache_Control=IMAGE_CACHE)


def _undefined_state(state: dict[str, Any]) -> str:
    # The real page inlines a JS object literal, not JSON: bare `undefined` and \u002F slashes.
    text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    # Escaping every "/" and "<" also keeps "</script>" and "<!--" out of the inline script.
    text = text.replace("/", "\\u002F").replace("<", "\\u003C")
    return text.replace('"__undefined__"', "undefined")


class XiaohongshuTruth(PlatformTruth):
    """Xiaohongshu's ground truth: ObjectId ids, a page id apart from the topic id."""

    anchors = {
        # The January 2025 "TikTok refugees" topic shown as "1.2亿浏览 · 281.2万讨论"; the
        # exact integers behind the display and the curve shape are invented [INF].
        "tiktok难民": Anchor(
            name="TikTok难民",
            at=ANCHOR_AT,
            views=122_480_000,
            posts=2_812_480,
            participants=1_906_300,
            t0=datetime(2025, 1, 14, 8, tzinfo=UTC),
            width_hours=20.0,
            tail=0.08,
        ),
    }
    # registered up front so /page/topics/{page_id} resolves before anyone searched
    catalog = ("TikTok难民", "健身", "Python", "帅哥", "旅行", "美食", "穿搭", "读书")
    views_per_post = (20.0, 150.0)  # an XHS note gathers few views (the anchor gives about 44)

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, str]:
        # The topic id and the page id of its H5 page are different objects (PLATFORMS §1.1).
        topic_id = object_id(birth, seed, platform, key, "topic_id")
        page_id = object_id(birth + 3600, seed, platform, key, "page_id")
        return topic_id, page_id

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        author_id = f"{int(1_600_000_000 + born(d) * 1e8):08x}{d[8:16].hex()}"
        if d[4] < 128:
            nickname = f"小红薯{author_id[-6:].upper()}"
        else:
            nickname = f"爱吃{byte_pick(ZH_FOOD, d, 5)}的{byte_pick(ZH_ANIMAL, d, 6)}"
        return author_id, author_id, nickname

    def post(self, created: int, entropy: int, name: str,
             u: Sequence[float]) -> tuple[str, str, str]:
        # English arrivals rising from 14 Jan 2025 among the Chinese titles (truth.story_title)
        title, co_tag = story_title(created, u, chinese_platform=True)
        text = f"{title} #{name}[话题]#" + (f" #{co_tag}[话题]#" if co_tag != name else "")
        return f"{created & 0xFFFFFFFF:08x}{entropy:016x}", title, text


class XiaohongshuApp:
    """Replica of www.xiaohongshu.com topic pages and the edith topic APIs for one World."""

    platform = PLATFORM
    truth = XiaohongshuTruth()  # what replica.world knows about Xiaohongshu

    def __init__(self, world: World, prefix: str = "/xiaohongshu") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        # the page script's version, signature lifetime and exposure (replica/signing.py)
        self.signing = SignerState()

    # -- routing ------------------------------------------------------------------------------

    def kind(self, method: str, path: str) -> str:
        if path.rstrip("/") == SEARCH_TOPIC:
            return "search_topic"
        if NOTES_RE.match(path):
            return "notes"
        if path.rstrip("/") in (RECOMMEND_PATH, UNCAPTURED_FEED_PATH):
            return "feed_query"
        if TOPIC_PAGE_RE.match(path):
            return "topic_page"
        if path.rstrip("/") == "/search_result":
            return "search_page"
        if path.startswith("/static/"):
            return "static"
        if path.startswith(ASSETS):
            return "font" if path == FONT_PATH else "image"
        if path in ("", "/", "/explore"):
            return "home"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if kind == "search_topic":
            if method != "POST":
                return method_not_allowed("POST")
            return self._search_topic(path, query, headers, body)
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "notes":
            return self._notes(path, query, headers, body)
        if kind == "feed_query":
            return self._feed_query(path, query, headers, body)
        if kind == "topic_page":
            match = TOPIC_PAGE_RE.match(path)
            assert match is not None
            return self._topic_page(match.group(1))
        if kind == "search_page":
            return self._search_page(query)
        if kind in ("image", "font"):
            return asset(path)
        if kind == "static":
            if path != "/static/xhs.js":
                return not_found()
            text = script(static_file("xhs.js").decode("utf-8"), self.signing)
            return respond(200, text, JS, Cache_Control="no-cache")
        state = {"global": {"x": "__undefined__"}}
        return html_response(200, self._shell("小红书 - 你的生活指南", "explore-page", state))

    # -- helpers ------------------------------------------------------------------------------

    def _verify_uuid(self, uri: str, body: bytes) -> str:
        # Deterministic so that tests can compare runs; shaped like a uuid4 as on the real site.
        raw = bytearray(hashlib.sha256(f"{self.world.seed}|{uri}|".encode() + body).digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return str(uuid.UUID(bytes=bytes(raw)))

    def _captcha(self, uri: str, body: bytes) -> Response:
        extra = {"Verifytype": "102", "Verifyuuid": self._verify_uuid(uri, body)}
        return json_response(461, CAPTCHA_BODY, extra)

    def _refused(self, uri: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """The gateway's answer to a call whose signature it refuses (counted by reason), or
        None. A missing or wrong signature is answered 406 with `X-Kong-Sign: 1` [3P, see
        SIGNATURE_REFUSED_BODY]; an old key's and an expired X-t's the same way [INF]. Not the
        captcha (461 with Verifytype): that one is the site's risk control (`_captcha`)."""
        reason = signature_refusal(uri, headers, body, self.signing)
        if reason is None:
            return None
        self.signing.refuse(reason)
        return json_response(406, SIGNATURE_REFUSED_BODY, {"X-Kong-Sign": "1"})

    def _blocked(self, variants: Mapping[str, Any]) -> Response | None:
        if "login_wall" in variants:
            return json_response(200, LOGIN_BODY)
        if "ip_block" in variants:
            return json_response(200, IP_BLOCK_BODY)
        return None

    def _topic(self, name: str) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name)
        except TagNotFound:
            return None

    def topic_dto(self, topic: TopicTruth) -> dict[str, Any]:
        # The link keeps the real host, as the live API does; crawlers rebase it themselves.
        return {
            "smart": False,
            "id": topic.topic_id,
            "name": topic.name,
            "link": f"{REAL_HOST}/page/topics/{topic.page_id}?naviHidden=yes",
            "view_num": topic.views,
            "type": "official",
        }

    def _shell(self, title: str, root_class: str, state: dict[str, Any]) -> str:
        return (
            '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title>{NO_ICON}"
            "<style>@font-face{font-family:'XHS Sans';font-display:swap;"
            f"src:url({esc(self.prefix)}{FONT_PATH}) format('woff2')}}"
            "body{font-family:'XHS Sans',sans-serif;margin:2em}.note-item{padding:4px 0;"
            "border-bottom:1px solid #eee}.summary .meta span{font-weight:bold}"
            ".note-item .cover{display:block;width:240px;height:320px;object-fit:cover}"
            ".note-item .avatar{width:20px;height:20px;border-radius:50%}</style>"
            f'</head><body><header><img class="logo" alt="小红书" width="72" height="24" '
            f'src="{esc(self.prefix)}{LOGO_PATH}"></header>'
            f'<div id="app"><div class="{root_class}">'
            '<div class="loading">加载中…</div></div></div>'
            f"<script>window.__INITIAL_STATE__={_undefined_state(state)}</script>"
            f'<script src="{esc(self.prefix)}/static/xhs.js"></script></body></html>'
        )

    # -- pages --------------------------------------------------------------------------------

    def _topic_page(self, page_id: str) -> Response:
        name = self.world.lookup(PLATFORM, page_id)
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=False)
            if failure:
                return failure
        topic_state: dict[str, Any] = {"pageId": page_id, "name": name or ""}
        feed = self.feed_form(name) if name else "notes"
        if feed != "notes":
            # which feed the replica's page fetches (replica plumbing; the real state is [INF])
            topic_state["feed"] = feed
        state = {"global": {"x": "__undefined__"}, "topic": topic_state}
        title = f"#{name} - 小红书" if name else "小红书"
        return html_response(200, self._shell(title, "topic-page", state))

    def _search_page(self, query: Query) -> Response:
        # [INF] the web search page exists; its topic tab markup is invented.
        keyword = query.get("keyword", "")
        if keyword:
            failure = gate(self.world, PLATFORM, keyword, as_json=False)
            if failure:
                return failure
        state = {
            "global": {"x": "__undefined__"},
            "search": {"keyword": keyword, "type": query.get("type", "topic")},
        }
        return html_response(200, self._shell(f"{keyword} - 小红书搜索", "search-page", state))

    # -- APIs ---------------------------------------------------------------------------------

    def _search_topic(
        self, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        uri = path + (f"?{query.raw}" if query.raw else "")
        try:
            request = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            request = None
        keyword = request.get("keyword") if isinstance(request, dict) else None
        if not isinstance(keyword, str):
            keyword = None
        if keyword:
            failure = gate(self.world, PLATFORM, keyword, as_json=True)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, keyword) if keyword else {}
        refused = self._refused(uri, headers, body)  # the gateway checks before the service
        if refused is not None:
            return refused
        if "captcha" in variants:
            return self._captcha(uri, body)
        blocked = self._blocked(variants)
        if blocked:
            return blocked
        if keyword is None or not isinstance(request, dict):
            return json_response(200, BAD_REQUEST_BODY)
        raw_page = request.get("page")
        page: dict[str, Any] = raw_page if isinstance(raw_page, dict) else {}
        dtos: list[dict[str, Any]] = []
        topic = self._topic(keyword) if keyword.strip() else None
        if topic is not None and page.get("page", 1) == 1:
            dtos.append(self.topic_dto(topic))
            for related in self.world.related(PLATFORM, keyword):
                other = self._topic(related)
                if other is not None:
                    dtos.append(self.topic_dto(other))
            size = page.get("page_size", 20)
            size = size if isinstance(size, int) and not isinstance(size, bool) else 20
            dtos = dtos[: max(1, size)]
        key = "topic_list" if "layout_changed" in variants else "topic_info_dtos"
        payload = {
            "success": True,
            "msg": "成功",
            "code": 0,
            "data": {"result": {"success": True}, key: dtos},
        }
        return json_response(200, payload)

    def _cursor(self, page_id: str, sort: str, offset: int) -> str:
        raw = f"{page_id}:{sort}:{offset}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _offset(self, cursor: str, page_id: str, sort: str) -> int | None:
        if not cursor:
            return 0
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            cur_page, cur_sort, offset = raw.split(":")
            value = int(offset)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if cur_page != page_id or cur_sort != sort or value < 0:
            return None
        return value

    def note(self, post: PostTruth, cursor: str) -> dict[str, Any]:
        return {
            "id": post.id,
            "type": "normal",
            "likes": post.likes,
            "inlikes": False,
            "collects": post.collects,
            "title": post.title,
            "desc": "",
            "user": {"nickname": post.author_nickname, "userid": post.author_id, "images": ""},
            "create_time": int(post.created_at.timestamp()) * 1000,
            "cursor": cursor,
        }

    def feed_form(self, name: str) -> str:
        """Which form of the notes feed a tag's topic page fetches: "notes" (the default),
        "list", "recommend" or "uncaptured" (FEED_VARIANTS)."""
        variants = self.world.variants(PLATFORM, name)
        return next((form for variant, form in FEED_VARIANTS.items() if variant in variants),
                    "notes")

    def _feed_query(
        self, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """The feed addressed by query (`?page_id=`), or keyword suggestions (`?keyword=`)."""
        keyword = query.get("keyword", "")
        if path.rstrip("/") == RECOMMEND_PATH and keyword:
            return self._suggestions(path, query, headers, body, keyword)
        page_id = query.get("page_id", "")
        if not page_id:
            return json_response(200, BAD_REQUEST_BODY)
        return self._notes(path, query, headers, body, page_id=page_id)

    def _suggestions(self, path: str, query: Query, headers: Mapping[str, str], body: bytes,
                     keyword: str) -> Response:
        # The shape of submato/xhscrawl's search_keyword_recommend sample; the entries are the
        # keyword and its related topics [INF].
        uri = path + (f"?{query.raw}" if query.raw else "")
        refused = self._refused(uri, headers, body)
        if refused is not None:
            return refused
        words = [keyword, *self.world.related(PLATFORM, keyword)][:5]
        items = [{"type": "top_note", "text": w, "highlight_flags": [True] * len(w),
                  "search_type": "notes"} for w in words]
        return json_response(200, {"code": 1000, "success": True, "msg": "成功",
                                   "data": {"sug_items": items}})

    def _notes(self, path: str, query: Query, headers: Mapping[str, str], body: bytes,
               page_id: str | None = None) -> Response:
        if page_id is None:
            match = NOTES_RE.match(path)
            assert match is not None
            page_id = match.group(1)
        uri = path + (f"?{query.raw}" if query.raw else "")
        name = self.world.lookup(PLATFORM, page_id)
        if name and NOTES_RE.match(path) and self.feed_form(name) in ("recommend", "uncaptured"):
            # the feed moved for this tag: its old path is gone (a crawler that called it
            # directly must read the topic page instead) [INF, the replica's model of a move]
            return not_found()
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=True)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, name) if name else {}
        refused = self._refused(uri, headers, body)
        if refused is not None:
            return refused
        if "captcha" in variants:
            return self._captcha(uri, body)
        blocked = self._blocked(variants)
        if blocked:
            return blocked
        topic = self._topic(name) if name else None
        if topic is None:
            return json_response(200, TOPIC_GONE_BODY)
        if NOTES_RE.match(path) and self.feed_form(name or "") == "list":
            return self._notes_list(page_id, name or "", query)
        sort = query.get("sort", "hot_desc") or "hot_desc"
        if sort not in ("hot_desc", "time_desc"):  # time_desc is a guess [INF]
            return json_response(200, BAD_REQUEST_BODY)
        try:
            size = int(query.get("page_size", str(NOTES_PAGE_MAX)) or NOTES_PAGE_MAX)
        except ValueError:
            return json_response(200, BAD_REQUEST_BODY)
        size = max(1, min(size, NOTES_PAGE_MAX))
        offset = self._offset(query.get("cursor", ""), page_id, sort)
        if offset is None:
            return json_response(200, BAD_REQUEST_BODY)
        order = "newest" if sort == "time_desc" else "mixed"
        posts = self.world.posts_for(PLATFORM, name or "", limit=offset + size + 1, order=order)
        window = posts[offset : offset + size]
        notes = [
            self.note(p, self._cursor(page_id, sort, offset + i + 1)) for i, p in enumerate(window)
        ]
        end = offset + len(window)
        has_more = len(posts) > end and end < LIST_CAP
        payload: dict[str, Any] = {
            "result": 0,
            "success": True,
            "msg": "",
            "data": {
                "notes": notes,
                "total_note_count": topic.discussions,
                "total_user_count": topic.participants,
                "has_more": has_more,
                "cursor": self._cursor(page_id, sort, end) if has_more else "",
            },
        }
        return json_response(200, payload)

    def _notes_list(self, page_id: str, name: str, query: Query) -> Response:
        """The older mobile-web answer: `data` a bare list of notes, paged by `page`, no totals,
        no cursor (the shape third-party code reads; the fields of a note as in the feed)."""
        try:
            page = int(query.get("page", "1") or 1)
            size = int(query.get("page_size", str(NOTES_PAGE_MAX)) or NOTES_PAGE_MAX)
        except ValueError:
            return json_response(200, BAD_REQUEST_BODY)
        if page < 1:
            return json_response(200, BAD_REQUEST_BODY)
        size = max(1, min(size, NOTES_PAGE_MAX))
        offset = (page - 1) * size
        posts = self.world.posts_for(PLATFORM, name, limit=min(offset + size, LIST_CAP),
                                     order="mixed")
        window = posts[offset : offset + size]
        notes = [self.note(p, self._cursor(page_id, "hot_desc", offset + i + 1))
                 for i, p in enumerate(window)]
        return json_response(200, {"result": 0, "success": True, "msg": "", "data": notes})
