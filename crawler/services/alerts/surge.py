"""A surge: the latest growth rate of a counter against the tag's own recent rates.

Pure functions (docs/alerts.md#surge has the formula). Growth rate of an interval: the relative
change per hour, r = (v_i - v_{i-1}) / v_{i-1} / hours. The latest rate x is scored against the
N rates before it with the modified z-score of Iglewicz and Hoaglin,
M = (x - median) / (1.4826 * MAD), where MAD is the median absolute deviation from the median
(1.4826 * MAD estimates the standard deviation of normal data; 0.6745 = 1 / 1.4826). When
MAD is 0 (more than half the rates are equal), 1.253314 * mean absolute deviation stands in for
it; and the scale is at least 1% of |median|, so floating-point noise in a perfectly regular
series is never a surge. A series flat throughout (every earlier rate equal, the scale 0) scores
+inf for any faster latest rate, -inf for a slower one, 0 for the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import median

MAD_TO_SIGMA = 1.4826  # 1 / 0.6745
MEAN_AD_TO_SIGMA = 1.253314  # sqrt(pi / 2)
SCALE_FLOOR = 0.01  # the scale is at least this fraction of |median|


@dataclass(frozen=True)
class Scored:
    """The latest rate, the median of the earlier ones, and the score."""

    rate: float  # per hour, as a fraction (0.02 = +2% an hour)
    median: float
    score: float
    intervals: int  # earlier rates scored against


def growth_rates(points: list[tuple[datetime, int]]) -> list[float]:
    """Relative growth per hour between consecutive (time, value) points, oldest first.

    An interval from a value of 0 or less has no relative rate and is left out, as is one whose
    end is not later than its start.
    """
    rates = []
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        hours = (t1 - t0).total_seconds() / 3600
        if hours <= 0 or v0 <= 0:
            continue
        rates.append((v1 - v0) / v0 / hours)
    return rates


def modified_z(latest: float, history: list[float]) -> float:
    """The modified z-score of `latest` against `history` (see the module's docstring)."""
    if not history:
        raise ValueError("no history to score against")
    centre = median(history)
    deviations = [abs(h - centre) for h in history]
    mad = median(deviations)
    scale = MAD_TO_SIGMA * mad if mad > 0 else MEAN_AD_TO_SIGMA * (
        sum(deviations) / len(deviations))
    scale = max(scale, SCALE_FLOOR * abs(centre))
    if scale == 0:
        return 0.0 if latest == centre else math.copysign(math.inf, latest - centre)
    return (latest - centre) / scale


def score_series(points: list[tuple[datetime, int]], history: int,
                 minimum: int) -> Scored | None:
    """The latest interval's rate scored against up to `history` rates before it; None when
    fewer than `minimum` earlier rates exist."""
    if len(points) < 2 or len(growth_rates(points[-2:])) != 1:
        return None  # the newest interval itself has no rate
    rates = growth_rates(points)
    if len(rates) < minimum + 1:
        return None
    latest, earlier = rates[-1], rates[-1 - history:-1]
    return Scored(latest, median(earlier), modified_z(latest, earlier), len(earlier))
