"""Bluesky replica: `com.atproto.server.createSession` and `app.bsky.feed.searchPosts`.

Real (PLATFORMS.md §9, docs/platforms.md "Bluesky"): the searchPosts parameters (`q` required,
`sort`, `since`/`until`, `limit` 1..100, `cursor`) and output (`cursor`, `posts`), `#tag` facets
with UTF-8 byte offsets, at:// URIs with TID record keys, 403 `{"error":"AuthMissing","message":
"Authentication Required"}` without a session, app-password sign-in returning
`accessJwt`/`refreshJwt`; the variants real answers showed: `tag=` ignored (atproto#3301,
indigo#890: the tag comes from `q`), no `hitsTotal` (atproto#3020; the `hits_total` variant
serves it as 2023 answers did), `author.handle` "handle.invalid" for some authors, createdAt
written every way clients write it (offsets, microseconds, no fraction, a few seconds after
indexedAt, far in the future, year 0000: twitwi's and bskyr's captures, minet's notes), a cursor
page answering 403 "Request forbidden by administrative rules." (the `cursor_forbidden` variant;
atproto#2838, #3583). Every answer's `Date` header is the world's time, so a window anchored on
it can be checked against the ground truth.
Inferred [INF]: the PostView fields beyond the facet, the shares of invalid handles and odd
createdAt values, the 403's body shape, the per-query cap (SEARCH_CAP, scaled down from the real
10,000 so tests reach it), the order (by indexedAt, the ground truth's time: the real AppView
orders by sortAt, which differs only for a createdAt earlier than indexedAt, here only year 0000),
the token format (an HMAC-signed JWT of this replica), the `ExpiredToken` answer of the
`login_wall` variant, the 429 headers (`RateLimit-*` plus the gate's `Retry-After`), and the
`layout_changed` stand-in (posts renamed `results`).
It records every sign-in and bearer token it receives, so tests can prove a secret was sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from replica.base import (
    TEXT,
    Query,
    Response,
    gate,
    json_response,
    method_not_allowed,
    respond,
)
from replica.truth import B32, B32_SORT, PlatformTruth, en_names, encode
from replica.world import PostTruth, TagNotFound, World

PLATFORM = "bluesky"
SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
TOKEN_KEY = b"replica-bluesky-jwt"
APP_PASSWORD = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$")
# Results one query pages through before its cursor stops: 10,000 on the real AppView (minet's
# Bluesky notes), scaled down here so tests reach it [INF]
SEARCH_CAP = 1000
AUTH_MISSING = {"error": "AuthMissing", "message": "Authentication Required"}
# what the reverse proxy answers a cursor page without sign-in (atproto#2838, #3583); the
# plain-text body is [INF]
FORBIDDEN = "Request forbidden by administrative rules.\n"
# shares of authors whose handle no longer verifies, and of posts whose createdAt is odd [INF]
INVALID_HANDLE_SHARE = 0.04
ODD_CREATED_SHARE = 0.12
_TAG = re.compile(r"#(\w+)")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def did_for(identifier: str) -> str:
    digest = hashlib.sha256(identifier.lower().encode("utf-8")).digest()
    return "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]


def sign_token(did: str, scope: str, issued: int) -> str:
    header = _b64(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
    claims = _b64(json.dumps({"scope": scope, "sub": did, "iat": issued,
                              "exp": issued + 7200, "aud": "did:web:bsky.social"}).encode())
    signature = hmac.new(TOKEN_KEY, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"


def token_valid(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    expected = hmac.new(TOKEN_KEY, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(parts[2], _b64(expected))


def facets(text: str) -> list[dict[str, Any]]:
    """`#tag` facets with UTF-8 byte offsets, as the app writes them."""
    out = []
    for match in _TAG.finditer(text):
        start = len(text[: match.start()].encode("utf-8"))
        end = start + len(match.group(0).encode("utf-8"))
        out.append({"index": {"byteStart": start, "byteEnd": end},
                    "features": [{"$type": "app.bsky.richtext.facet#tag",
                                  "tag": match.group(1)}]})
    return out


def _when(text: str) -> datetime:
    """A since/until parameter: an ISO date (midnight UTC) or datetime (zone-less is UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a datetime or date") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cursor(served: int, second: int, post_id: str) -> str:
    return _b64(f"{served}:{second}:{post_id}".encode())


def _read_cursor(cursor: str) -> tuple[int, tuple[int, str]]:
    try:
        served, second, post_id = base64.urlsafe_b64decode(
            cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        return int(served), (int(second), post_id)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one this server gave") from None


def iso_ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def odd_created(at: datetime, u: float) -> str:
    """record.createdAt for a post indexed at `at`, odd for a share of `u` values as clients
    write it: each form below is in a real capture (tests/fixtures/real/bluesky/) except the far
    future one, which minet's notes name without an example [INF value]."""
    share = ODD_CREATED_SHARE / 6
    at = at.astimezone(UTC)
    if u < share:  # microseconds and an offset instead of Z: "…T02:03:20.286393+00:00"
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
    if u < 2 * share:  # no fraction: "2023-12-13T20:37:03Z"
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if u < 3 * share:  # the client's own zone: "2024-11-22T09:30:54+01:00", the same instant
        return at.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="seconds")
    if u < 4 * share:  # a client clock ahead of the AppView: 1.4 s after indexedAt
        return iso_ms(at + timedelta(milliseconds=1417))
    if u < 5 * share:  # set in the future
        return iso_ms(at + timedelta(days=30 * 365))
    if u < 6 * share:  # no year at all: "0000-10-14T15:06:10.730Z"
        return "0000" + iso_ms(at)[4:]
    return iso_ms(at)


class BlueskyTruth(PlatformTruth):
    """Bluesky's ground truth: did:plc authors, .bsky.social handles, TID record keys."""

    # no views shown; the steep ratio keeps post counts at the scale of search results [INF]
    views_per_post = (500.0, 5000.0)

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        adj, noun = en_names(d)
        did = "did:plc:" + encode(int.from_bytes(d[8:24], "big"), B32, 24)
        handle = f"{adj}-{noun}{author_key % 1000}.bsky.social"
        return did, handle, f"{adj.title()} {noun.title()}"

    def post_id(self, created: int, entropy: int) -> str:
        # the record key is a TID: microseconds since the epoch, then a 10-bit clock id
        micros = created * 1_000_000 + entropy % 1_000_000
        return encode((micros << 10) | (entropy >> 54), B32_SORT, 13)


class BlueskyApp:
    """Replica of the Bluesky entryway (sign-in) and AppView search for one World."""

    platform = PLATFORM
    truth = BlueskyTruth()  # what replica.world knows about Bluesky

    def __init__(self, world: World, prefix: str = "/bluesky") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")
        self.search_cap = SEARCH_CAP
        self._lock = threading.Lock()
        # what clients sent: (identifier, password) pairs and bearer tokens
        self.logins_seen: set[tuple[str, str]] = set()
        self.tokens_seen: set[str] = set()

    def kind(self, method: str, path: str) -> str:
        if path == SEARCH:
            return "search"
        if path == CREATE_SESSION:
            return "create_session"
        return "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        kind = self.kind(method, path)
        if kind == "other":
            return json_response(404, {"error": "MethodNotImplemented",
                                       "message": "Method Not Implemented"})
        if kind == "create_session":
            if method != "POST":
                return method_not_allowed("POST")
            return self._create_session(body)
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        return self._search(query, headers)

    def gives_hits_total(self, tag: str) -> bool:
        """Whether answers carry `hitsTotal` (the `hits_total` variant: 2023's shape)."""
        return self.world.has_variant(PLATFORM, tag, "hits_total")

    def handle_invalid(self, did: str) -> bool:
        """Whether this author's handle no longer verifies (served as "handle.invalid")."""
        return self.world.unit("bluesky-handle-invalid", did) < INVALID_HANDLE_SHARE

    def post_url(self, post: PostTruth) -> str:
        """The post's bsky.app URL: by handle, by DID when the handle is invalid."""
        profile = post.author_id if self.handle_invalid(post.author_id) else post.author_unique_id
        return f"https://bsky.app/profile/{profile}/post/{post.id}"

    def _create_session(self, body: bytes) -> Response:
        try:
            data = json.loads(body.decode("utf-8"))
            identifier, password = str(data["identifier"]), str(data["password"])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return json_response(400, {"error": "InvalidRequest",
                                       "message": "Input must have the property \"identifier\""})
        with self._lock:
            self.logins_seen.add((identifier, password))
        if not APP_PASSWORD.match(password):
            return json_response(401, {"error": "AuthenticationRequired",
                                       "message": "Invalid identifier or password"})
        did = did_for(identifier)
        issued = int(self.world.now().timestamp())
        return json_response(200, {
            "did": did,
            "handle": identifier.lstrip("@"),
            "accessJwt": sign_token(did, "com.atproto.appPass", issued),
            "refreshJwt": sign_token(did, "com.atproto.refresh", issued),
            "active": True,
        })

    def _search(self, query: Query, headers: Mapping[str, str]) -> Response:
        auth = headers.get("authorization", "")
        q = query.get("q", "")
        name = q.strip().lstrip("#")  # the AppView ignores `tag=` (atproto#3301, indigo#890)
        if name:
            failure = gate(self.world, PLATFORM, name, as_json=True)
            if failure is not None:
                status, out, body = failure
                if status == 429:
                    reset = int(datetime.now(UTC).timestamp()) + int(out.get("Retry-After", "60"))
                    out.update({"RateLimit-Limit": "3000", "RateLimit-Remaining": "0",
                                "RateLimit-Reset": str(reset), "RateLimit-Policy": "3000;w=300"})
                    body = json.dumps({"error": "RateLimitExceeded",
                                       "message": "Rate Limit Exceeded"}).encode()
                return status, out, body
        if not auth.startswith("Bearer "):
            return json_response(403, AUTH_MISSING)
        token = auth[len("Bearer "):]
        with self._lock:
            self.tokens_seen.add(token)
        if not token_valid(token):
            return json_response(400, {"error": "InvalidToken",
                                       "message": "Token could not be verified"})
        variants = self.world.variants(PLATFORM, name) if name else {}
        if "login_wall" in variants:
            return json_response(400, {"error": "ExpiredToken", "message": "Token has expired"})
        if not q:
            return json_response(400, {"error": "InvalidRequest",
                                       "message": 'Error: Params must have the property "q"'})
        try:
            limit = int(query.get("limit", "25"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return json_response(400, {"error": "InvalidRequest",
                                       "message": "Error: limit must be between 1 and 100"})
        cursor = query.get("cursor")
        if cursor and "cursor_forbidden" in variants:
            return respond(403, FORBIDDEN, TEXT)
        try:
            topic = self.world.topic(PLATFORM, name)
        except TagNotFound:
            return self._answer({"posts": []})
        return self._search_posts(name, limit, query.get("since"), query.get("until"), cursor,
                                  variants, topic.posts)

    def _answer(self, payload: dict[str, Any]) -> Response:
        """A JSON answer dated by the world's clock (RFC 9110 `Date`: the origin's time)."""
        return json_response(200, payload,
                             {"Date": format_datetime(self.world.now(), usegmt=True)})

    def _search_posts(self, name: str, limit: int, since_raw: str | None,
                      until_raw: str | None, cursor: str | None,
                      variants: dict[str, Any], total: int) -> Response:
        """Posts with since <= time < until, newest first, keyset-paged by an opaque cursor
        that stops after SEARCH_CAP results per query."""
        try:
            since = _when(since_raw) if since_raw else None
            until = _when(until_raw) if until_raw else self.world.now() + timedelta(seconds=1)
            served, below = _read_cursor(cursor) if cursor else (0, None)
        except ValueError as exc:
            return json_response(400, {"error": "InvalidRequest", "message": f"Error: {exc}"})
        bound, below_id = until, None
        if below is not None:
            second, below_id = below
            bound = min(until, datetime.fromtimestamp(second + 1, UTC))
        posts = self.world.timeline(PLATFORM, name, until=bound, since=since, limit=limit + 1,
                                    below_id=below_id)
        shown = posts[:limit]
        views = [self.post_view(p) for p in shown]
        payload: dict[str, Any] = {"posts": views}
        if len(posts) > limit and served + limit < self.search_cap:
            last = shown[-1]
            payload["cursor"] = _cursor(served + limit, int(last.created_at.timestamp()), last.id)
        if "hits_total" in variants:
            payload["hitsTotal"] = total if since is None and until_raw is None else (
                self.world.count_between(PLATFORM, name, since or datetime(2023, 1, 1, tzinfo=UTC),
                                         until))
        if "layout_changed" in variants:
            payload = {"results": views, "cursor": payload.get("cursor")}
        return self._answer(payload)

    def post_view(self, post: PostTruth) -> dict[str, Any]:
        digest = hashlib.sha256(post.id.encode()).digest()
        cid = "bafyrei" + base64.b32encode(digest).decode("ascii").lower().rstrip("=")[:52]
        handle = ("handle.invalid" if self.handle_invalid(post.author_id)
                  else post.author_unique_id)
        return {
            "uri": f"at://{post.author_id}/app.bsky.feed.post/{post.id}",
            "cid": cid,
            "author": {"did": post.author_id, "handle": handle,
                       "displayName": post.author_nickname, "labels": [],
                       "createdAt": "2023-04-01T00:00:00.000Z"},
            "record": {"$type": "app.bsky.feed.post",
                       "createdAt": self.created_at(post), "langs": ["en"],
                       "text": post.text, "facets": facets(post.text)},
            "replyCount": post.comments,
            "repostCount": post.shares,
            "likeCount": post.likes,
            "quoteCount": 0,
            "indexedAt": iso_ms(post.created_at),
            "labels": [],
        }

    def created_at(self, post: PostTruth) -> str:
        """record.createdAt as some client wrote it; indexedAt is the ground truth's time."""
        return odd_created(post.created_at, self.world.unit("bluesky-created", post.id))
