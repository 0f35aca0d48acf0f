"""Instagram replica: `GET /api/v1/tags/web_info/?tag_name=` for signed-in sessions only.

Real (PLATFORMS.md §7; tests/fixtures/real/instagram/): `data{id, name, media_count,
formatted_media_count, top, recent}` with `sections[].layout_content.medias[].media`; a `top`
section laid out "one_by_two_left" whose media sit in `one_by_two_item.clips.items[]` and
`fill_items[]` (instagrapi PR #2622, Nimble's #goodvibes example); `media_count` saturating at
2147483647 (#love, "2.1B"); the app endpoint `/api/v1/tags/{tag}/info/` answering the hashtag at
top level with a string id and `"status": "ok"`, also served on web_info under the `app_info`
variant; `x-ig-app-id`, the redirect to `/accounts/login/` without a session (instaloader
treats it as login-required), `checkpoint_required`. Inferred [INF]: which cookie proves a
session (`sessionid`, as browser exports show), the media field names beyond `taken_at`, the
"useragent mismatch" answer without `x-ig-app-id`, the 404 body for an unknown tag,
`formatted_media_count`'s rounding, the number of posts per section and per layout, #love's
true count, and the `layout_changed` stand-in (counts moved under `data.hashtag.post_count`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from replica.base import (
    Query,
    Response,
    gate,
    html_response,
    json_response,
    method_not_allowed,
    not_found,
    respond,
)
from replica.truth import B64URL, PlatformTruth, born, en_names, int_of
from replica.world import PostTruth, TagNotFound, TopicTruth, World

PLATFORM = "instagram"
APP_IDS = {"936619743392459", "124024574287414"}  # web client, iPhone app
PER_ROW = 3  # medias per section: one grid row
RECENT, TOP = 12, 9
# the top tab opens with a one_by_two_left section: one clip beside this many fill items [INF]
FILL_ITEMS = 2
# media_count is a signed 32-bit integer: a larger count answers this (#love)
MEDIA_COUNT_CEILING = 2**31 - 1


def compact(n: int) -> str:
    """formatted_media_count: "870", "12.3K", "1.2M" (truncated) [INF]."""
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            tenths = n * 10 // size
            whole, frac = divmod(tenths, 10)
            return f"{whole}.{frac}{unit}" if frac and whole < 100 else f"{whole}{unit}"
    return f"{n:,}"


def cookies(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


# Instagram media pks: milliseconds since this epoch in the bits above 23 [INF, widely reported]
_EPOCH_MS = 1_314_220_021_721


def instagram_code(pk: int) -> str:
    """Instagram's shortcode (the /p/<code>/ part): the media pk in URL-safe base64 digits."""
    code = ""
    while pk:
        pk, r = divmod(pk, 64)
        code = B64URL[r] + code
    return code or "A"


class InstagramTruth(PlatformTruth):
    """Instagram's ground truth: graph-style hashtag ids, numeric pks, time-ordered media ids."""

    # #love has more posts than media_count can hold; its true count is not public [INF]
    frozen = {"love": {"posts": 2_500_000_000}}

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        # hashtag ids are 17-digit Facebook-graph ids ("17843826142012701")
        return str(17_841_000_000_000_000 + int_of(seed, platform, key) % 10**12), None

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        adj, noun = en_names(d)
        pk = str(int(born(d) * 6e10) + 1_000_000)
        return pk, f"{adj}.{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"

    def post_id(self, created: int, entropy: int) -> str:
        return str(((created * 1000 - _EPOCH_MS) << 23) | (entropy & 0x7FFFFF))


