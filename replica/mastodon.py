"""Mastodon replica (one instance): `GET /api/v1/tags/:name` and `/api/v1/timelines/tag/:name`.

Real (PLATFORMS.md §8, Mastodon.py cassettes `test_followed_hashtags`, `test_hashtag_tl`): the
Tag entity with a 7-day `history` of strings, newest first, keys in the cassette's order; Status
objects with HTML `content`; the `Link` header; `X-RateLimit-Limit/Remaining/Reset` on every API
answer; 404 `{"error":"Record not found"}`; the rack-attack 429 (mastodon/mastodon
`config/initializers/rack_attack.rb`: JSON error, X-RateLimit-* with an ISO reset time and no
`Retry-After`); 401 `{"error":"This method requires an authenticated user"}`. The rate-limit
window is wall-clock time (clients wait in it), unlike the counters, which follow the World
clock. Inferred [INF]: `following`/`featuring` are omitted for anonymous callers, the per-day
account counts (a share of the day's posts), the `layout_changed` stand-in (history renamed
`stats`, numbers as ints).
Variants for servers that speak the same API differently: `history_stub` answers the Tag as
GoToSocial does (superseriousbusiness/gotosocial `TagToAPITag`: lower-cased name, url, `history`
always an empty array, no `id`, `following` for the caller; GoToSocial wants a token for it,
which the replica does not ask for); `tag_without_row` answers `"id": ""`, as Mastodon did for a
tag without a database row (Mastodon.py cassette `test_followed_hashtags`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from replica.base import (
    Query,
    Response,
    esc,
    gate,
    json_response,
    method_not_allowed,
    not_found,
)
from replica.truth import ANCHOR_AT, Anchor, PlatformTruth, born, en_names, int_of
from replica.world import PostTruth, TagNotFound, World, normalize_tag

PLATFORM = "mastodon"
RATE_LIMIT = 300  # requests per 5 minutes, per IP
RATE_WINDOW = 300
HISTORY_DAYS = 7
TIMELINE_DEFAULT, TIMELINE_MAX = 20, 40
NOT_FOUND = {"error": "Record not found"}
NEEDS_USER = {"error": "This method requires an authenticated user"}
TOO_MANY = {"error": "Too many requests"}


def iso_z(dt: datetime, digits: int = 3) -> str:
    """Rails' ISO 8601 in UTC: "2022-12-01T19:50:10.577Z" (6 digits for the reset time)."""
    text = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: len(text) - 6 + digits] + "Z"


class MastodonTruth(PlatformTruth):
    """One Mastodon instance's ground truth: row-number tag ids, snowflake ids, no views."""

    anchors = {
        # one instance's share of the TikTok-refugee wave, as Mastodon's Tag history would
        # count it [INF]; Mastodon shows no views, so they stay zero
        "tiktokrefugee": Anchor(
            name="TikTokRefugee",
            at=ANCHOR_AT,
            views=0,
            posts=3_120,
            participants=1_870,
            t0=datetime(2025, 1, 14, 6, tzinfo=UTC),
            width_hours=30.0,
            tail=0.05,
        ),
    }
    # no views shown; the steep ratio keeps post counts at the scale of one instance [INF]
    views_per_post = (2_000.0, 20_000.0)

    def topic_ids(self, seed: int, platform: str, key: str, birth: float) -> tuple[str, None]:
        # one instance's own row number for the tag [INF: size of a mid-sized instance]
        return str(1 + int_of(seed, platform, key) % 2_000_000), None

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        adj, noun = en_names(d)
        joined = int(1_500_000_000 + born(d) * 2e8)
        account_id = str((joined * 1000) << 16 | int.from_bytes(d[16:18], "big"))
        return account_id, f"{adj}_{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"

    def post_id(self, created: int, entropy: int) -> str:
        return str(((created * 1000) << 16) | (entropy & 0xFFFF))  # Mastodon's snowflake ids


