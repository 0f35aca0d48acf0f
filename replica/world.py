"""Deterministic ground truth for the replica: a pure function of seed, platform, tag and time."""

from __future__ import annotations

import math
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from replica.clock import ReplicaClock
from replica.curves import DAY as _DAY
from replica.curves import HOUR as _HOUR
from replica.curves import count as _count
from replica.curves import ordinal_ts as _ordinal_ts
from replica.curves import platform_values as _platform_values
from replica.curves import shape_of as _shape
from replica.display import display_count, display_parts
from replica.truth import digest as _digest
from replica.truth import int_of as _int
from replica.truth import registry as _registry
from replica.truth import truth_of
from replica.truth import unit as _unit
from replica.variants import VARIANTS, Failure, Key, Variants

__all__ = [
    "LIST_CAP",
    "VARIANTS",
    "DayTruth",
    "Failure",
    "PostTruth",
    "TagNotFound",
    "TopicTruth",
    "World",
    "display_count",
    "display_parts",
    "normalize_tag",
]

# How many posts any listing API will page through [INF]: the real feeds are capped (XHS keyword
# search near 220), the exact TikTok/XHS topic caps are unknown.
LIST_CAP = 300
# Tags with at most this many posts are listed newest-first only; the hot/new mix needs a pool.
_SMALL_POOL = 120
_RECENT_GAP = 600.0  # seconds between the "recent" picks of the mixed feed


class TagNotFound(LookupError):
    """Raised by World.topic() for a tag that does not exist on the platform."""


def normalize_tag(tag: str) -> str:
    """Key used for every tag comparison: NFKC, case-folded, without '#' and outer spaces."""
    return unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip().casefold()


def _key(platform: str, tag: str) -> Key:
    return platform.lower(), normalize_tag(tag)

# ---------------------------------------------------------------------------------------------
# per-platform knowledge


# suffixes of the related topics a topic search lists after the exact match [INF]
_RELATED = ("日常", "分享", "攻略", "推荐")


@lru_cache(maxsize=50_000)
def _author(seed: int, platform: str, author_key: int) -> tuple[str, str, str]:
    """(id, unique id, nickname) of one of a platform's 20k simulated authors."""
    return truth_of(platform).author(_digest(seed, platform, "author", author_key), author_key)


def _id_key(post_id: str) -> tuple[int, int | str]:
    """Sort key of a post id: numeric ids by value, others (Bluesky TIDs) as sortable text."""
    return (0, int(post_id)) if post_id.isdigit() else (1, post_id)


# ---------------------------------------------------------------------------------------------
# public data


@dataclass(frozen=True)
class TopicTruth:
    """Ground-truth counters of one tag at one simulated instant.

    `discussions` is the number of posts/notes (XHS "讨论" is its notes count, TikTok has no
    separate figure) so it equals `posts` unless overridden; `participants` is distinct
    authors [INF].
    """

    platform: str
    tag: str
    name: str
    topic_id: str
    page_id: str | None
    views: int
    posts: int
    discussions: int
    participants: int
    at: datetime
    desc: str = ""


@dataclass(frozen=True)
class PostTruth:
    """One public post under a tag as the platform currently shows it."""

    id: str
    ordinal: int
    author_id: str
    author_unique_id: str
    author_nickname: str
    title: str
    text: str
    created_at: datetime
    likes: int
    plays: int
    comments: int
    shares: int
    collects: int


@dataclass(frozen=True)
class DayTruth:
    """Posts and distinct posting accounts of one UTC day (Mastodon's `history` entries)."""

    day: datetime  # midnight UTC
    posts: int
    participants: int


