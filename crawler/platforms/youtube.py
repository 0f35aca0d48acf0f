"""YouTube hashtag pages: `/hashtag/{tag}` over plain HTTP, read from `var ytInitialData = {…};`.

Shapes (PLATFORMS.md §6): the header is either
`header.hashtagHeaderRenderer{hashtag.simpleText "#tag", hashtagInfoText "203K videos • 81K
channels"}` (yt-dlp, invidious) or `header.pageHeaderRenderer` (YouTube.js `HashtagFeed`), whose
text is read from `content.pageHeaderViewModel.metadata.contentMetadataViewModel.metadataRows[]
.metadataParts[].text.content` and whose title from `pageHeaderViewModel.title
.dynamicTextViewModel.text.content` — both paths are [INF], by analogy with yt-dlp's channel
code. The counts are display text only ("203K"): `posts` ← videos, `participants` ← channels
(the channels that used the tag), stored as `rounded`: "1.1M" is the count cut to two or three
figures (truncated or rounded, undocumented; invidious PR #3864 shows such a header read as
videoCount 1100000); a short count such as "57 videos" is shown whole and stored `exact`.
No public capture of a hashtag page was found (docs/platforms.md lists the search); FreeTube PR
#3896 (2023-08) reports YouTube A/B-testing the `pageHeaderRenderer` form on hashtag pages. No
cap on the videos visible under a hashtag is documented: the grid holds about 30 and
continuations go further (`visibility_cap` stays unset).
Videos come from `contents
.twoColumnBrowseResultsRenderer.tabs[].tabRenderer.content.richGridRenderer.contents[]
.richItemRenderer.content.videoRenderer`; other grid items (Shorts, continuations) are skipped.
Upload times are only relative ("3 days ago", floored): `created_at` is set for ages in seconds
or minutes (an upper bound, at most one unit late) and left null for hours and beyond, where it
would claim a precision the page does not have. Failures: a redirect to consent.youtube.com (EU
consent wall) or to google.com/sorry ("unusual traffic") is `captcha`; HTTP 404 with an ERROR
alert is `not_found` (the not-found page shape is [INF]); a page without ytInitialData or
without a known header is `layout_changed`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from crawler.platforms.base import (
    Captcha,
    Fetch,
    LayoutChanged,
    NotFound,
    Page,
    Platform,
    TagResult,
    Unsupported,
    check_status,
    decode_json_at,
)
from crawler.text.counts import CountParseError, parse_count, parse_labelled
from crawler.text.tags import TagRef

# yt-dlp's pattern (youtube/_base.py): the assignment, then one JSON object
_INITIAL_DATA = re.compile(
    r"""(?:window\s*\[\s*["']ytInitialData["']\s*\]|ytInitialData)\s*=\s*(?=\{)""")
# ASCII digits, and few of them: int() of a 5,000-digit run raises, a huge one overflows
_AGO = re.compile(
    r"^(?:Streamed |Premiered )?([0-9]{1,9}) (second|minute|hour|day|week|month|year)s? ago$")
# only these ages are fine-grained enough to stand for a timestamp
_PRECISE_UNITS = {"second": timedelta(seconds=1), "minute": timedelta(minutes=1)}


class YouTube(Platform):
    """YouTube (www.youtube.com) hashtag pages."""

    name = "youtube"
    title = "YouTube"
    default_base_url = "https://www.youtube.com"
    hosts = ("www.youtube.com", "youtube.com", "m.youtube.com")
    browser = "never"
    backfill = "none (continuations carry only relative 'x days ago' times)"
    counters = {
        "posts": "ytInitialData header '203K videos' (rounded display text)",
        "participants": "ytInitialData header '81K channels' (rounded display text)",
    }

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported("YouTube hashtags are addressed by name, not id:")
        return Fetch(url=self.url("/hashtag/" + quote(tag.name, safe="")), step="hashtag")

    def on_hashtag(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        _check_interstitial(page)
        if "unusual traffic from your computer network" in page.text:
            # served in place, often with HTTP 429, when the redirect is not used
            raise Captcha(f"'unusual traffic' page (HTTP {page.status})")
        data = extract_initial_data(page.text)
        if page.status == 404:
            raise NotFound(_alert_text(data) or "HTTP 404")
        check_status(page)
        if data is None:
            raise LayoutChanged("no ytInitialData in the page")
        header = data.get("header")
        if not isinstance(header, dict) or not header:
            alert = _alert_text(data)
            if alert:
                raise NotFound(alert)
            raise LayoutChanged("ytInitialData has no header")
        title, info = read_header(header)
        try:
            counts = parse_labelled(info)
        except CountParseError as exc:
            raise LayoutChanged(f"hashtag header no longer reads 'N videos • N channels': "
                                f"{exc}") from exc
        if "posts" not in counts:
            raise LayoutChanged(f"hashtag header has no video count: {info!r}")
        display = title.lstrip("#").strip() or (tag.name or "")
        snapshot: dict[str, Any] = {
            "platform": self.name,
            "tag_display": display,
            "tag_id": None,
            "url": page.url,
            "observed_at": page.observed_at,
            "posts_text": counts["posts"].text,
            "posts_semantics": "rounded" if counts["posts"].approximate else "exact",
            "source": "embedded_json",
        }
        if "participants" in counts:
            snapshot["participants_text"] = counts["participants"].text
            snapshot["participants_semantics"] = ("rounded" if counts["participants"].approximate
                                                  else "exact")
        posts = [parse_video(v, display, page.observed_at) for v in grid_videos(data)]
        return TagResult(snapshot=snapshot, posts=[p for p in posts if p is not None])


def _check_interstitial(page: Page) -> None:
    """Consent and 'unusual traffic' answers come as redirects away from youtube.com."""
    if page.status not in (301, 302, 303, 307, 308):
        return
    location = urlsplit(page.headers.get("location", ""))
    host = (location.hostname or "").lower()
    if host.startswith("consent."):
        raise Captcha("redirected to the cookie-consent page (consent.youtube.com); a SOCS "
                      "cookie in --session youtube=cookies.txt passes it")
    if location.path.startswith("/sorry"):
        raise Captcha(f"redirected to the 'unusual traffic' check ({host}{location.path})")
    check_status(page)
    raise LayoutChanged(f"unexpected redirect to {host}{location.path}")


def extract_initial_data(html: str) -> dict[str, Any] | None:
    """The `ytInitialData` object of a YouTube page, or None when the page has none."""
    match = _INITIAL_DATA.search(html)
    if match is None:
        return None
    try:
        data = decode_json_at(html, match.end())  # hostile JSON raises UnreadableJSON
    except ValueError as exc:
        raise LayoutChanged(f"ytInitialData does not parse: {exc}") from exc
    return data if isinstance(data, dict) else None


def _text(value: Any) -> str:
    """A YouTube text object: {simpleText}, {runs:[{text}]} or a view model's {content}."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    if isinstance(simple := value.get("simpleText"), str):
        return simple
    if isinstance(content := value.get("content"), str):
        return content
    runs = value.get("runs")
    if isinstance(runs, list):
        return "".join(r.get("text", "") for r in runs if isinstance(r, dict))
    return ""


def read_header(header: dict[str, Any]) -> tuple[str, str]:
    """(title, "203K videos • 81K channels") from either header form."""
    legacy = header.get("hashtagHeaderRenderer")
    if isinstance(legacy, dict):
        return _text(legacy.get("hashtag")), _text(legacy.get("hashtagInfoText"))
    modern = header.get("pageHeaderRenderer")
    if isinstance(modern, dict):
        view = (modern.get("content") or {}).get("pageHeaderViewModel") or {}
        title = _text(((view.get("title") or {}).get("dynamicTextViewModel") or {})
                      .get("text")) or str(modern.get("pageTitle") or "")
        meta = (view.get("metadata") or {}).get("contentMetadataViewModel") or {}
        parts = [_text(part.get("text")) for row in meta.get("metadataRows") or []
                 if isinstance(row, dict) for part in row.get("metadataParts") or []
                 if isinstance(part, dict)]
        parts = [p for p in parts if p.strip()]
        if not parts:
            raise LayoutChanged("pageHeaderRenderer has no metadata rows")
        return title, " • ".join(parts)
    raise LayoutChanged(f"unknown hashtag header {sorted(header)}")


def _alert_text(data: dict[str, Any] | None) -> str:
    for alert in (data or {}).get("alerts") or []:
        renderer = (alert or {}).get("alertRenderer") or {}
        if renderer.get("type") == "ERROR":
            return _text(renderer.get("text")).strip()
    return ""


def grid_videos(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The `videoRenderer`s of the hashtag page's rich grid, in page order."""
    tabs = ((data.get("contents") or {}).get("twoColumnBrowseResultsRenderer") or {}).get("tabs")
    videos = []
    for tab in tabs or []:
        content = ((tab or {}).get("tabRenderer") or {}).get("content") or {}
        for item in (content.get("richGridRenderer") or {}).get("contents") or []:
            video = (((item or {}).get("richItemRenderer") or {}).get("content") or {}).get(
                "videoRenderer")
            if isinstance(video, dict):
                videos.append(video)
    return videos


def created_from_relative(text: str, observed_at: datetime) -> datetime | None:
    """Upload time from "5 minutes ago", only when the unit is a second or a minute."""
    match = _AGO.match(text.strip())
    if match is None or match.group(2) not in _PRECISE_UNITS:
        return None
    try:
        return observed_at - int(match.group(1)) * _PRECISE_UNITS[match.group(2)]
    except OverflowError:  # before year 1: no upload time
        return None


def _view_count(text: str) -> int | None:
    """The exact count of "1,234 views" (viewCountText); None for rounded or other text."""
    if text.strip().lower() == "no views":
        return 0
    try:
        count = parse_count(re.sub(r"\s*views?$", "", text.strip()))
    except CountParseError:
        return None
    return None if count.approximate else count.value


def parse_video(video: dict[str, Any], tag_display: str,
                observed_at: datetime) -> dict[str, Any] | None:
    """One post from a grid `videoRenderer`."""
    video_id = video.get("videoId")
    if not isinstance(video_id, str) or not video_id:
        return None
    owner = ((video.get("ownerText") or video.get("longBylineText") or {}).get("runs") or [{}])[0]
    browse = ((owner or {}).get("navigationEndpoint") or {}).get("browseEndpoint") or {}
    return {
        "platform": "youtube",
        "post_id": video_id,
        "tag_display": tag_display,
        "tag_id": None,
        "url": f"https://www.youtube.com/watch?v={quote(video_id)}",
        "author_id": browse.get("browseId"),
        "author_name": (owner or {}).get("text"),
        "text": _text(video.get("title")) or None,
        "created_at": created_from_relative(_text(video.get("publishedTimeText")), observed_at),
        "observed_at": observed_at,
        "plays": _view_count(_text(video.get("viewCountText"))),
        "source": "embedded_json",
    }
