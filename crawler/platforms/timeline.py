"""The timeline contract between the backfill spider and a platform adapter.

An adapter with a timeline has two pure steps: `timeline_fetch(tag, window) -> Fetch`, the first
page of the tag's public listing for that window, and `on_backfill(page, tag, state) ->
TimelinePage`, the posts one page shows and the next fetch (steps named `backfill…`, so they never
collide with snapshot steps). Like every adapter step they do no I/O and read no clock: the
window travels in `Fetch.state`. A rendered feed that loads more only when scrolled declares
`timeline_scroll` (crawler/downloader/feedscroll.py); it applies to fetches of the `backfill`
step, the listing itself, not to lookups such as `backfill_search`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crawler.platforms.base import Fetch, Platform


@dataclass(frozen=True, slots=True)
class Window:
    """The UTC days a backfill covers, both ends included."""

    since: date
    until: date

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"--until {self.until} is before --since {self.since}")

    @property
    def start(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the window."""
        return datetime(self.until.year, self.until.month, self.until.day,
                        tzinfo=UTC) + timedelta(days=1)

    def days(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def as_state(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}

    @classmethod
    def from_state(cls, data: dict[str, str]) -> Window:
        return cls(date.fromisoformat(data["since"]), date.fromisoformat(data["until"]))


@dataclass(slots=True)
class TimelinePage:
    """What one fetched page of a timeline shows, and where the walk goes next.

    `posts` are dicts shaped like PostItem with a timezone-aware `created_at`; `oldest_seen` is
    the oldest creation time the listing showed (also for posts outside the window), which is
    how far back a chronological walk has proven everything. `capped` says the listing stopped
    at a cap: posts in `capped_span` [start, end) (default: from the window's start through
    `oldest_seen`) may be missing. `ranked` says the listing is ordered by popularity or
    relevance, not time. `tag_display` is the tag as the platform names it, once a step knows.
    """

    posts: list[dict[str, Any]] = field(default_factory=list)
    next_fetch: Fetch | None = None
    oldest_seen: datetime | None = None
    capped: bool = False
    capped_span: tuple[datetime, datetime] | None = None
    ranked: bool = False
    tag_display: str | None = None


def timeline_refusal(cls: type[Platform]) -> str | None:
    """Why a platform cannot be backfilled, or None when it has a timeline."""
    if callable(getattr(cls, "timeline_fetch", None)) and callable(
            getattr(cls, "on_backfill", None)):
        return None
    reason = cls.backfill.strip()
    if reason.lower().startswith("none"):
        reason = reason[4:].strip(" :-—()") or "no public timeline with post times"
    return reason or "no public timeline with post times"


def oldest(posts: list[dict[str, Any]]) -> datetime | None:
    """The oldest `created_at` among parsed posts."""
    times = [p["created_at"] for p in posts if p.get("created_at") is not None]
    return min(times) if times else None