class World:
    """Deterministic ground truth plus per-tag test variants, driven by a ReplicaClock."""

    def __init__(self, seed: int = 2025, clock: ReplicaClock | None = None) -> None:
        self.seed = int(seed)
        self.clock = clock if clock is not None else ReplicaClock()
        self._lock = threading.Lock()
        self._variants = Variants()
        self._by_id: dict[tuple[str, str], str] = {}
        # Pages are re-requested many times per simulated hour; the lists are pure functions of
        # their arguments, so memoising them is safe.
        self._posts_cached = lru_cache(maxsize=1024)(self._posts)
        for platform, truth in _registry().items():
            for name in truth.catalog:
                self.register(platform, name)

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def tick_index(self) -> int:
        """Number of whole clock steps since the Unix epoch; changes exactly when ticked."""
        return int(self.now().timestamp() // (self.clock.step / timedelta(seconds=1)))

    def unit(self, *parts: object) -> float:
        """Deterministic uniform float in [0, 1) for this seed and the given parts."""
        return _unit(self.seed, *parts)

    # -- identity -----------------------------------------------------------------------------

    def display_name(self, platform: str, tag: str) -> str:
        platform = platform.lower()
        key = normalize_tag(tag)
        truth = truth_of(platform)
        anchor = truth.anchors.get(key)
        if anchor is not None:
            return anchor.name
        for name in truth.catalog:
            if normalize_tag(name) == key:
                return name
        return unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip()

    def ids(self, platform: str, tag: str) -> tuple[str, str | None]:
        """(topic_id, page_id) of a tag; time-independent. page_id is None except on XHS."""
        platform = platform.lower()
        key = normalize_tag(tag)
        truth = truth_of(platform)
        fixed = truth.fixed_ids.get(key)
        if fixed is not None:
            return fixed, None
        return truth.topic_ids(self.seed, platform, key, _shape(self.seed, platform, key).birth)

    def register(self, platform: str, tag: str) -> None:
        """Remember a tag's ids so that URLs built from them can be resolved back to the tag."""
        platform = platform.lower()
        topic_id, page_id = self.ids(platform, tag)
        name = self.display_name(platform, tag)
        with self._lock:
            self._by_id.setdefault((platform, topic_id), name)
            if page_id is not None:
                self._by_id.setdefault((platform, page_id), name)

    def lookup(self, platform: str, some_id: str) -> str | None:
        """Tag name for a topic_id or page_id previously produced by this world, else None."""
        with self._lock:
            return self._by_id.get((platform.lower(), some_id))

    # -- variants -----------------------------------------------------------------------------

    def set_variant(self, platform: str, tag: str, name: str, **params: Any) -> None:
        """Switch a test variant on for (platform, tag); "normal" removes all of that tag's."""
        self._variants.switch(_key(platform, tag), name, **params)

    def clear_variants(self) -> None:
        self._variants.clear()

    def variants(self, platform: str, tag: str) -> dict[str, dict[str, Any]]:
        """Copy of the variants active for (platform, tag), name -> params."""
        return self._variants.of(_key(platform, tag))

    def has_variant(self, platform: str, tag: str, name: str) -> bool:
        return self._variants.has(_key(platform, tag), name)

    def all_variants(self) -> list[dict[str, Any]]:
        return self._variants.active()

    def take_failure(self, platform: str, tag: str) -> Failure | None:
        """Consume one scheduled 429/5xx for a request about this tag, if any remain.

        rate_limited fires before server_error when both are set, as an edge limiter would.
        """
        return self._variants.take_failure(_key(platform, tag))

    # -- truth --------------------------------------------------------------------------------

    def exists(self, platform: str, tag: str) -> bool:
        key = normalize_tag(tag)
        if not key or key.startswith("nosuch"):
            return False
        return not self.has_variant(platform, tag, "not_found")

    def topic(self, platform: str, tag: str, at: datetime | None = None) -> TopicTruth:
        """Counters at `at` (default: the clock's now). Raises TagNotFound for missing tags."""
        platform = platform.lower()
        if not self.exists(platform, tag):
            raise TagNotFound(f"{platform}: no tag {tag!r}")
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        shape = _shape(self.seed, platform, key)
        ts = when.timestamp()
        posts = _count(shape.posts_k, shape, ts)
        values = {
            "views": _count(shape.views_k, shape, ts),
            "posts": posts,
            "discussions": posts,
            "participants": min(posts, _count(shape.participants_k, shape, ts)),
        }
        values = _platform_values(self.seed, platform, key, values)
        values.update(self.variants(platform, tag).get("override", {}))
        topic_id, page_id = self.ids(platform, tag)
        self.register(platform, tag)
        desc = truth_of(platform).desc(self.seed, platform, key)
        return TopicTruth(
            platform=platform,
            tag=tag,
            name=self.display_name(platform, tag),
            topic_id=topic_id,
            page_id=page_id,
            at=when,
            desc=desc,
            **values,
        )

    def daily(self, platform: str, tag: str, days: int = 7,
              at: datetime | None = None) -> list[DayTruth]:
        """Per-UTC-day activity for the last `days` days, newest (today, so far) first.

        Posts are the posts created that day, consistent with `posts_for`; distinct accounts
        are a per-day share of them [INF], at least one on a day with posts.
        """
        platform = platform.lower()
        if not self.exists(platform, tag):
            raise TagNotFound(f"{platform}: no tag {tag!r}")
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        shape = _shape(self.seed, platform, key)
        share = shape.participants_k / shape.posts_k
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        out = []
        for back in range(days):
            start = midnight - timedelta(days=back)
            # creation times are whole seconds and _count(t) counts those <= t, so the day
            # [start, start + 1 day) is count(end - 1) - count(start - 1)
            end = min(start.timestamp() + _DAY - 1, math.floor(when.timestamp()))
            posts = _count(shape.posts_k, shape, end) - _count(
                shape.posts_k, shape, start.timestamp() - 1)
            factor = 0.8 + 0.2 * _unit(self.seed, platform, key, "daily", start.date())
            accounts = min(posts, max(1, math.floor(posts * share * factor))) if posts else 0
            out.append(DayTruth(day=start, posts=posts, participants=accounts))
        return out

    def related(self, platform: str, tag: str) -> list[str]:
        """1-3 related topic names shown after the exact match in a topic search [INF]."""
        name = self.display_name(platform, tag)
        key = normalize_tag(tag)
        n = 1 + _int(self.seed, platform.lower(), key, "related") % 3
        start = _int(self.seed, platform.lower(), key, "related-start") % len(_RELATED)
        return [name + _RELATED[(start + i) % len(_RELATED)] for i in range(n)]

    def posts_for(
        self,
        platform: str,
        tag: str,
        limit: int = 30,
        order: str = "mixed",
        at: datetime | None = None,
    ) -> list[PostTruth]:
        """Posts currently shown under the tag, prefix-stable in `limit` for a given instant.

        order="mixed" interleaves the newest posts with popular older ones (the default feed);
        order="newest" lists strictly by creation time. Ground truth only: an `override`
        variant changes the counters, not the post pool.
        """
        if order not in ("mixed", "newest"):
            raise ValueError("order must be 'mixed' or 'newest'")
        platform = platform.lower()
        if not self.exists(platform, tag):
            return []
        when = self.now() if at is None else at.astimezone(UTC)
        name = self.display_name(platform, tag)
        return list(self._posts_cached(platform, normalize_tag(tag), name, limit, order, when))

    def _posts(
        self, platform: str, key: str, name: str, limit: int, order: str, when: datetime
    ) -> tuple[PostTruth, ...]:
        shape = _shape(self.seed, platform, key)
        total = _count(shape.posts_k, shape, when.timestamp())
        limit = max(0, min(limit, LIST_CAP, total))
        ordinals = self._ordinals(platform, key, total, limit, order, when.timestamp())
        return tuple(self._post(platform, key, name, o, when) for o in ordinals)

    def timeline(
        self,
        platform: str,
        tag: str,
        until: datetime,
        since: datetime | None = None,
        limit: int = 20,
        skip: int = 0,
        below_id: str | None = None,
        at: datetime | None = None,
    ) -> list[PostTruth]:
        """Posts created in [since, until), newest first, as a chronological listing pages them.

        Ordered by creation second, then id: ids grow with time on every platform here, so this
        is the platforms' own id order. `below_id` keeps only older ids (Mastodon `max_id`, an
        id offset), `skip` drops that many first (offset cursors). No LIST_CAP applies: a
        listing's cap is its platform module's business. Cost grows with skip + limit only.
        """
        platform = platform.lower()
        if limit <= 0 or not self.exists(platform, tag):
            return []
        when = self.now() if at is None else at.astimezone(UTC)
        key = normalize_tag(tag)
        name = self.display_name(platform, tag)
        shape = _shape(self.seed, platform, key)
        # creation times are whole seconds: "before until" is "at most ceil(until) - 1"
        last = min(math.ceil(until.timestamp()) - 1, math.floor(when.timestamp()))
        ordinal = _count(shape.posts_k, shape, last) - 1
        floor_ = 0 if since is None else _count(shape.posts_k, shape,
                                                 math.ceil(since.timestamp()) - 1)
        below = _id_key(below_id) if below_id is not None else None
        out: list[PostTruth] = []
        while ordinal >= floor_ and len(out) < skip + limit:
            second = _ordinal_ts(self.seed, platform, key, ordinal)
            group = []
            while ordinal >= floor_ and _ordinal_ts(self.seed, platform, key, ordinal) == second:
                group.append(self._post(platform, key, name, ordinal, when))
                ordinal -= 1
            group.sort(key=lambda p: _id_key(p.id), reverse=True)
            out.extend(p for p in group if below is None or _id_key(p.id) < below)
        return out[skip : skip + limit]

    def count_between(self, platform: str, tag: str, since: datetime, until: datetime,
                      at: datetime | None = None) -> int:
        """How many posts were created in [since, until) (cheap: no post is built)."""
        platform = platform.lower()
        if not self.exists(platform, tag):
            return 0
        when = self.now() if at is None else at.astimezone(UTC)
        shape = _shape(self.seed, platform, normalize_tag(tag))
        last = min(math.ceil(until.timestamp()) - 1, math.floor(when.timestamp()))
        first = math.ceil(since.timestamp()) - 1
        if last <= first:
            return 0
        return _count(shape.posts_k, shape, last) - _count(shape.posts_k, shape, first)

    def day_counts(self, platform: str, tag: str, first: date, last: date,
                   at: datetime | None = None) -> dict[date, DayTruth]:
        """Posts and distinct authors per UTC day, first to last inclusive, counted over the
        very posts the listings serve: what a complete backfill must reproduce exactly."""
        out = {}
        day = first
        while day <= last:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            posts = self.timeline(platform, tag, until=start + timedelta(days=1), since=start,
                                  limit=10**9, at=at)
            out[day] = DayTruth(day=start, posts=len(posts),
                                participants=len({p.author_id for p in posts}))
            day += timedelta(days=1)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _ordinals(
        self, platform: str, key: str, total: int, limit: int, order: str, ts: float
    ) -> list[int]:
        if order == "newest" or total <= _SMALL_POOL:
            return [total - 1 - i for i in range(limit)]
        shape = _shape(self.seed, platform, key)
        out: list[int] = []
        seen: set[int] = set()
        recent = total  # exclusive upper bound of the next "recent" ordinal
        slot = 0
        while len(out) < limit:
            if slot % 2 == 0:
                # Recent posts about _RECENT_GAP apart rather than the last few seconds' worth,
                # which on a busy tag would all share one timestamp and have no likes yet.
                back = ts - (slot // 2) * _RECENT_GAP
                recent = max(0, min(recent - 1, _count(shape.posts_k, shape, back) - 1))
                ordinal = recent
            else:
                # Best of a few random older posts, so the odd slots really are the popular ones.
                candidates = [
                    math.floor(_unit(self.seed, platform, key, "hot", total, slot, c) * total)
                    for c in range(6)
                ]
                ordinal = max(candidates, key=lambda o: self._virality(platform, key, o))
            slot += 1
            if ordinal not in seen:
                seen.add(ordinal)
                out.append(ordinal)
        return out

    def _virality(self, platform: str, key: str, ordinal: int) -> float:
        u = _unit(self.seed, platform, key, "post", ordinal, "viral")
        # Pareto-ish tail: most posts get a few likes, a handful get hundreds of thousands.
        # float ** float is typed Any (a negative base would give a complex); here the base is > 1.
        tail: float = (1.0 / (1.0 - u)) ** 1.25
        return min(8.0 * tail, 2_000_000.0)

    def _post(self, platform: str, key: str, name: str, ordinal: int, when: datetime) -> PostTruth:
        seed = self.seed
        created = _ordinal_ts(seed, platform, key, ordinal)
        created = min(created, math.floor(when.timestamp()))
        age_hours = max(0.0, (when.timestamp() - created) / _HOUR)
        likes = math.floor(self._virality(platform, key, ordinal) * (1 - math.exp(-age_hours / 36)))
        # One digest feeds all per-post draws (4 bytes each); hashing dominates the page cost.
        d = _digest(seed, platform, key, "post", ordinal)
        u = [int.from_bytes(d[i : i + 4], "big") / 2.0**32 for i in range(0, 32, 4)]
        author_id, unique_id, nickname = _author(seed, platform, int(u[0] * 20_000))
        entropy = int.from_bytes(d[24:32], "big")
        post_id, title, text = truth_of(platform).post(created, entropy, name, u)
        return PostTruth(
            id=post_id,
            ordinal=ordinal,
            author_id=author_id,
            author_unique_id=unique_id,
            author_nickname=nickname,
            title=title,
            text=text,
            created_at=datetime.fromtimestamp(created, UTC),
            likes=likes,
            plays=math.floor(likes * (5 + 25 * u[3])) + likes,
            comments=math.floor(likes * (0.005 + 0.04 * u[4])),
            shares=math.floor(likes * (0.002 + 0.03 * u[5])),
            collects=math.floor(likes * (0.01 + 0.1 * u[2])),
        )

    def state(self) -> dict[str, Any]:
        """JSON-able summary for the admin endpoint."""
        return {
            "now": self.now().isoformat().replace("+00:00", "Z"),
            "seed": self.seed,
            "step_seconds": self.clock.step / timedelta(seconds=1),
            "variants": self.all_variants(),
        }
