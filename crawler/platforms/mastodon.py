"""Mastodon hashtags on one instance: `GET /api/v1/tags/:name`, then the tag's public timeline.

Shapes (PLATFORMS.md §8, Mastodon.py cassettes): the Tag entity is `{id (4.3.1+), name, url,
history: [{day: "1574553600", uses: "200", accounts: "31"}, …]}`, the history covering the past
seven UTC days, newest (today, so far) first, every value a string. Each history day becomes one
`activity` row (`coverage` platform_reported). Per day, `uses` is an exact counter and `accounts`
an estimate: mastodon/mastodon `app/models/trends/history.rb` counts uses with Redis INCRBY and
accounts with a HyperLogLog (PFADD/PFCOUNT, approximate by design), so activity `posts` are
exact and `participants` rounded. The snapshot gives the counters Mastodon's own web UI shows
above a hashtag (mastodon/mastodon `hashtag_header`: "N participants · N posts"): `posts` = Σ
uses and `participants` = Σ accounts over the history days, both `window` counts over
[oldest day, newest day + 1 day) (`window_start`, `window_end`); participants counts an account
once per day it posted, and neither is a cumulative total, which Mastodon does not expose.
A server that keeps no history (GoToSocial: its Tag `history` is "currently just a stub, … always
an empty array") answers `history: []`: that is no history, not a changed layout, so the snapshot
is stored without posts/participants (a caveat says why) and with no activity rows. A Tag `id`
of "" (Mastodon's answer for a tag without a database row, Mastodon.py cassettes) is no id. Then
`GET /api/v1/timelines/tag/:name?limit=40` gives the newest statuses as posts; that step is best
effort: a timeline the instance refuses (401 for anonymous visitors under 4.5.0
`timelines_access`) or that still fails after retries leaves the posts empty, the counters
stored; a timeline that is not a list of statuses is `layout_changed`.
The base URL is the instance (`--base-url mastodon=https://fosstodon.org`); the counts are that
instance's view of the fediverse. Not found: 404 `{"error":"Record not found"}`. Rate limits
(rack-attack, 300 requests per 5 minutes): 429 with `X-RateLimit-Limit/Remaining/Reset` (an ISO
time) and no `Retry-After`, so the retry middleware backs off on its own schedule and the tag is
reported `rate_limited` naming the reset time.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from w3lib.html import remove_tags, replace_entities

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
    shown,
)
from crawler.platforms.timeline import TimelinePage, Window, oldest
from crawler.text.counts import digit_string_value
from crawler.text.tags import TagRef
from crawler.text.timestamps import utc_from_epoch

TIMELINE_LIMIT = 40  # the API's maximum page
NO_HISTORY = ("posts, participants: the server keeps no tag history (history is [], as "
              "GoToSocial always answers), so there is nothing to count")


class Mastodon(Platform):
    """Mastodon (one instance, mastodon.social by default) hashtags."""

    name = "mastodon"
    title = "Mastodon"
    default_base_url = "https://mastodon.social"
    hosts = ("mastodon.social",)
    browser = "never"
    backfill = ("timelines/tag from --until back by max_id (Link header): chronological, "
                "uncapped, complete; plus 7 days of history per snapshot")
    counters = {
        "posts": "tags/:name Σ history[].uses over its days (window; none if history is empty)",
        "participants": "tags/:name Σ history[].accounts over its days (window; per-day "
                        "accounts are HyperLogLog estimates)",
    }

    def first_fetch(self, tag: TagRef) -> Fetch:
        if tag.name is None:
            raise Unsupported("Mastodon tags are addressed by name, not id:")
        return Fetch(url=self.url("/api/v1/tags/" + quote(tag.name, safe="")), step="tag",
                     headers={"Accept": "application/json"})

    def on_tag(self, page: Page, tag: TagRef, state: dict[str, Any]) -> Fetch:
        entity = _api_json(page, what="tags/:name")
        result = parse_tag(entity, page, tag)
        name = str(entity["name"])
        return Fetch(
            url=self.url(f"/api/v1/timelines/tag/{quote(name, safe='')}?limit={TIMELINE_LIMIT}"),
            step="timeline",
            headers={"Accept": "application/json"},
            # plain data only: the spider pickles state with the request
            state={"tag": entity, "observed_at": result.snapshot["observed_at"].isoformat()},
        )

    def on_timeline(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TagResult:
        observed = datetime.fromisoformat(state["observed_at"])
        tag_page = Page(url=page.url, status=200, headers={}, text="", observed_at=observed)
        result = parse_tag(state["tag"], tag_page, tag)
        if page.status != 200:
            # refused (401/403: hashtag timelines for signed-in users only), or still failing
            # after retries: the counters came from the Tag entity and are kept
            return result
        statuses = _api_json(page, what="timelines/tag")
        if not isinstance(statuses, list):
            raise LayoutChanged("timelines/tag did not answer a list of statuses")
        posts = [parse_status(s, result.snapshot, page) for s in statuses]
        seen = [p for p in posts if p is not None]
        return TagResult(snapshot={**result.snapshot, "posts_seen": len(seen)}, posts=seen,
                         activity=result.activity)


    def timeline_fetch(self, tag: TagRef, window: Window) -> Fetch:
        """The tag's public timeline from the window's end back: a `max_id` made from that
        instant (status ids are snowflakes, milliseconds << 16), so the walk starts at --until
        instead of paging down from today."""
        if tag.name is None:
            raise Unsupported("Mastodon tags are addressed by name, not id:")
        return self._timeline_page(tag.name, snowflake_before(window.end))

    def _timeline_page(self, name: str, max_id: str) -> Fetch:
        query = f"limit={TIMELINE_LIMIT}&max_id={quote(max_id, safe='')}"
        return Fetch(url=self.url(f"/api/v1/timelines/tag/{quote(name, safe='')}?{query}"),
                     step="backfill", headers={"Accept": "application/json"})

    def on_backfill(self, page: Page, tag: TagRef, state: dict[str, Any]) -> TimelinePage:
        """One page of the tag timeline, newest first; the next is the Link header's max_id."""
        statuses = _api_json(page, what="timelines/tag")
        if not isinstance(statuses, list):
            raise LayoutChanged("timelines/tag did not answer a list of statuses")
        name = tag.name or ""
        shown = {"tag_display": name, "tag_id": None}
        posts = [p for p in (parse_status(s, shown, page) for s in statuses) if p is not None]
        if len(posts) != len(statuses):
            raise LayoutChanged("timelines/tag listed a status without an id")
        if any(p["created_at"] is None for p in posts):
            raise LayoutChanged("timelines/tag listed a status without a created_at time")
        max_id = next_max_id(page.headers.get("link", ""))
        # an empty page (or one without a next link) is the end of what the instance has
        following = (self._timeline_page(name, max_id) if posts and max_id is not None
                     else None)
        return TimelinePage(posts=posts, oldest_seen=oldest(posts), next_fetch=following)


