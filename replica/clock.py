"""Simulated time for the offline replica: it only moves when ticked or set."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2025, 1, 13, tzinfo=UTC)
DEFAULT_STEP = timedelta(hours=1)


def _as_utc(dt: datetime) -> datetime:
    # Naive datetimes are refused rather than guessed: a silent local-time reading would make
    # the "pure function of simulated time" differ between machines.
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"ReplicaClock needs a timezone-aware datetime, got {dt!r}")
    return dt.astimezone(UTC)


class ReplicaClock:
    """Thread-safe simulated UTC clock advanced in fixed steps by tick()."""

    def __init__(self, start: datetime = DEFAULT_START, step: timedelta = DEFAULT_STEP) -> None:
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        self._lock = threading.Lock()
        self._now = _as_utc(start)
        self.start = self._now
        self.step = step

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def tick(self, n: int = 1) -> datetime:
        # Going backwards through tick() would break the monotonic-counter promise of World;
        # set() remains available for tests that deliberately rewind.
        if n < 0:
            raise ValueError("tick(n) needs n >= 0; use set() to rewind")
        with self._lock:
            self._now = self._now + self.step * n
            return self._now

    def set(self, dt: datetime) -> datetime:
        value = _as_utc(dt)
        with self._lock:
            self._now = value
            return value

    def __repr__(self) -> str:
        return f"ReplicaClock(now={self.now().isoformat()}, step={self.step})"
