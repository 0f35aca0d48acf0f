"""Instagram hashtags: `GET /api/v1/tags/web_info/?tag_name=` with the user's own session.

Shapes (PLATFORMS.md §7; real captures in tests/fixtures/real/instagram/): the web answer is
`{"data": {id, name, media_count, formatted_media_count, top{sections}, recent{sections}},
"status": "ok"}` (instaloader reads `data`; the 2022 `?__a=1` answer had the same `data` with
an integer `id`), or the legacy `graphql.hashtag{edge_hashtag_to_media{count, edges[].node}}`.
The app endpoint `/api/v1/tags/{tag}/info/` answers the same hashtag at top level, without
`data`, with a string `id` and `"status": "ok"` (Nimble's documented answer for #goodvibes):
accepted too. Posts come from `recent` then `top` `sections[].layout_content`: `medias[]`,
and in top sections also `one_by_two_item.clips.items[]` and `fill_items[]` (instagrapi PR
#2622; Nimble's #goodvibes sections), each `{media: {pk, code, taken_at, user, caption,
like_count, comment_count, play_count}}`, deduplicated by post id; legacy GraphQL nodes give
`id`, `shortcode`, `taken_at_timestamp`, `owner.id`, `edge_liked_by`, `edge_media_to_comment`.

What `media_count` is: an exact integer that counts private posts too (instaloader: it "might
include private posts"), so more than anyone can see; and it saturates at 2147483647, the
largest 32-bit integer (#love answers exactly that, "2.1B"): a cap, not a count, so `posts` is
null, `posts_semantics` "capped", `posts_text` the raw figure, with a caveat.

The web app id goes in `x-ig-app-id`. Sign-in is required: without a `sessionid` cookie
Instagram redirects to `/accounts/login/`, reported as `login_wall` naming
`--session instagram=cookies.txt`; `{"require_login": true}` means the same.
`checkpoint_required` (the account must be verified in a browser) is `captcha`; HTTP 404 is
`not_found` (its body is [INF]); a hashtag without `media_count` is `layout_changed`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from crawler.platforms.base import (
    Captcha,
    Fetch,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    Platform,
    TagResult,
    Unsupported,
    check_status,
    load_json,
    mapping,
)
from crawler.text.tags import TagRef
from crawler.text.timestamps import utc_from_epoch

# the web client's app id (www.instagram.com); instaloader's iPhone path uses 124024574287414
WEB_APP_ID = "936619743392459"
SESSION_HINT = "Instagram needs your signed-in session: --session instagram=cookies.txt"
# media_count is a signed 32-bit integer: a tag past it answers this value (#love)
MEDIA_COUNT_CEILING = 2**31 - 1


class Instagram(Platform):
    """Instagram (www.instagram.com) hashtags through the web client's tags/web_info API."""

    name = "instagram"
    title = "Instagram"
    default_base_url = "https://www.instagram.com"
    hosts = ("www.instagram.com", "instagram.com", "i.instagram.com")
    browser = "never"
    signin = "required"
    backfill = ("none (not implemented: the recent sections, paged by next_max_id with "
                "taken_at, need the user's session and are only roughly chronological)")
    counters = {"posts": "tags/web_info data.media_count (exact, private posts included; "
                         "2147483647 is a cap, stored null)"}

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported("Instagram hashtags are addressed by name, not id:")
        return Fetch(
            url=self.url("/api/v1/tags/web_info/?tag_name=" + quote(tag.name, safe="")),
            step="web_info",
            headers={"X-IG-App-ID": WEB_APP_ID, "X-Requested-With": "XMLHttpRequest",
                     "Accept": "application/json"},
        )

    def on_web_info(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        location = urlsplit(page.headers.get("location", ""))
        if page.status in (301, 302, 303, 307, 308) and "/accounts/login" in location.path:
            raise LoginWall(f"{SESSION_HINT} (redirected to /accounts/login/)")
        body = _json(page.text)
        if isinstance(body, dict):
            if body.get("message") == "checkpoint_required" or body.get("checkpoint_url"):
                raise Captcha("checkpoint_required: confirm the account in a browser, then "
                              "export a fresh session")
            if body.get("require_login") or body.get("message") == "login_required":
                raise LoginWall(f"{SESSION_HINT} (require_login)")
        if page.status == 404:
            raise NotFound(f"no hashtag {tag.name!r} (HTTP 404)")
        check_status(page)
        if not isinstance(body, dict):
            raise LayoutChanged("tags/web_info did not answer a JSON object")
        if body.get("status") == "fail":
            raise LayoutChanged(f"tags/web_info failed: {str(body.get('message'))[:80]}")
        hashtag = _hashtag(body)
        count = hashtag.get("media_count")
        if count is None:
            count = mapping(hashtag.get("edge_hashtag_to_media")).get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise LayoutChanged("hashtag has no integer media_count")
        name = str(hashtag.get("name") or tag.name or "")
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": str(hashtag["id"]) if hashtag.get("id") else None,
            "url": self.url(f"/explore/tags/{quote(name, safe='')}/"),
            "observed_at": page.observed_at,
            **media_count(count, hashtag.get("formatted_media_count")),
            "source": "api",
        }
        posts: dict[str, dict[str, Any]] = {}
        for media in section_medias(hashtag):
            post = parse_media(media, name, snapshot["tag_id"], page)
            if post is not None:
                posts.setdefault(post["post_id"], post)
        for node in graphql_nodes(hashtag):
            post = parse_node(node, name, snapshot["tag_id"], page)
            if post is not None:
                posts.setdefault(post["post_id"], post)
        return TagResult(snapshot=snapshot, posts=list(posts.values()))


