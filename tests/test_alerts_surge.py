"""The surge score on known series: medians, MADs and scores worked out by hand below."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from crawler.services.alerts.surge import growth_rates, modified_z, score_series

T0 = datetime(2025, 1, 13, tzinfo=UTC)


def test_the_modified_z_score_of_a_jump_over_a_noisy_series() -> None:
    history = [0.010, 0.012, 0.011, 0.009, 0.010, 0.011]
    # sorted 0.009 0.010 0.010 0.011 0.011 0.012: median (0.010 + 0.011) / 2 = 0.0105
    # |h - median| = .0005 .0015 .0005 .0015 .0005 .0005: their median (MAD) = 0.0005
    assert modified_z(0.05, history) == pytest.approx((0.05 - 0.0105) / (1.4826 * 0.0005))
    assert modified_z(0.05, history) == pytest.approx(53.285, abs=1e-3)
    assert modified_z(0.0105, history) == pytest.approx(0.0, abs=1e-9)
    assert modified_z(0.0095, history) == pytest.approx(-0.001 / (1.4826 * 0.0005))


def test_a_mad_of_zero_falls_back_to_the_mean_absolute_deviation() -> None:
    history = [0.01, 0.01, 0.01, 0.01, 0.02]
    # median 0.01; deviations 0 0 0 0 0.01: MAD 0, mean absolute deviation 0.002
    assert modified_z(0.03, history) == pytest.approx(0.02 / (1.253314 * 0.002))


def test_a_perfectly_regular_series_needs_a_one_percent_change_of_rate() -> None:
    history = [0.01] * 6  # MAD and mean deviation 0: the scale is 1% of the median, 0.0001
    assert modified_z(0.0101, history) == pytest.approx(1.0)
    assert modified_z(0.0135, history) == pytest.approx(35.0)


def test_a_flat_counter_that_starts_growing_scores_infinite() -> None:
    assert modified_z(0.01, [0.0] * 5) == math.inf
    assert modified_z(-0.01, [0.0] * 5) == -math.inf
    assert modified_z(0.0, [0.0] * 5) == 0.0


def test_growth_rates_are_per_hour_and_skip_intervals_without_one() -> None:
    points = [(T0, 100), (T0 + timedelta(hours=2), 120),  # +20% in 2 h: 0.1 an hour
              (T0 + timedelta(hours=2), 150),  # no time passed: no rate
              (T0 + timedelta(hours=3), 0),  # 150 -> 0 in 1 h: -1.0
              (T0 + timedelta(hours=4), 10)]  # from 0: no relative rate
    assert growth_rates(points) == pytest.approx([0.1, -1.0])


def test_score_series_scores_the_newest_interval_against_the_last_n() -> None:
    values = [1000, 1010, 1020, 1030, 1040, 1050, 1060, 1200]
    points = [(T0 + timedelta(hours=i), v) for i, v in enumerate(values)]
    scored = score_series(points, history=3, minimum=3)
    assert scored is not None
    assert scored.intervals == 3
    assert scored.rate == pytest.approx(140 / 1060)
    # the three rates before it: 10/1030, 10/1040, 10/1050; median 10/1040
    assert scored.median == pytest.approx(10 / 1040)
    assert score_series(points[:4], history=3, minimum=3) is None  # 2 earlier rates only
    # a newest point at the time of the one before it has no interval of its own
    assert score_series([*points[:-1], (T0 + timedelta(hours=6), 1200)], 3, 3) is None
