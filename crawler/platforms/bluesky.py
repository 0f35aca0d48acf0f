"""Bluesky hashtags: `app.bsky.feed.searchPosts?q=#tag&tag=tag&sort=latest&limit=100`, signed in.

Shapes (PLATFORMS.md §9): the output is `{cursor?, hitsTotal?, posts: [PostView]}`; a PostView
has `uri`, `cid`, `author{did, handle, displayName}`, `record{text, createdAt, facets[]}`,
`likeCount`/`replyCount`/`repostCount`, `indexedAt` (the PostView fields are [INF] in
PLATFORMS, the facet shape is documented). `q` is required by the lexicon, so the query is
`#tag` and the `tag` filter keeps posts whose facets or tags carry it. Bluesky has no counter
for a tag, so the snapshot is derived from this one page of the newest posts (at most 100):
`posts` = `hitsTotal` when the answer gives it (the lexicon: "may be rounded/truncated"), else
the number of posts in the page; `participants` = distinct author DIDs in the page. Both are
lower bounds whenever the page is full. Search needs a session since 2025 (403
`{"error":"AuthMissing"}` without one): the handle and app password from
TAGARCHIVE_BLUESKY_HANDLE / TAGARCHIVE_BLUESKY_APP_PASSWORD are exchanged once per run through
`com.atproto.server.createSession` for an access token sent as `Authorization: Bearer`; the
entryway (bsky.social) proxying the AppView call for a signed-in user is [INF]. An expired or
rejected token (`ExpiredToken`, `InvalidToken`) is `login_wall`; a search with no post at all is
`not_found` rather than a stored zero; an answer without `posts` is `layout_changed`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from crawler.platforms.base import (
    Fetch,
    LayoutChanged,
    LoginWall,
    NotFound,
    Page,
    Platform,
    RateLimited,
    TagResult,
    Unsupported,
    check_status,
    load_json,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.tags import TagRef

SEARCH_LIMIT = 100  # the lexicon's maximum
SIGNIN_HINT = ("Bluesky search needs a signed-in session: set TAGARCHIVE_BLUESKY_HANDLE and "
               "TAGARCHIVE_BLUESKY_APP_PASSWORD (an app password)")
_TOKEN_ERRORS = {"AuthMissing", "AuthRequired", "AuthenticationRequired", "ExpiredToken",
                 "InvalidToken", "BadJwt"}


class Bluesky(Platform):
    """Bluesky (AT Protocol) hashtags through app.bsky.feed.searchPosts."""

    name = "bluesky"
    title = "Bluesky"
    default_base_url = "https://bsky.social"
    hosts = ("bsky.social", "api.bsky.app", "public.api.bsky.app", "bsky.app")
    browser = "never"
    signin = "required"
    login_variables = ("TAGARCHIVE_BLUESKY_HANDLE", "TAGARCHIVE_BLUESKY_APP_PASSWORD")
    backfill = ("searchPosts tag= sort=latest with since/until and a cursor, asked again from "
                "the oldest post when a query's cursor runs out: chronological, complete")
    timeline_source = "api"
    counters = {
        "posts": "searchPosts hitsTotal when given, else posts in the newest page (≤100)",
        "participants": "distinct authors in the newest page of searchPosts (≤100)",
    }

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported("Bluesky tags are addressed by name, not id:")
        name = tag.name.lstrip("#")
        query = (f"q={quote('#' + name, safe='')}&tag={quote(name, safe='')}"
                 f"&sort=latest&limit={SEARCH_LIMIT}")
        return Fetch(url=self.url(f"/xrpc/app.bsky.feed.searchPosts?{query}"), step="search",
                     headers={"Accept": "application/json"})

    def login_fetch(self, login: dict[str, str]) -> Fetch:
        body = json.dumps({"identifier": login["identifier"], "password": login["password"]})
        return Fetch(url=self.url("/xrpc/com.atproto.server.createSession"), step="login",
                     method="POST", body=body.encode("utf-8"),
                     headers={"Content-Type": "application/json",
                              "Accept": "application/json"})

    def login_headers(self, page: Page) -> dict[str, str]:
        data = _json(page.text)
        token = data.get("accessJwt") if isinstance(data, dict) else None
        if page.status != 200 or not isinstance(token, str) or not token:
            # the error code only: the message could echo what was sent
            code = data.get("error") if isinstance(data, dict) else None
            raise LoginWall(f"createSession answered HTTP {page.status} {code or ''}".strip())
        return {"Authorization": f"Bearer {token}"}

    def on_search(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        data = search_answer(page)
        name = tag.name.lstrip("#") if tag.name else ""
        return parse_search(data, name, page)


    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """searchPosts over the window, newest first (`since` inclusive, `until` exclusive)."""
        if tag.name is None:
            raise Unsupported("Bluesky tags are addressed by name, not id:")
        return self._window_search(tag.name.lstrip("#"), window, window.end)

    def _window_search(self, name: str, window: Window, until: datetime,
                       cursor: str | None = None) -> Fetch:
        params = [("q", "#" + name), ("tag", name), ("sort", "latest"),
                  ("since", _iso(window.start)), ("until", _iso(until)),
                  ("limit", str(SEARCH_LIMIT))]
        if cursor:
            params.append(("cursor", cursor))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
        return Fetch(url=self.url(f"/xrpc/app.bsky.feed.searchPosts?{query}"), step="backfill",
                     headers={"Accept": "application/json"},
                     state={"window": window.as_state(), "until": _iso(until)})

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        """One page of the window's search. The cursor "may not necessarily allow scrolling
        through the entire result set" (lexicon): when it runs out on a full page, the search
        is asked again with `until` just after the oldest post shown, so the walk goes on."""
        data = search_answer(page)
        name = (tag.name or "").lstrip("#")
        window = Window.from_state(state["window"])
        until = datetime.fromisoformat(state["until"])
        views = [v for v in data["posts"] if isinstance(v, dict)]
        posts = [p for p in (parse_post(v, name, page) for v in views) if p is not None]
        if any(p["created_at"] is None for p in posts):
            raise LayoutChanged("searchPosts listed a post without a zoned record.createdAt")
        seen = oldest(posts)
        cursor = data.get("cursor")
        if isinstance(cursor, str) and cursor:
            return TimelinePage(posts=posts, oldest_seen=seen,
                                next_fetch=self._window_search(name, window, until, cursor))
        if len(views) < SEARCH_LIMIT or seen is None:
            return TimelinePage(posts=posts, oldest_seen=seen)  # the window's last page
        # `until` is exclusive: a millisecond later keeps posts sharing the oldest time (they
        # are counted once); no earlier `until` means more posts share it than one page holds
        restart = seen + timedelta(milliseconds=1)
        if restart >= until:
            return TimelinePage(posts=posts, oldest_seen=seen, capped=True)
        return TimelinePage(posts=posts, oldest_seen=seen,
                            next_fetch=self._window_search(name, window, restart))


def search_answer(page: Page) -> dict[str, Any]:
    """A searchPosts answer with a posts list, or the named failure it stands for."""
    data = _json(page.text)
    error = data.get("error") if isinstance(data, dict) else None
    if page.status == 429:
        reset = page.headers.get("ratelimit-reset")
        raise RateLimited(f"HTTP 429 {error or ''}, Retry-After "
                          f"{page.headers.get('retry-after', '-')}, RateLimit-Reset "
                          f"{reset or '-'}")
    if error in _TOKEN_ERRORS or (page.status in (401, 403) and error):
        raise LoginWall(f"{SIGNIN_HINT} (HTTP {page.status} {error})")
    check_status(page)
    if not isinstance(data, dict) or not isinstance(data.get("posts"), list):
        keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise LayoutChanged(f"searchPosts answered without a posts list ({keys})")
    return data


def _iso(moment: datetime) -> str:
    """The lexicon's datetime: UTC with milliseconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json(text: str) -> Any:
    """The body as JSON, None when it is empty or malformed; hostile JSON is UnreadableJSON."""
    try:
        return load_json(text) if text.strip() else None
    except ValueError:
        return None