_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def next_max_id(link: str) -> str | None:
    """The `max_id` of the Link header's rel="next" URL, if any."""
    match = _LINK.search(link)
    if match is None:
        return None
    values = parse_qs(urlsplit(match.group(1)).query).get("max_id")
    return values[0] if values else None


def snowflake_before(moment: datetime) -> str:
    """The smallest status id at `moment`: every status created earlier has a smaller id."""
    return str(int(moment.timestamp() * 1000) << 16)


def _api_json(page: Page, *, what: str) -> Any:
    """The JSON body of an API answer, with Mastodon's failures named."""
    if page.status == 429:
        raise RateLimited(rate_limit_detail(page))
    data = _json(page.text)
    error = data.get("error") if isinstance(data, dict) else None
    if page.status == 404:
        raise NotFound(f"{what}: {error or 'HTTP 404'}")
    if page.status in (401, 403) and error:
        raise LoginWall(f"{what}: HTTP {page.status} {error} (the instance requires sign-in)")
    check_status(page)
    if data is None:
        raise LayoutChanged(f"{what} did not answer JSON")
    return data


def rate_limit_detail(page: Page) -> str:
    """'HTTP 429, X-RateLimit 0/300, resets at … (in N s)' from Mastodon's headers."""
    limit = page.headers.get("x-ratelimit-limit", "?")
    remaining = page.headers.get("x-ratelimit-remaining", "?")
    reset = page.headers.get("x-ratelimit-reset")
    detail = f"HTTP 429, X-RateLimit {remaining}/{limit}"
    retry_after = page.headers.get("retry-after")
    if retry_after:
        detail += f", Retry-After {retry_after}"
    wait = seconds_until_reset(reset, page)
    if reset:
        detail += f", resets at {reset}" + (f" (in {wait:.0f} s)" if wait is not None else "")
    return detail


def seconds_until_reset(reset: str | None, page: Page) -> float | None:
    """Seconds from the server's own `Date` (else the observation time) to X-RateLimit-Reset."""
    if not reset:
        return None
    try:
        at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    now = page.observed_at
    if page.headers.get("date"):
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            now = parsedate_to_datetime(page.headers["date"])
    return max(0.0, (at - now).total_seconds())


def _json(text: str) -> Any:
    """The body as JSON, None when it is empty or malformed; hostile JSON is UnreadableJSON."""
    try:
        return load_json(text) if text.strip() else None
    except ValueError:
        return None


