"""Growth curves of the ground truth: every counter a monotonic function of time.

A tag's curve is drawn from the seed (or pinned by a platform's anchored record, see
replica/truth.py); posts are numbered by ordinal, each created at the second its count passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from replica.truth import truth_of, unit

__all__ = ["DAY", "HOUR", "T_REF", "Shape", "count", "ordinal_ts", "platform_values", "shape_of"]

# Reference instant the generic curves are calibrated at (the default clock start).
T_REF = datetime(2025, 1, 13, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


@dataclass(frozen=True)
class Shape:
    """Growth curve g(t) = sigmoid(x) + tail * softplus(x), x = (t - t0) / width, plus scales."""

    t0: float
    width: float
    tail: float
    views_k: float
    posts_k: float
    participants_k: float
    birth: float  # creation instant used for snowflake/ObjectId style ids

    def g(self, ts: float) -> float:
        x = (ts - self.t0) / self.width
        # Both terms increase with x, so every floor(k * g) counter is monotonic non-decreasing;
        # the softplus tail keeps counts growing after the logistic burst saturates.
        return _sigmoid(x) + self.tail * _softplus(x)


def platform_values(seed: int, platform: str, key: str, values: dict[str, int]) -> dict[str, int]:
    """The generic counters with the platform-specific ones (Bilibili 讨论, frozen records)."""
    out = dict(values)
    truth = truth_of(platform)
    ratio = truth.discussions_per_post
    if ratio is not None:
        lo, hi = ratio
        per_post = lo * (hi / lo) ** unit(seed, platform, key, "discussions")
        out["discussions"] = math.floor(out["posts"] * per_post)  # monotonic, as posts is
    out.update(truth.frozen.get(key, {}))
    out["participants"] = min(out["posts"], out["participants"])
    return out


@lru_cache(maxsize=4096)
def shape_of(seed: int, platform: str, key: str) -> Shape:
    truth = truth_of(platform)
    anchor = truth.anchors.get(key)
    ref = T_REF.timestamp()
    if anchor is not None:
        # Anchors pin the value at a given instant, independent of the seed.
        t0 = anchor.t0.timestamp()
        width = anchor.width_hours * HOUR
        base = Shape(t0, width, anchor.tail, 1.0, 1.0, 1.0, t0 - 2 * DAY)
        at = base.g(anchor.at.timestamp())
        return Shape(
            t0,
            width,
            anchor.tail,
            anchor.views / at,
            anchor.posts / at,
            anchor.participants / at,
            base.birth,
        )

    def u(name: str) -> float:
        return unit(seed, platform, key, "shape", name)

    width = (7.0 + 113.0 * u("width")) * DAY
    # The midpoint lies at most one width after T_REF so g(T_REF) >= sigmoid(-1) and the scale
    # below cannot explode later on.
    t0 = ref - 365.0 * DAY * u("t0") + width * u("t0_late")
    tail = 0.02 + 0.28 * u("tail")
    views_ref = 10.0 ** (4.0 + 5.7 * u("views"))  # 1e4 .. 5e9 views at T_REF
    lo, hi = truth.views_per_post
    views_per_post = lo * (hi / lo) ** u("ratio")
    participant_share = 0.55 + 0.37 * u("participants")
    probe = Shape(t0, width, tail, 1.0, 1.0, 1.0, 0.0)
    views_k = views_ref / probe.g(ref)
    posts_k = views_k / views_per_post
    birth = t0 - (4.0 + 4.0 * u("birth")) * width
    return Shape(t0, width, tail, views_k, posts_k, posts_k * participant_share, birth)


def count(k: float, shape: Shape, ts: float) -> int:
    return max(0, math.floor(k * shape.g(ts)))


@lru_cache(maxsize=200_000)
def ordinal_ts(seed: int, platform: str, key: str, ordinal: int) -> int:
    """First whole second at which the tag had more than `ordinal` posts (post creation time).

    Independent of "now", so a post keeps its id and timestamp across snapshots.
    """
    shape = shape_of(seed, platform, key)
    lo = math.floor(shape.t0 - 80.0 * shape.width)
    hi = math.ceil(shape.t0 + shape.width)
    while count(shape.posts_k, shape, hi) <= ordinal:
        hi += math.ceil(hi - lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(shape.posts_k, shape, mid) > ordinal:
            hi = mid
        else:
            lo = mid
    return hi