def parse_search(data: dict[str, Any], name: str, page: Page) -> TagResult:
    """Snapshot and posts from one searchPosts answer."""
    views = [p for p in data["posts"] if isinstance(p, dict) and p.get("uri")]
    given = data.get("hitsTotal", data.get("hits_total"))  # hits_total: the early lexicon
    # a JSON true is an int to isinstance, and no count
    hits = given if isinstance(given, int) and not isinstance(given, bool) else None
    if not views and not (hits is not None and hits > 0):
        raise NotFound(f"no Bluesky post carries #{name} (empty search)")
    display = _display_name(views, name)
    authors = {(v.get("author") or {}).get("did") for v in views}
    snapshot = {
        "platform": "bluesky",
        "tag_display": display,
        "tag_id": None,
        "url": f"https://bsky.app/hashtag/{quote(display, safe='')}",
        "observed_at": page.observed_at,
        "posts": hits if hits is not None else len(views),
        "participants": len(authors - {None}),
        "source": "api",
    }
    # hitsTotal "may be rounded/truncated" (lexicon), and a page that came back full only says
    # "at least this many": neither is an exact count of the tag's posts
    capped = len(views) >= SEARCH_LIMIT and data.get("cursor")
    if hits is not None or capped:
        snapshot["posts_approx"] = True
    if capped:
        snapshot["participants_approx"] = True
    posts = [parse_post(v, display, page) for v in views]
    return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])


def facet_tags(record: dict[str, Any]) -> list[str]:
    """The hashtags of a post record: `#tag` facets, then the record's own `tags`."""
    tags = []
    for facet in record.get("facets") or []:
        for feature in (facet or {}).get("features") or []:
            if (feature or {}).get("$type") == "app.bsky.richtext.facet#tag":
                tags.append(str(feature.get("tag", "")))
    tags.extend(str(t) for t in record.get("tags") or [])
    return [t for t in tags if t]


def _display_name(views: list[dict[str, Any]], name: str) -> str:
    """The tag as the newest post spells it ('TikTokRefugee'), else as requested."""
    for view in views:
        for tag in facet_tags(view.get("record") or {}):
            if tag.casefold() == name.casefold():
                return tag
    return name


def parse_post(view: dict[str, Any], tag_display: str, page: Page) -> dict[str, Any] | None:
    """One post from a PostView."""
    uri = view.get("uri")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    author = view.get("author") or {}
    record = view.get("record") or {}
    created = record.get("createdAt")
    try:
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    if created_at is not None and created_at.tzinfo is None:
        created_at = None  # a naive time could be any zone; the lexicon requires one
    rkey = uri.rsplit("/", 1)[-1]
    handle = author.get("handle")
    return {
        "platform": "bluesky",
        "post_id": uri,
        "tag_display": tag_display,
        "tag_id": None,
        "url": f"https://bsky.app/profile/{handle}/post/{rkey}" if handle else None,
        "author_id": author.get("did"),
        "author_name": handle or author.get("displayName"),
        "text": record.get("text"),
        "created_at": created_at,
        "observed_at": page.observed_at,
        "likes": view.get("likeCount"),
        "comments": view.get("replyCount"),
        "shares": view.get("repostCount"),
        "source": "api",
    }