class InstagramApp:
    """Replica of www.instagram.com's tags/web_info API for one World."""

    platform = PLATFORM
    truth = InstagramTruth()  # what replica.world knows about Instagram

    def __init__(self, world: World, prefix: str = "/instagram") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")

    def kind(self, method: str, path: str) -> str:
        if path.rstrip("/") == "/api/v1/tags/web_info":
            return "web_info"
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["api", "v1", "tags"] and parts[4] == "info":
            return "tag_info"
        if path.rstrip("/") == "/accounts/login":
            return "login"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if kind == "login":
            return html_response(200, "<!doctype html><title>Login • Instagram</title>"
                                      "<form id=loginForm><input name=username></form>")
        if kind == "tag_info":
            return self._web_info(query, headers, name=unquote(path.strip("/").split("/")[3]),
                                  app=True)
        return self._web_info(query, headers)

    def _web_info(self, query: Query, headers: Mapping[str, str], name: str | None = None,
                  app: bool = False) -> Response:
        name = query.get("tag_name", "") if name is None else name
        if not name:
            return json_response(400, {"message": "tag_name is required", "status": "fail"})
        failure = gate(self.world, PLATFORM, name, as_json=True)
        if failure:
            return failure
        variants = self.world.variants(PLATFORM, name)
        if not cookies(headers).get("sessionid") or "login_wall" in variants:
            nxt = quote(f"/api/v1/tags/web_info/?tag_name={quote(name, safe='')}", safe="")
            return respond(302, "", "text/html; charset=utf-8",
                           Location=f"{self.prefix}/accounts/login/?next={nxt}")
        if headers.get("x-ig-app-id") not in APP_IDS:
            return json_response(400, {"message": "useragent mismatch", "status": "fail"})
        if "captcha" in variants:
            challenge = f"https://www.instagram.com/challenge/?next={quote('/explore/tags/')}"
            return json_response(400, {"message": "checkpoint_required",
                                       "checkpoint_url": challenge, "lock": False,
                                       "flow_render_type": 0, "status": "fail"})
        try:
            topic = self.world.topic(PLATFORM, name)
        except TagNotFound:
            return json_response(404, {"message": "Page Not Found", "status": "fail"})
        if "layout_changed" in variants:
            return json_response(200, {"data": {"hashtag": {
                "id": topic.topic_id, "tag_name": topic.name,
                "post_count": topic.posts}}, "status": "ok"})
        if app or "app_info" in variants:
            return json_response(200, self._app_info(topic))
        return json_response(200, {"data": self._data(topic), "status": "ok"})

    @staticmethod
    def media(post: PostTruth) -> dict[str, Any]:
        return {
            "pk": post.id,
            "id": f"{post.id}_{post.author_id}",
            "code": instagram_code(int(post.id)),
            "taken_at": int(post.created_at.timestamp()),
            "media_type": 1,
            "user": {"pk": post.author_id, "username": post.author_unique_id,
                     "full_name": post.author_nickname, "is_private": False},
            "caption": {"text": post.text, "created_at": int(post.created_at.timestamp())},
            "like_count": post.likes,
            "comment_count": post.comments,
            "play_count": None,
        }

    def _sections(self, posts: list[PostTruth]) -> list[dict[str, Any]]:
        return [{"layout_type": "media_grid", "feed_type": "media", "layout_content": {
            "medias": [{"media": self.media(p)} for p in posts[i:i + PER_ROW]]}}
            for i in range(0, len(posts), PER_ROW)]

    def _top_sections(self, posts: list[PostTruth]) -> list[dict[str, Any]]:
        """The top tab: a one_by_two_left clips section first, then grid rows."""
        if not posts:
            return []
        clip, fill, rest = posts[0], posts[1:1 + FILL_ITEMS], posts[1 + FILL_ITEMS:]
        first = {"layout_type": "one_by_two_left", "feed_type": "clips", "layout_content": {
            "one_by_two_item": {"clips": {"id": f"clips-{clip.id}", "items": [
                {"media": self.media(clip)}], "more_available": False}},
            "fill_items": [{"media": self.media(p)} for p in fill]}}
        return [first, *self._sections(rest)]

    @staticmethod
    def _media_count(topic: TopicTruth) -> int:
        return min(topic.posts, MEDIA_COUNT_CEILING)

    def _app_info(self, topic: TopicTruth) -> dict[str, Any]:
        """The app endpoint's answer: the hashtag at top level, a string id, no sections."""
        count = self._media_count(topic)
        return {"id": topic.topic_id, "name": topic.name.lower(), "media_count": count,
                "follow_status": 0, "following": 0, "allow_following": 1,
                "subtitle": "See a few top posts each week",
                "formatted_media_count": compact(count), "is_trending": False,
                "status": "ok"}

    def _data(self, topic: TopicTruth) -> dict[str, Any]:
        recent = self.world.posts_for(PLATFORM, topic.tag, limit=RECENT, order="newest")
        top = self.world.posts_for(PLATFORM, topic.tag, limit=TOP, order="mixed")
        count = self._media_count(topic)
        return {
            "id": topic.topic_id,
            "name": topic.name.lower(),
            "media_count": count,
            "formatted_media_count": compact(count),
            "search_result_subtitle": f"{compact(count)} posts",
            "profile_pic_url": "",
            "is_trending": False,
            "allow_following": True,
            "is_following": False,
            "top": {"sections": self._top_sections(top), "more_available": len(top) == TOP,
                    "next_max_id": None, "next_page": 1},
            "recent": {"sections": self._sections(recent),
                       "more_available": len(recent) == RECENT,
                       "next_max_id": f"QVFE{topic.topic_id[-8:]}", "next_page": 1},
        }
