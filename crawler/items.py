"""Items the spider yields; field names are the columns of the storage schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol


@dataclass(slots=True)
class SnapshotItem:
    """One observation of a tag's headline counters on one platform."""

    platform: str | None = None
    tag: str | None = None
    tag_display: str | None = None
    tag_id: str | None = None
    url: str | None = None
    observed_at: datetime | None = None
    # a counter arrives as an exact int, a digit string (exact) or display text ("1.2亿");
    # the normalize rule turns it into int + *_text + *_semantics (storage.schemas.SEMANTICS);
    # an adapter that knows better sets *_semantics itself (a rounded integer, a window count)
    views: Any = None
    posts: Any = None
    discussions: Any = None
    participants: Any = None
    views_text: str | None = None
    posts_text: str | None = None
    discussions_text: str | None = None
    participants_text: str | None = None
    views_semantics: str | None = None
    posts_semantics: str | None = None
    discussions_semantics: str | None = None
    participants_semantics: str | None = None
    # the window of `window` counters; posts seen beside the totals; the platform's cap on
    # visible posts; known glitches nulled with a reason (storage/schemas.py SNAPSHOTS_SCHEMA)
    window_start: datetime | None = None
    window_end: datetime | None = None
    posts_seen: int | None = None
    visibility_cap: int | None = None
    caveats: list[str] | None = None
    # how the page was fetched: http, signed_http, in_page_fetch, render (docs/access.md)
    fetched_by: str | None = None
    source: str | None = None
    # the raw WARC record the values were read from (storage/archive.py)
    archive_file: str | None = None
    archive_record: str | None = None
    # problems found while normalizing; the validate pipeline rejects an item that has any
    problems: list[str] = field(default_factory=list)
    # the requested tag as the run names it (normalized name or `id:<id>`); not stored
    job_key: str | None = None


@dataclass(slots=True)
class PostItem:
    """One observation of a public post shown under a tag."""

    platform: str | None = None
    post_id: str | None = None
    tag: str | None = None
    tag_display: str | None = None
    tag_id: str | None = None
    url: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    # every other string that names the author (handle, DID, display name), for the privacy
    # rule to find in URLs and text (crawler/rules/privacy.py); never stored
    author_aliases: list[str] | None = None
    text: str | None = None
    created_at: datetime | None = None
    observed_at: datetime | None = None
    # as in SnapshotItem: an int or digit string is exact, display text ("1.2K") is parsed and
    # rounded; the normalize rule sets *_semantics (an adapter may set it itself)
    likes: Any = None
    comments: Any = None
    shares: Any = None
    plays: Any = None
    # found from `text` (crawler/text/language.py, hashtags normalized): in a crawl by the store
    # pipeline's language worker (pipelines/store.py), offline by the normalize rule; the
    # platform's own label, when it gives one, is the adapter's (`lang_platform`)
    lang: str | None = None
    lang_confidence: float | None = None
    lang_platform: str | None = None
    hashtags: list[str] | None = None
    likes_semantics: str | None = None
    comments_semantics: str | None = None
    shares_semantics: str | None = None
    plays_semantics: str | None = None
    source: str | None = None
    archive_file: str | None = None
    archive_record: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ActivityItem:
    """Posts and participants of one (platform, tag, day), from history fields or backfills."""

    platform: str | None = None
    tag: str | None = None
    day: date | None = None
    posts: Any = None
    participants: Any = None
    # set by the normalize rule as for snapshots (storage.schemas.SEMANTICS)
    posts_semantics: str | None = None
    participants_semantics: str | None = None
    # complete | lower_bound (capped or ranked listing) | platform_reported (e.g. Mastodon history)
    coverage: str | None = None
    source: str | None = None
    observed_at: datetime | None = None
    problems: list[str] = field(default_factory=list)
    job_key: str | None = None


@dataclass(slots=True)
class PageItems:
    """The items of one page (snapshot, posts, activity), passed through the pipelines as one.

    A tag page holds ~30 items; going through Scrapy's item machinery once per page instead of
    once per item is most of what an HTTP crawl spends past fetching and parsing. Each pipeline
    applies its single-item rule to every member and keeps the survivors
    (pipelines.RunPipeline.each), so every rule, reject and count is the same as item by item.
    """

    items: list[Any] = field(default_factory=list)


COUNTERS = ("views", "posts", "discussions", "participants")
ACTIVITY_COUNTERS = ("posts", "participants")
POST_COUNTERS = ("likes", "comments", "shares", "plays")


class ParsedTag(Protocol):
    """What `items_from_result` reads: crawler.platforms.base.TagResult (a layer above)."""

    snapshot: dict[str, Any]
    posts: list[dict[str, Any]]
    activity: list[dict[str, Any]]


def items_from_result(result: ParsedTag, tag: str | None, job_key: str | None = None,
                      archive: tuple[str, str] | None = None,
                      fetched_by: str | None = None) -> list[Any]:
    """The items of one adapter `TagResult`: snapshot, posts, activity, tagged alike.

    `tag` is the requested tag normalized (None for an `id:` request: the platform's display
    name is used); `archive` is the (file, record id) the values were read from.
    """
    snapshot = SnapshotItem(**result.snapshot)
    if archive:
        snapshot.archive_file, snapshot.archive_record = archive
    snapshot.tag = tag or snapshot.tag_display
    snapshot.job_key = job_key
    snapshot.fetched_by = fetched_by
    items: list[Any] = [snapshot]
    for post in result.posts:
        item = PostItem(**post)
        if archive:
            item.archive_file, item.archive_record = archive
        item.tag = snapshot.tag
        items.append(item)
    for day in result.activity:
        activity = ActivityItem(**day)
        activity.tag = snapshot.tag
        items.append(activity)
    return items
