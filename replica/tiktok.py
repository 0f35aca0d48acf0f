"""TikTok replica: /tag/{name} pages (SSR or client-rendered) and the signed challenge APIs.

Counters as real TikTok serves them (tests/fixtures/real/tiktok/): under the `rounded_counts`
variant every `stats` integer (and its `statsV2` string) is the display-rounded figure, and
under `zero_video_count` (always for #fyp, as captured in 2020 and 2024) `videoCount` is 0
beside the rounded `viewCount`. Without either, the exact truth is served, as before.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

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
    script_json,
    static_file,
)
from replica.signing import SignerState, script, versioned_key
from replica.truth import ANCHOR_AT, Anchor, PlatformTruth, pick, snowflake
from replica.world import (
    LIST_CAP,
    PostTruth,
    TagNotFound,
    TopicTruth,
    World,
    display_count,
    normalize_tag,
)

PLATFORM = "tiktok"
NOT_FOUND_CODE = 10205
NOT_FOUND_MSG = "Couldn't find this hashtag"
# Share of tag-page responses that arrive client-rendered (pytok: TikTok randomly serves a variant
# whose JS fetches challenge/detail); the 30% figure itself is invented [INF].
CSR_SHARE = 0.3
# The X-Bogus key. static/webapp.js assembles the same string at runtime from pieces, so it never
# appears as one literal there; the real X-Bogus algorithm is unknown and this stands in for it.
SIGN_KEY = "byteda_crawler:ih6:v1"
MIN_MS_TOKEN = 16
ITEM_COUNT_MAX = 35  # [INF] TikTok web pages ask for 30 and reject much larger pages
# Tags whose videoCount TikTok answers as 0 beside their views: #fyp in both real captures
# (tiktok-scraper's 2020 mock, TikTokPy#88 in 2024); any tag under the zero_video_count variant
ZERO_VIDEO_TAGS = frozenset({"fyp"})


def tiktok_rounded(n: int) -> int:
    """A counter as TikTok's JSON carries it: rounded for display [INF: the rule is fitted to
    the captures, not documented]. Below 10,000 the figure is whole (8297 shares, 9833 videos);
    below a million it is kept to hundreds (85700, 866000); above, to 0.1 million (1500000,
    179900000, 5314600000000). Halves round up."""
    if n < 10_000:
        return n
    step = 100 if n < 1_000_000 else 100_000
    return (n + step // 2) // step * step


def x_bogus(canonical_query: str, key: str = SIGN_KEY) -> str:
    """X-Bogus for a canonical query ("k=v&k=v", decoded, in order, without X-Bogus)."""
    return "DFSz" + f"{fnv1a32((key + '|' + canonical_query).encode('utf-8')):08x}"


def canonical_query(query: Query) -> str:
    # Decoded pairs make the check immune to how a browser re-escapes characters like ' or ~.
    return "&".join(f"{k}={v}" for k, v in query.pairs if k != "X-Bogus")


def _timestamp(dt: datetime) -> int:
    return int(dt.timestamp())


_TOPIC_DESCS = (
    "",
    "Share your moments with this hashtag.",
    "Watch the latest videos about this topic.",
)


class TikTokTruth(PlatformTruth):
    """TikTok's ground truth: snowflake ids, a description line, many views per video."""

    anchors = {
        # The exact figures are invented [INF] to match "hundreds of millions of views".
        "tiktokrefugee": Anchor(
            name="tiktokrefugee",
            at=ANCHOR_AT,
            views=468_200_000,
            posts=1_143_000,
            participants=802_400,
            t0=datetime(2025, 1, 14, 2, tzinfo=UTC),
            width_hours=22.0,
            tail=0.1,
        ),
    }
    # registered up front so item_list?challengeID= resolves before anyone searched
    catalog = ("tiktokrefugee", "fyp", "xiaohongshu", "booktok", "python", "cooking")
    views_per_post = (150.0, 2500.0)  # TikTok videos gather many views each [INF]

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        return snowflake(birth, seed, platform, key, "topic_id"), None

    def desc(self, seed: int, platform: str, key: str) -> str:
        return pick(_TOPIC_DESCS, seed, platform, key, "desc")