def media_count(count: int, formatted: object) -> dict[str, Any]:
    """`posts` from media_count: the exact count, or nothing at the 32-bit ceiling."""
    if count >= MEDIA_COUNT_CEILING:
        shown = f", shown as {formatted!r}" if isinstance(formatted, str) else ""
        return {"posts": None, "posts_semantics": "capped", "posts_text": str(count),
                "caveats": [f"posts: media_count {count} is Instagram's 32-bit ceiling "
                            f"(2^31-1){shown}, not a count"]}
    counters: dict[str, Any] = {"posts": count}
    if isinstance(formatted, str):
        counters["posts_text"] = formatted
    return counters


def _json(text: str) -> Any:
    """The body as JSON, None when it is empty or malformed; hostile JSON is UnreadableJSON."""
    try:
        return load_json(text) if text.strip() else None
    except ValueError:
        return None


def _hashtag(body: dict[str, Any]) -> dict[str, Any]:
    """The hashtag object: `data` of a web_info answer, the legacy `graphql.hashtag`, or the
    app endpoint's top-level answer (tags/{tag}/info/: `media_count` beside `id` or `name`)."""
    data = body.get("data")
    if isinstance(data, dict) and ("media_count" in data or "name" in data):
        return data
    legacy = mapping(body.get("graphql")).get("hashtag")
    if isinstance(legacy, dict):
        return legacy
    if "media_count" in body and ("id" in body or "name" in body):
        return body
    keys = sorted(data) if isinstance(data, dict) else sorted(body)
    raise LayoutChanged(f"tags/web_info has neither data.media_count, graphql.hashtag nor a "
                        f"top-level media_count (keys {keys[:6]})")


def _layout_entries(content: dict[str, Any]) -> list[Any]:
    """A section's entries in instagrapi's order: the clips of a `one_by_two_item`, then
    `fill_items`, then the grid's `medias`."""
    clips = mapping(mapping(content.get("one_by_two_item")).get("clips")).get("items")
    entries: list[Any] = list(clips) if isinstance(clips, list) else []
    for key in ("fill_items", "medias"):
        more = content.get(key)
        if isinstance(more, list):
            entries.extend(more)
    return entries


def section_medias(hashtag: dict[str, Any]) -> list[dict[str, Any]]:
    """Media of the `recent` then `top` sections, in page order, from every layout."""
    medias = []
    for tab in ("recent", "top"):
        sections = mapping(hashtag.get(tab)).get("sections")
        for section in sections if isinstance(sections, list) else []:
            for entry in _layout_entries(mapping(mapping(section).get("layout_content"))):
                media = mapping(entry).get("media")
                if media:
                    medias.append(media)
    return medias


def graphql_nodes(hashtag: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodes of the legacy GraphQL hashtag: `edge_hashtag_to_media` then the top posts."""
    nodes = []
    for edge_name in ("edge_hashtag_to_media", "edge_hashtag_to_top_posts"):
        edges = mapping(hashtag.get(edge_name)).get("edges")
        for edge in edges if isinstance(edges, list) else []:
            node = mapping(mapping(edge).get("node"))
            if node:
                nodes.append(node)
    return nodes


def parse_media(media: dict[str, Any], tag_display: str, tag_id: str | None,
                page: Page) -> dict[str, Any] | None:
    """One public post from a section's `media`."""
    pk = media.get("pk") or str(media.get("id") or "").split("_")[0]
    if not pk:
        return None
    user = media.get("user") or {}
    caption = media.get("caption") or {}
    taken = media.get("taken_at")
    code = media.get("code")
    return {
        "platform": "instagram",
        "post_id": str(pk),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://www.instagram.com/p/{code}/" if code else None,
        "author_id": str(user["pk"]) if user.get("pk") else None,
        "author_name": user.get("username") or user.get("full_name"),
        "text": caption.get("text") if isinstance(caption, dict) else None,
        "created_at": (utc_from_epoch(taken)
                       if isinstance(taken, int) and not isinstance(taken, bool) and taken > 0
                       else None),
        "observed_at": page.observed_at,
        "likes": media.get("like_count"),
        "comments": media.get("comment_count"),
        "plays": media.get("play_count"),
        "source": "api",
    }


def _edge_count(node: dict[str, Any], *names: str) -> Any:
    for name in names:
        edge = node.get(name)
        if isinstance(edge, dict) and "count" in edge:
            return edge["count"]
    return None


def parse_node(node: dict[str, Any], tag_display: str, tag_id: str | None,
               page: Page) -> dict[str, Any] | None:
    """One public post from a legacy GraphQL hashtag node."""
    pk = node.get("id")
    if not pk:
        return None
    captions = mapping(node.get("edge_media_to_caption")).get("edges")
    first = mapping(captions[0]).get("node") if isinstance(captions, list) and captions else None
    taken = node.get("taken_at_timestamp")
    code = node.get("shortcode")
    owner = mapping(node.get("owner"))
    return {
        "platform": "instagram",
        "post_id": str(pk),
        "tag_display": tag_display,
        "tag_id": tag_id,
        "url": f"https://www.instagram.com/p/{code}/" if code else None,
        "author_id": str(owner["id"]) if owner.get("id") else None,
        "author_name": owner.get("username"),
        "text": mapping(first).get("text"),
        "created_at": (utc_from_epoch(taken)
                       if isinstance(taken, int) and not isinstance(taken, bool) and taken > 0
                       else None),
        "observed_at": page.observed_at,
        "likes": _edge_count(node, "edge_liked_by", "edge_media_preview_like"),
        "comments": _edge_count(node, "edge_media_to_comment"),
        "plays": node.get("video_view_count"),
        "source": "api",
    }
