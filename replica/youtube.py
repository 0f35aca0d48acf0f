"""YouTube replica: `/hashtag/{tag}` pages carrying `var ytInitialData = {…};`.

Real (PLATFORMS.md §6): the `hashtagHeaderRenderer` header with "203K videos • 81K channels",
the rich grid of `videoRenderer`s with relative `publishedTimeText`. Inferred [INF]: the
`pageHeaderRenderer` text paths (`pageHeaderViewModel.metadata.contentMetadataViewModel`), the
compact-number rounding (truncated, one decimal below 10), the 404 page with an ERROR alert,
the `layout_changed` stand-in (a `hashtagHeaderViewModel` with counts in new places), and the
share of pages served with each header form (half the tags, by hash). The consent wall
(`consent` variant; passed with a SOCS cookie, as yt-dlp does) and the "unusual traffic" check
(`captcha`) are redirects to their real hosts, which a crawler reports and never follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from replica.base import (
    NO_ICON,
    Query,
    Response,
    esc,
    gate,
    html_response,
    method_not_allowed,
    not_found,
    respond,
    script_json,
)
from replica.truth import B64URL, PlatformTruth, en_names, encode
from replica.world import PostTruth, TagNotFound, TopicTruth, World, normalize_tag

PLATFORM = "youtube"
REAL = "https://www.youtube.com"
PAGE_HEADER_SHARE = 0.5  # [INF] how many tags get the newer header form
GRID_SIZE = 30


def compact(n: int) -> str:
    """YouTube's short number: "870", "1.2K", "203K", "12M" (truncated) [INF rounding]."""
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            tenths = n * 10 // size
            if tenths < 100:
                whole, frac = divmod(tenths, 10)
                return f"{whole}.{frac}{unit}" if frac else f"{whole}{unit}"
            return f"{n // size}{unit}"
    return str(n)


def plural(n: int, word: str) -> str:
    return f"{compact(n)} {word}" + ("" if n == 1 else "s")


def relative_time(created: datetime, now: datetime) -> str:
    """"3 days ago": the age floored to its largest unit, as YouTube prints it."""
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400),
                       ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    raise AssertionError("unreachable")


def views_text(n: int) -> str:
    return "No views" if n == 0 else f"{n:,} view" + ("" if n == 1 else "s")


class YouTubeTruth(PlatformTruth):
    """YouTube's ground truth: UC… channel ids, @handles, 11-character video ids."""

    def author(self, d: bytes, author_key: int) -> tuple[str, str, str]:
        adj, noun = en_names(d)
        channel = "UC" + encode(int.from_bytes(d[8:24], "big"), B64URL, 22)
        return channel, f"@{adj}{noun}{author_key % 1000}", f"{adj.title()} {noun.title()}"

    def post_id(self, created: int, entropy: int) -> str:
        return encode(entropy, B64URL, 11)  # video ids: 11 URL-safe base64 digits