class TikTokApp:
    """Replica of www.tiktok.com tag pages and /api/challenge/* for one World."""

    platform = PLATFORM
    truth = TikTokTruth()  # what replica.world knows about TikTok

    def __init__(self, world: World, prefix: str = "/tiktok") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        # the page script's version (its X-Bogus key) and whether it exposes byted_acrawler
        # (replica/signing.py); X-Bogus carries no time, so nothing expires [INF]
        self.signing = SignerState()

    # -- routing ------------------------------------------------------------------------------

    def kind(self, method: str, path: str) -> str:
        if path.startswith("/tag/"):
            return "tag_page"
        if path.rstrip("/") == "/api/challenge/detail":
            return "api_detail"
        if path.rstrip("/") == "/api/challenge/item_list":
            return "api_item_list"
        if path.startswith("/static/"):
            return "static"
        if path in ("", "/"):
            return "home"
        if path.rstrip("/") == "/login":
            return "login"
        if path.startswith("/private/"):
            return "private"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "tag_page":
            name = path[len("/tag/") :].split("/", 1)[0]
            return self._tag_page(name, path, query) if name else not_found()
        if kind == "api_detail":
            return self._api_detail(path, query)
        if kind == "api_item_list":
            return self._api_item_list(path, query)
        if kind == "static":
            return self._static(path)
        if kind == "home":
            return html_response(200, self._home())
        if kind == "login":
            return html_response(200, self._login_page(query.get("redirect_url", "")))
        return html_response(200, "<!doctype html><title>private</title><p>private area</p>")

    # -- shared -------------------------------------------------------------------------------

    def _login_redirect(self, path: str, query: Query) -> Response:
        original = self.prefix + quote(path) + (f"?{query.raw}" if query.raw else "")
        location = f"{self.prefix}/login?redirect_url={quote(original, safe='')}"
        return respond(302, "", "text/html; charset=utf-8", Location=location)

    def _client_rendered(self, name: str) -> bool:
        variants = self.world.variants(PLATFORM, name)
        if "csr" in variants:
            return True
        if "ssr" in variants:
            return False
        tick = self.world.tick_index()
        return self.world.unit("tiktok-csr", normalize_tag(name), tick) < CSR_SHARE

    def _topic(self, name: str) -> TopicTruth | None:
        try:
            return self.world.topic(PLATFORM, name)
        except TagNotFound:
            return None

    def rounded(self, name: str) -> bool:
        """Whether this tag's counters are served rounded, as real TikTok serves them."""
        variants = self.world.variants(PLATFORM, name)
        return ("rounded_counts" in variants or self.zero_videos(name))

    def zero_videos(self, name: str) -> bool:
        """Whether this tag's videoCount is served as 0 beside its views (the real glitch)."""
        return (normalize_tag(name) in ZERO_VIDEO_TAGS
                or "zero_video_count" in self.world.variants(PLATFORM, name))

    def challenge_info(self, topic: TopicTruth) -> dict[str, Any]:
        views, posts = topic.views, topic.posts
        if self.rounded(topic.tag):
            views, posts = tiktok_rounded(views), tiktok_rounded(posts)
        if self.zero_videos(topic.tag):
            posts = 0
        return {
            "challenge": {
                "id": topic.topic_id,
                "title": topic.name,
                "desc": topic.desc,
                "isCommerce": False,
                "splitTitle": "",
            },
            "stats": {"videoCount": posts, "viewCount": views},
            # [INF] no capture shows a challenge's statsV2; on items it repeats stats
            "statsV2": {"videoCount": str(posts), "viewCount": str(views)},
        }

    @staticmethod
    def item(post: PostTruth, rounded: bool = False) -> dict[str, Any]:
        shown = tiktok_rounded if rounded else int
        stats = {
            "playCount": shown(post.plays),
            "diggCount": shown(post.likes),
            "commentCount": shown(post.comments),
            "shareCount": shown(post.shares),
            "collectCount": shown(post.collects),
        }
        return {
            "id": post.id,
            "desc": post.text,
            "createTime": _timestamp(post.created_at),
            "author": {
                "id": post.author_id,
                "uniqueId": post.author_unique_id,
                "nickname": post.author_nickname,
            },
            "stats": stats,
            "statsV2": {k: str(v) for k, v in stats.items()},
        }

    def _app_context(self) -> dict[str, Any]:
        return {
            "language": "en",
            "region": "US",
            "appId": 1988,
            "appType": "m",
            "user": {},
            "wid": str(int(self.world.unit("tiktok-wid") * 10**19)),
        }

    # -- page ---------------------------------------------------------------------------------

    def _tag_page(self, name: str, path: str, query: Query) -> Response:
        failure = gate(self.world, PLATFORM, name, as_json=False)
        if failure:
            return failure
        variants = self.world.variants(PLATFORM, name)
        if "login_wall" in variants:
            return self._login_redirect(path, query)
        if "captcha" in variants:
            return html_response(200, self._captcha_page())
        topic = self._topic(name)
        if "layout_changed" in variants:
            return html_response(200, self._next_data_page(name, topic))
        if self._client_rendered(name):
            return html_response(200, self._csr_page(name, topic))
        return html_response(200, self._ssr_page(name, topic))

    def _shell(self, title: str, head: str, main: str, scope: dict[str, Any]) -> str:
        data = script_json({"__DEFAULT_SCOPE__": scope})
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title>{NO_ICON}{head}"
            "<style>body{font-family:sans-serif;margin:2em}"
            "[data-e2e=challenge-item]{border-bottom:1px solid #ddd;padding:4px 0}</style>"
            f'</head><body><div id="app"><main data-e2e="challenge-page">{main}</main></div>'
            f'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{data}'
            f'</script><script src="{esc(self.prefix)}/static/webapp.js"></script></body></html>'
        )

    @staticmethod
    def _deep_link(topic: TopicTruth | None) -> str:
        if topic is None:
            return ""
        url = f"snssdk1233://challenge/detail/{topic.topic_id}"
        return f'<meta property="al:android:url" content="{esc(url)}">'

    def _items_html(self, posts: list[PostTruth]) -> str:
        parts = []
        for post in posts:
            href = f"{self.prefix}/@{quote(post.author_unique_id)}/video/{post.id}"
            parts.append(
                f'<div data-e2e="challenge-item"><a href="{esc(href)}">'
                f'<p data-e2e="challenge-item-desc">{esc(post.text)}</p></a>'
                f'<strong data-e2e="video-views">{display_count(post.plays, "en")}</strong></div>'
            )
        return '<div data-e2e="challenge-item-list">' + "".join(parts) + "</div>"

    @staticmethod
    def _not_found_html() -> str:
        return (
            f'<div data-e2e="challenge-not-found"><p>{NOT_FOUND_MSG}</p>'
            "<p>Looking for videos? Try browsing our trending creators, hashtags, and sounds.</p>"
            "</div>"
        )

    def _ssr_page(self, name: str, topic: TopicTruth | None) -> str:
        if topic is None:
            detail = {"statusCode": NOT_FOUND_CODE, "statusMsg": NOT_FOUND_MSG, "challengeInfo": {}}
            scope = {"webapp.app-context": self._app_context(), "webapp.challenge-detail": detail}
            return self._shell(f"#{name} | TikTok", "", self._not_found_html(), scope)
        shown = self.world.posts_for(PLATFORM, name, limit=31)
        posts = shown[:30]
        detail = {
            "statusCode": 0,
            "statusMsg": "",
            "challengeInfo": self.challenge_info(topic),
            "itemList": [self.item(p, self.rounded(name)) for p in posts],
            # where the page's own item_list calls continue when the reader scrolls [INF]
            "hasMore": len(shown) > len(posts) and len(posts) < LIST_CAP,
            "cursor": str(len(posts)),
        }
        scope = {"webapp.app-context": self._app_context(), "webapp.challenge-detail": detail}
        main = (
            f'<h1 data-e2e="challenge-title">#{esc(topic.name)}</h1>'
            f'<h2 data-e2e="challenge-vvcount" title="posts">'
            f"{display_count(topic.posts, 'en')} posts</h2>" + self._items_html(posts)
        )
        return self._shell(f"#{topic.name} | TikTok", self._deep_link(topic), main, scope)

    def _csr_page(self, name: str, topic: TopicTruth | None) -> str:
        # The deep-link meta stays in the head [INF: SEO tags are assumed to be server-rendered
        # in both variants]; counts and items only arrive through the signed APIs.
        scope = {"webapp.app-context": self._app_context()}
        title = f"#{topic.name if topic else name} | TikTok"
        return self._shell(title, self._deep_link(topic), "", scope)

    def _next_data_page(self, name: str, topic: TopicTruth | None) -> str:
        # A plausible redesign [INF]: data moved to a Next.js blob with renamed keys, no h2.
        hashtag: dict[str, Any] = {"name": name}
        if topic is not None:
            hashtag = {
                "hashtagId": topic.topic_id,
                "name": topic.name,
                "metrics": {"videos": topic.posts, "views": topic.views},
            }
        data = script_json({"props": {"pageProps": {"hashtag": hashtag}}, "page": "/tag/[name]"})
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>#{esc(name)} | TikTok</title>{NO_ICON}</head><body>"
            f'<div id="__next"><section class="hashtag-header"><h1>#{esc(name)}</h1></section>'
            f'</div><script id="__NEXT_DATA__" type="application/json">{data}</script>'
            "</body></html>"
        )

    def _captcha_page(self) -> str:
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>TikTok - Verify</title>{NO_ICON}</head><body>"
            '<div id="captcha-verify-container" class="captcha-verify-container">'
            "<p>Verify to continue</p><p>To continue, drag the slider to fit the puzzle</p>"
            "</div></body></html>"
        )

    def _login_page(self, redirect_url: str) -> str:
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Log in | TikTok</title>{NO_ICON}</head><body>"
            '<div id="loginContainer"><h2>Log in to TikTok</h2>'
            f'<form data-redirect="{esc(redirect_url)}"><input name="username">'
            '<input name="password" type="password"></form></div></body></html>'
        )

    def _home(self) -> str:
        # Loading webapp.js here gives clients a page on which byted_acrawler exists, as TikTok-Api
        # does by opening the site root before signing.
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>TikTok - Make Your Day</title>{NO_ICON}</head><body>"
            '<div id="app"><p>TikTok replica</p></div>'
            f'<script src="{esc(self.prefix)}/static/webapp.js"></script></body></html>'
        )

    def _static(self, path: str) -> Response:
        if path != "/static/webapp.js":
            return not_found()
        text = script(static_file("webapp.js").decode("utf-8"), self.signing)
        return respond(200, text, JS, Cache_Control="no-cache")

    # -- API ----------------------------------------------------------------------------------

    def signed(self, query: Query) -> bool:
        """Whether msToken and X-Bogus are what the current script sends; refusals counted."""
        token = query.get("msToken", "")
        bogus = query.get("X-Bogus", "")
        reason = None
        if len(token) < MIN_MS_TOKEN or not bogus:
            reason = "unsigned"
        else:
            canonical = canonical_query(query)
            version = self.signing.version
            if not hmac.compare_digest(bogus, x_bogus(canonical, versioned_key(SIGN_KEY,
                                                                              version))):
                old = any(hmac.compare_digest(bogus, x_bogus(canonical, versioned_key(SIGN_KEY, v)))
                          for v in range(1, version))
                reason = "stale_key" if old else "bad_signature"
        if reason is not None:
            self.signing.refuse(reason)
        return reason is None

    def _api_detail(self, path: str, query: Query) -> Response:
        name = query.get("challengeName", "")
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=True)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, name) if name else {}
        if "login_wall" in variants:
            return self._login_redirect(path, query)
        if not self.signed(query) or "captcha" in variants:
            return empty_response()
        topic = self._topic(name) if name else None
        if topic is None:
            return json_response(
                200,
                {
                    "statusCode": NOT_FOUND_CODE,
                    "status_code": NOT_FOUND_CODE,
                    "statusMsg": NOT_FOUND_MSG,
                    "challengeInfo": {},
                },
            )
        if "layout_changed" in variants:
            return json_response(
                200,
                {
                    "statusCode": 0,
                    "data": {
                        "hashtag": {
                            "hashtagId": topic.topic_id,
                            "name": topic.name,
                            "metrics": {"videos": topic.posts, "views": topic.views},
                        }
                    },
                },
            )
        share = {
            "title": f"#{topic.name} on TikTok",
            "desc": f"{display_count(topic.views, 'en')} views - Discover short videos related "
            f"to #{topic.name} on TikTok.",
        }
        payload = {
            "statusCode": 0,
            "status_code": 0,
            "challengeInfo": self.challenge_info(topic),
            "shareMeta": share,
        }
        return json_response(200, payload)

    def _api_item_list(self, path: str, query: Query) -> Response:
        challenge_id = query.get("challengeID", "")
        name = self.world.lookup(PLATFORM, challenge_id) if challenge_id else None
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=True)
            if failure:
                return failure
        variants = self.world.variants(PLATFORM, name) if name else {}
        if "login_wall" in variants:
            return self._login_redirect(path, query)
        if not self.signed(query) or "captcha" in variants:
            return empty_response()
        try:
            count = int(query.get("count", "30"))
            cursor = int(query.get("cursor", "0"))
        except ValueError:
            return json_response(400, {"statusCode": 400, "statusMsg": "invalid count or cursor"})
        if count < 1 or cursor < 0:
            return json_response(400, {"statusCode": 400, "statusMsg": "invalid count or cursor"})
        count = min(count, ITEM_COUNT_MAX)
        if not name or not self.world.exists(PLATFORM, name) or cursor >= LIST_CAP:
            return json_response(
                200, {"statusCode": 0, "itemList": [], "hasMore": False, "cursor": str(cursor)}
            )
        # One extra post tells whether another page exists.
        posts = self.world.posts_for(PLATFORM, name, limit=cursor + count + 1)
        page = posts[cursor : cursor + count]
        next_cursor = cursor + len(page)
        has_more = len(posts) > next_cursor and next_cursor < LIST_CAP
        payload = {
            "statusCode": 0,
            "itemList": [self.item(p, self.rounded(name)) for p in page],
            "hasMore": has_more,
            "cursor": str(next_cursor),
        }
        return json_response(200, payload)