class MastodonApp:
    """Replica of one Mastodon instance's tag API for one World."""

    platform = PLATFORM
    truth = MastodonTruth()  # what replica.world knows about Mastodon

    def __init__(self, world: World, prefix: str = "/mastodon") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        self._lock = threading.Lock()
        self._used = 0  # requests in the current rate-limit window (never enforced)

    def kind(self, method: str, path: str) -> str:
        if path.startswith("/api/v1/tags/"):
            return "tag"
        if path.startswith("/api/v1/timelines/tag/"):
            return "timeline"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if not name:
            return json_response(404, NOT_FOUND, self._limits())
        origin = f"http://{headers.get('host', 'mastodon.social')}{self.prefix}"
        failure = gate(self.world, PLATFORM, name, as_json=True)
        if failure is not None:
            if failure[0] != 429:
                return failure
            # rack-attack's answer: the wait is in X-RateLimit-Reset, not Retry-After
            wait = int(failure[1].get("Retry-After", "60"))
            return json_response(429, TOO_MANY, self._limits(exhausted_for=wait))
        variants = self.world.variants(PLATFORM, name)
        if "login_wall" in variants:
            return json_response(401, NEEDS_USER, self._limits())
        if kind == "tag":
            return self._tag(name, origin, variants)
        return self._timeline(name, origin, query)

    def _limits(self, exhausted_for: int | None = None) -> dict[str, str]:
        now = datetime.now(UTC)
        if exhausted_for is not None:
            remaining, reset = 0, now + timedelta(seconds=exhausted_for)
        else:
            with self._lock:
                self._used = self._used % RATE_LIMIT + 1
                remaining = RATE_LIMIT - self._used
            epoch = int(now.timestamp())
            reset = datetime.fromtimestamp(epoch - epoch % RATE_WINDOW + RATE_WINDOW, UTC)
        return {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": iso_z(reset, 6)}

    def tag_entity(self, name: str, origin: str) -> dict[str, Any]:
        """The Tag entity exactly as the API serializes it (raises TagNotFound)."""
        topic = self.world.topic(PLATFORM, name)
        history = [{"day": str(int(d.day.timestamp())), "accounts": str(d.participants),
                    "uses": str(d.posts)}
                   for d in self.world.daily(PLATFORM, name, days=HISTORY_DAYS)]
        return {"id": topic.topic_id, "name": topic.name,
                "url": f"{origin}/tags/{quote(topic.name, safe='')}", "history": history}

    def _tag(self, name: str, origin: str, variants: Mapping[str, Any]) -> Response:
        try:
            entity = self.tag_entity(name, origin)
        except TagNotFound:
            return json_response(404, NOT_FOUND, self._limits())
        if "history_stub" in variants:
            stub = {"name": entity["name"].lower(), "url": entity["url"], "history": [],
                    "following": False}
            return json_response(200, stub, self._limits())
        if "tag_without_row" in variants:
            entity["id"] = ""
        if "layout_changed" in variants:
            stats = [{"date": int(h["day"]), "statuses": int(h["uses"]),
                      "authors": int(h["accounts"])} for h in entity.pop("history")]
            entity["stats"] = stats
        return json_response(200, entity, self._limits())

    def status(self, post: PostTruth, tag_name: str, origin: str) -> dict[str, Any]:
        tag_url = f"{origin}/tags/{quote(normalize_tag(tag_name), safe='')}"
        words = post.text.split(f"#{tag_name}", 1)
        link = (f'<a href="{esc(tag_url)}" class="mention hashtag" rel="tag">'
                f"#<span>{esc(tag_name)}</span></a>")
        rest = words[1] if len(words) > 1 else ""
        content = f"<p>{esc(words[0])}{link}{esc(rest)}</p>"
        account_url = f"{origin}/@{post.author_unique_id}"
        return {
            "id": post.id,
            "created_at": iso_z(post.created_at),
            "in_reply_to_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": "public",
            "language": "en",
            "uri": f"{origin}/users/{post.author_unique_id}/statuses/{post.id}",
            "url": f"{account_url}/{post.id}",
            "replies_count": post.comments,
            "reblogs_count": post.shares,
            "favourites_count": post.likes,
            "edited_at": None,
            "content": content,
            "reblog": None,
            "account": {"id": post.author_id, "username": post.author_unique_id,
                        "acct": post.author_unique_id, "display_name": post.author_nickname,
                        "url": account_url, "bot": False},
            "media_attachments": [],
            "mentions": [],
            "tags": [{"name": normalize_tag(tag_name), "url": tag_url}],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def _timeline(self, name: str, origin: str, query: Query) -> Response:
        try:
            topic = self.world.topic(PLATFORM, name)
        except TagNotFound:
            return json_response(404, NOT_FOUND, self._limits())
        try:
            limit = min(TIMELINE_MAX, max(1, int(query.get("limit", TIMELINE_DEFAULT))))
        except ValueError:
            limit = TIMELINE_DEFAULT
        max_id = query.get("max_id", "")
        if max_id.isdigit():
            # ids are snowflakes (milliseconds << 16): statuses below max_id, in id order, from
            # any instant back (clients make max_id from a timestamp to start a walk there)
            second = (int(max_id) >> 16) // 1000
            posts = self.world.timeline(PLATFORM, name, limit=limit, below_id=max_id,
                                        until=datetime.fromtimestamp(second + 1, UTC))
        else:
            posts = self.world.posts_for(PLATFORM, name, limit=limit, order="newest")
        headers = self._limits()
        if posts:
            base = f"{origin}/api/v1/timelines/tag/{quote(name, safe='')}"
            headers["Link"] = (f'<{base}?max_id={posts[-1].id}>; rel="next", '
                               f'<{base}?min_id={posts[0].id}>; rel="prev"')
        return json_response(200, [self.status(p, topic.name, origin) for p in posts], headers)