class YouTubeApp:
    """Replica of www.youtube.com hashtag pages for one World."""

    platform = PLATFORM
    truth = YouTubeTruth()  # what replica.world knows about YouTube

    def __init__(self, world: World, prefix: str = "/youtube") -> None:
        self.world = world
        self.prefix = prefix.rstrip("/")

    def kind(self, method: str, path: str) -> str:
        return "hashtag_page" if path.startswith("/hashtag/") else "other"

    def handle(
        self, method: str, path: str, query: Query, headers: Mapping[str, str], body: bytes
    ) -> Response:
        if self.kind(method, path) == "other":
            return not_found()
        if method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        name = path[len("/hashtag/"):].split("/", 1)[0]
        return self._hashtag_page(name, headers) if name else not_found()

    def page_header(self, name: str) -> bool:
        """Whether this tag's page uses `pageHeaderRenderer` (else `hashtagHeaderRenderer`)."""
        variants = self.world.variants(PLATFORM, name)
        if "page_header" in variants or "hashtag_header" in variants:
            return "page_header" in variants
        return self.world.unit("youtube-header", normalize_tag(name)) < PAGE_HEADER_SHARE

    def _hashtag_page(self, name: str, headers: Mapping[str, str]) -> Response:
        failure = gate(self.world, PLATFORM, name, as_json=False)
        if failure:
            return failure
        variants = self.world.variants(PLATFORM, name)
        original = f"{REAL}/hashtag/{quote(name, safe='')}"
        if "consent" in variants and "SOCS=" not in headers.get("cookie", ""):
            location = ("https://consent.youtube.com/m?continue=" + quote(original, safe="")
                        + "&gl=DE&m=0&pc=yt&cm=2&hl=en&src=1")
            return respond(302, "", "text/html; charset=utf-8", Location=location)
        if "captcha" in variants:
            location = ("https://www.google.com/sorry/index?continue=" + quote(original, safe="")
                        + "&q=EgRfXk0" + f"{int(self.world.unit('yt-sorry', name) * 1e9):x}")
            return respond(302, "", "text/html; charset=utf-8", Location=location)
        try:
            topic = self.world.topic(PLATFORM, name)
        except TagNotFound:
            return html_response(404, self._page(f"#{name}", self._not_found_data()))
        posts = self.world.posts_for(PLATFORM, name, limit=GRID_SIZE)
        data = self._initial_data(topic, posts, "layout_changed" in variants)
        return html_response(200, self._page(f"#{topic.name} - YouTube", data))

    def _page(self, title: str, data: dict[str, Any]) -> str:
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title>{NO_ICON}</head><body><ytd-app></ytd-app>"
            f'<script nonce="r3pl1ca">var ytInitialData = {script_json(data)};</script>'
            "</body></html>"
        )

    @staticmethod
    def _not_found_data() -> dict[str, Any]:
        text = "This page isn't available. Sorry about that. Try searching for something else."
        return {"responseContext": {}, "alerts": [
            {"alertRenderer": {"type": "ERROR", "text": {"runs": [{"text": text}]}}}]}

    def _header(self, topic: TopicTruth) -> dict[str, Any]:
        title = f"#{topic.name}"
        videos, channels = plural(topic.posts, "video"), plural(topic.participants, "channel")
        if not self.page_header(topic.tag):
            return {"hashtagHeaderRenderer": {
                "hashtag": {"simpleText": title},
                "hashtagInfoText": {"simpleText": f"{videos} • {channels}"},
                "trackingParams": "CAAQ8bsCIhMI",
            }}
        return {"pageHeaderRenderer": {"pageTitle": title, "content": {"pageHeaderViewModel": {
            "title": {"dynamicTextViewModel": {"text": {"content": title}}},
            "metadata": {"contentMetadataViewModel": {
                "metadataRows": [{"metadataParts": [{"text": {"content": videos}},
                                                    {"text": {"content": channels}}]}],
                "delimiter": "•",
            }},
        }}}}

    def _video(self, post: PostTruth, now: datetime) -> dict[str, Any]:
        owner = {"runs": [{"text": post.author_nickname, "navigationEndpoint": {
            "browseEndpoint": {"browseId": post.author_id,
                               "canonicalBaseUrl": f"/{post.author_unique_id}"}}}]}
        return {"richItemRenderer": {"content": {"videoRenderer": {
            "videoId": post.id,
            "title": {"runs": [{"text": post.text}]},
            "ownerText": owner,
            "longBylineText": owner,
            "publishedTimeText": {"simpleText": relative_time(post.created_at, now)},
            "lengthText": {"simpleText": f"{1 + post.ordinal % 9}:{post.ordinal % 60:02d}"},
            "viewCountText": {"simpleText": views_text(post.plays)},
            "shortViewCountText": {"simpleText": plural(post.plays, "view")},
        }}}}

    def _initial_data(self, topic: TopicTruth, posts: list[PostTruth],
                      changed: bool) -> dict[str, Any]:
        now = self.world.now()
        items: list[dict[str, Any]] = [self._video(p, now) for p in posts]
        items.append({"continuationItemRenderer": {"continuationEndpoint": {
            "continuationCommand": {"token": "4qmFsgI" + topic.topic_id,
                                    "request": "CONTINUATION_REQUEST_TYPE_BROWSE"}}}})
        if changed:
            # a plausible redesign [INF]: a view-model header with the counts split out
            return {"responseContext": {}, "header": {"hashtagHeaderViewModel": {
                "title": f"#{topic.name}",
                "stats": {"videos": compact(topic.posts), "channels": compact(topic.participants)},
            }}, "contents": {"singleColumnBrowseResultsRenderer": {"items": items}}}
        tab = {"tabRenderer": {"selected": True, "title": "All",
                               "content": {"richGridRenderer": {"contents": items}}}}
        return {
            "responseContext": {"serviceTrackingParams": []},
            "contents": {"twoColumnBrowseResultsRenderer": {"tabs": [tab]}},
            "header": self._header(topic),
        }
