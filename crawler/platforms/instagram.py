"""Instagram hashtags: `GET /api/v1/tags/web_info/?tag_name=` with the user's own session.

Shapes (PLATFORMS.md §7): the answer is `{"data": {id, name, media_count, formatted_media_count,
top{sections}, recent{sections}}, "status": "ok"}` (instaloader reads `data`, or the legacy
`graphql.hashtag{edge_hashtag_to_media.count}`, which is accepted too). `media_count` is the
exact post count (instaloader: it "might include private posts"); `formatted_media_count`
("1.2M") is kept as its display text. Posts come from `recent` then `top`
`sections[].layout_content.medias[].media` with `pk`, `code`, `taken_at` (unix seconds, [INF]
from the iPhone struct), `user`, `caption.text`, `like_count`, `comment_count`, `play_count`
(the media field names beyond `taken_at` are [INF] too). The web app id goes in `x-ig-app-id`.
Sign-in is required: without a `sessionid` cookie Instagram redirects to `/accounts/login/`,
reported as `login_wall` naming `--session instagram=cookies.txt`; `{"require_login": true}`
means the same. `checkpoint_required` (the account must be verified in a browser) is `captcha`;
HTTP 404 is `not_found` (its body is [INF]); a `data` without `media_count` is `layout_changed`.
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
)
from crawler.text.tags import TagRef
from crawler.text.timestamps import utc_from_epoch

# the web client's app id (www.instagram.com); instaloader's iPhone path uses 124024574287414
WEB_APP_ID = "936619743392459"
SESSION_HINT = "Instagram needs your signed-in session: --session instagram=cookies.txt"


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
    counters = {"posts": "tags/web_info data.media_count (exact)"}

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
            count = (hashtag.get("edge_hashtag_to_media") or {}).get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise LayoutChanged("hashtag has no integer media_count")
        name = str(hashtag.get("name") or tag.name or "")
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": name,
            "tag_id": str(hashtag["id"]) if hashtag.get("id") else None,
            "url": self.url(f"/explore/tags/{quote(name, safe='')}/"),
            "observed_at": page.observed_at,
            "posts": count,
            "source": "api",
        }
        if isinstance(hashtag.get("formatted_media_count"), str):
            snapshot["posts_text"] = hashtag["formatted_media_count"]
        posts: dict[str, dict[str, Any]] = {}
        for media in section_medias(hashtag):
            post = parse_media(media, name, snapshot["tag_id"], page)
            if post is not None:
                posts.setdefault(post["post_id"], post)
        return TagResult(snapshot=snapshot, posts=list(posts.values()))


def _json(text: str) -> Any:
    """The body as JSON, None when it is empty or malformed; hostile JSON is UnreadableJSON."""
    try:
        return load_json(text) if text.strip() else None
    except ValueError:
        return None


def _hashtag(body: dict[str, Any]) -> dict[str, Any]:
    """`data` of a web_info answer, or the legacy `graphql.hashtag`."""
    data = body.get("data")
    if isinstance(data, dict) and ("media_count" in data or "name" in data):
        return data
    legacy = (body.get("graphql") or {}).get("hashtag")
    if isinstance(legacy, dict):
        return legacy
    keys = sorted(data) if isinstance(data, dict) else sorted(body)
    raise LayoutChanged(f"tags/web_info has neither data.media_count nor graphql.hashtag "
                        f"(keys {keys[:6]})")


def section_medias(hashtag: dict[str, Any]) -> list[dict[str, Any]]:
    """Media of the `recent` then `top` sections, in page order."""
    medias = []
    for tab in ("recent", "top"):
        for section in (hashtag.get(tab) or {}).get("sections") or []:
            content = (section or {}).get("layout_content") or {}
            for entry in content.get("medias") or []:
                media = (entry or {}).get("media")
                if isinstance(media, dict):
                    medias.append(media)
    return medias


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