def _count(value: Any, where: str) -> int:
    """A history count: an int cast to a string by the API (a bare int is accepted too); the
    string is ASCII digits, so "²" or a 5,000-digit run is `layout_changed`, not a traceback."""
    number = digit_string_value(value) if isinstance(value, str) else None
    if number is not None:
        return number
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise LayoutChanged(f"{where} is not a count: {shown(value)}")


def parse_history(history: Any, observed_at: datetime) -> list[dict[str, Any]]:
    """One activity row per history entry (UTC day of the `day` timestamp)."""
    if not isinstance(history, list):
        raise LayoutChanged("Tag has no history list")
    rows = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise LayoutChanged(f"history[{i}] is not an object")
        midnight = _count(entry.get("day"), f"history[{i}].day")
        day = utc_from_epoch(midnight)
        if day is None:
            raise LayoutChanged(f"history[{i}].day is not a time: {shown(midnight)}")
        if (day.hour, day.minute, day.second) != (0, 0, 0):
            raise LayoutChanged(f"history[{i}].day is not a UTC midnight: {midnight}")
        rows.append({
            "platform": "mastodon",
            "day": day.date(),
            "posts": _count(entry.get("uses"), f"history[{i}].uses"),
            "participants": _count(entry.get("accounts"), f"history[{i}].accounts"),
            # uses: a Redis counter; accounts: a HyperLogLog estimate (module docstring)
            "posts_semantics": "exact",
            "participants_semantics": "rounded",
            "coverage": "platform_reported",
            "source": "api",
            "observed_at": observed_at,
        })
    days = [r["day"] for r in rows]
    if len(set(days)) != len(days):
        raise LayoutChanged("history repeats a day")
    return rows


def parse_tag(entity: Any, page: Page, tag: TagRef) -> TagResult:
    """Snapshot and activity rows from a Tag entity."""
    if not isinstance(entity, dict) or not isinstance(entity.get("name"), str):
        raise LayoutChanged("tags/:name did not answer a Tag entity (no name)")
    if "history" not in entity:
        raise LayoutChanged(f"Tag entity has no history (keys {sorted(entity)[:8]})")
    activity = parse_history(entity["history"], page.observed_at)
    name = entity["name"]
    tag_id = entity.get("id")
    snapshot: dict[str, Any] = {
        "platform": "mastodon",
        "tag_display": name,
        # "" is Mastodon's id for a tag without a row yet: no id, not an id
        "tag_id": str(tag_id) if tag_id is not None and str(tag_id) != "" else None,
        "url": entity.get("url") or None,
        "observed_at": page.observed_at,
        "source": "api",
    }
    if activity:  # an empty history (GoToSocial) gives no counts at all, not zeros
        days = [r["day"] for r in activity]
        snapshot.update({
            "posts": sum(r["posts"] for r in activity),
            "participants": sum(r["participants"] for r in activity),
            "posts_semantics": "window",
            "participants_semantics": "window",
            "window_start": datetime.combine(min(days), time(), UTC),
            "window_end": datetime.combine(max(days) + timedelta(days=1), time(), UTC),
        })
    else:
        snapshot["caveats"] = [NO_HISTORY]
    return TagResult(snapshot=snapshot, activity=activity)


_SPACES = re.compile(r"\s+")


def status_text(content: str) -> str:
    """A status's HTML content as plain text (paragraph breaks kept as newlines)."""
    text = re.sub(r"</p>\s*<p>|<br\s*/?>", "\n", content)
    text = replace_entities(remove_tags(text))
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def parse_status(status: Any, snapshot: dict[str, Any], page: Page) -> dict[str, Any] | None:
    """One post from a Status of the tag timeline."""
    if not isinstance(status, dict) or not status.get("id"):
        return None
    account = status.get("account") or {}
    created = status.get("created_at")
    try:
        created_at = (datetime.fromisoformat(created.replace("Z", "+00:00"))
                      if isinstance(created, str) else None)
    except ValueError:
        created_at = None
    return {
        "platform": "mastodon",
        "post_id": str(status["id"]),
        "tag_display": snapshot["tag_display"],
        "tag_id": snapshot["tag_id"],
        "url": status.get("url") or status.get("uri"),
        "author_id": str(account["id"]) if account.get("id") else None,
        "author_name": account.get("acct") or account.get("username"),
        # the other names of the author, for the privacy rule to find in the URL and text
        "author_aliases": [v for v in (account.get("username"), account.get("display_name"))
                           if isinstance(v, str) and v] or None,
        "text": status_text(str(status.get("content") or "")) or None,
        "created_at": created_at,
        "observed_at": page.observed_at,
        "likes": status.get("favourites_count"),
        "comments": status.get("replies_count"),
        "shares": status.get("reblogs_count"),
        "source": "api",
    }
