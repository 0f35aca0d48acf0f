"""The per-platform circuit breaker's state: which platforms are cooling off, until when, and why.

A captcha, a block or a rate limit that outlived the retries opens a platform's breaker: its
requests are not sent until the cool-off ends (docs/access.md "Backing off a platform"). The
state outlives the run in `<root>/.tagarchive/breaker.json` (an S3 root: the backend's local
`state_root`), so the next scheduled crawl leaves the platform alone too. The file is owner-only
and replaced atomically under an flock, so two crawls on one root merge their trips instead of
overwriting each other's. No Scrapy here: the middleware (crawler/downloader/breaker.py),
`tagarchive status` and `tagarchive breaker` read the same file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.paths import state_path

try:
    import fcntl
except ImportError:  # Windows: no lock; the replace is still atomic
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

STATE_FILE = "breaker.json"
LOCK_FILE = "breaker.lock"
VERSION = 1

# the outcomes that open a breaker (crawler/platforms/base.py Outcome values)
CAPTCHA, BLOCKED, RATE_LIMITED = "captcha", "blocked", "rate_limited"
TRIP_KINDS = (CAPTCHA, BLOCKED, RATE_LIMITED)

COOLING, HALF_OPEN, CLOSED = "cooling", "half_open", "closed"


@dataclass(frozen=True)
class CoolOff:
    """How long a tripped platform is left alone (seconds); the TAGARCHIVE_COOLOFF_* settings."""

    captcha: float = 1800.0  # 30 min
    blocked: float = 7200.0  # 2 h
    rate_limited: float = 900.0  # 15 min, unless the platform's Retry-After says otherwise
    # each further trip within `window` of the previous cool-off's end doubles it, up to `max`
    max: float = 86400.0  # 24 h
    window: float = 86400.0

    @classmethod
    def from_settings(cls, get: Callable[[str], Any]) -> CoolOff:
        """Read `TAGARCHIVE_COOLOFF_<FIELD>` (seconds; strings from `-s` are converted)."""
        values: dict[str, float] = {}
        for name in asdict(cls()):
            raw = get(f"TAGARCHIVE_COOLOFF_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = float(raw)
        return cls(**values)

    def seconds(self, kind: str, trips: int, retry_after: float | None = None) -> float:
        """The cool-off of the `trips`-th trip in a row of this kind."""
        base = {CAPTCHA: self.captcha, BLOCKED: self.blocked}.get(kind, self.rate_limited)
        if kind == RATE_LIMITED and retry_after is not None and retry_after > 0:
            base = retry_after
        return min(self.max, base * 2.0 ** max(0, trips - 1))


@dataclass(frozen=True)
class PlatformBreaker:
    """One platform's breaker: its last trip, and whether it still cools (`phase`)."""

    platform: str
    kind: str  # captcha | blocked | rate_limited
    detail: str  # the tag and the platform's word that tripped it
    tripped_at: datetime
    until: datetime
    trips: int = 1  # trips in a row (each within the window of the previous cool-off's end)
    closed: bool = False  # a probe went through after the cool-off (kept for the repeat count)

    def phase(self, now: datetime) -> str:
        """cooling (nothing is sent), half_open (the next request probes) or closed."""
        if self.closed:
            return CLOSED
        return COOLING if now < self.until else HALF_OPEN

    def line(self) -> str:
        """`captcha until 2026-01-22T10:30:00Z (trip 2): <detail>`: why, and until when."""
        return f"{self.kind} until {stamp(self.until)} (trip {self.trips}): {self.detail}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tripped_at"], data["until"] = stamp(self.tripped_at), stamp(self.until)
        del data["platform"]
        return data


def describe(entry: PlatformBreaker, now: datetime) -> str:
    """One line of at most ~75 characters for `status` and `breaker list`:
    `xiaohongshu cooling until 2026-01-22 10:30 UTC (in 25m): captcha` (` x2`: second trip)."""
    phase = entry.phase(now)
    when = entry.until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    why = entry.kind + (f" x{entry.trips}" if entry.trips > 1 else "")
    if phase == COOLING:
        wait = _span((entry.until - now).total_seconds())
        return f"{entry.platform} cooling until {when} (in {wait}): {why}"
    if phase == HALF_OPEN:
        return f"{entry.platform} half-open since {when}, next request probes: {why}"
    return f"{entry.platform} closed, last cooled until {when}: {why}"


def _span(seconds: float) -> str:
    """What is left of a cool-off: 45 -> '45s', 1530 -> '25m30s' -> shown '25m', 7200 -> '2h'."""
    rest = max(0, round(seconds))
    if rest < 60:
        return f"{rest}s"
    rest //= 60  # minutes are enough once there are any
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def stamp(moment: datetime) -> str:
    """A UTC time to the second, ISO 8601 with Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trip(previous: PlatformBreaker | None, platform: str, kind: str, detail: str,
         now: datetime, cooloff: CoolOff, retry_after: float | None = None) -> PlatformBreaker:
    """The breaker after a trip at `now`: a repeat (within the window of the previous cool-off's
    end) doubles the cool-off, up to its cap."""
    trips = 1
    if previous is not None and (now - previous.until).total_seconds() <= cooloff.window:
        trips = previous.trips + 1
    seconds = cooloff.seconds(kind, trips, retry_after)
    return PlatformBreaker(platform, kind, detail, now, now + timedelta(seconds=seconds), trips)


class BreakerStateError(StorageError, ValueError):
    """The state file is not one this version wrote (damaged, or edited by hand)."""


def _parse(text: str) -> dict[str, PlatformBreaker]:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise BreakerStateError(f"not a version {VERSION} breaker state")
    platforms = data.get("platforms")
    if not isinstance(platforms, dict):
        raise BreakerStateError("no 'platforms' object")
    entries = {}
    for name, entry in platforms.items():
        try:
            tripped_at = datetime.fromisoformat(entry["tripped_at"].replace("Z", "+00:00"))
            until = datetime.fromisoformat(entry["until"].replace("Z", "+00:00"))
            if tripped_at.tzinfo is None or until.tzinfo is None:
                raise ValueError("a time without its zone")
            entries[name] = PlatformBreaker(
                str(name), str(entry["kind"]), str(entry.get("detail", "")), tripped_at, until,
                int(entry.get("trips", 1)), bool(entry.get("closed", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BreakerStateError(f"platform {name!r}: {type(exc).__name__}: {exc}") from None
    return entries


class BreakerStore:
    """`<state_root>/.tagarchive/breaker.json`: read whole, changed under an flock, replaced
    atomically (temp file, fsync, rename), owner-only."""

    def __init__(self, state_root: str | Path) -> None:
        self.root = state_root
        # UnsafePathError when .tagarchive or the file is a symbolic link
        self.path = state_path(state_root, STATE_FILE)

    def load(self) -> tuple[dict[str, PlatformBreaker], str | None]:
        """Every platform's breaker, and a one-line problem when the file cannot be read: a
        damaged file is reported and read as no breaker at all (every platform closed)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, None
        except (OSError, UnicodeDecodeError) as exc:
            return {}, self._problem(exc)
        try:
            return _parse(text), None
        except (ValueError, BreakerStateError) as exc:  # json.JSONDecodeError is a ValueError
            return {}, self._problem(exc)

    def _problem(self, exc: BaseException) -> str:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        return (f"breaker state {self.path} is unreadable ({type(exc).__name__}: {reason}); "
                "every platform is treated as closed")

    def update(self, change: Callable[[dict[str, PlatformBreaker]], None]
               ) -> dict[str, PlatformBreaker]:
        """Re-read the file, apply `change` to its breakers, and replace it; under the lock, so
        a concurrent crawl's trip on another platform is kept. Returns what was written."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        state_path(self.root, STATE_FILE)  # what mkdir found there is checked again
        with self._locked():
            entries, _problem = self.load()  # a damaged file is replaced by a readable one
            change(entries)
            self._write(entries)
        return entries

    def reset(self, platforms: Iterable[str] | None = None) -> list[str]:
        """Forget the breakers of these platforms (all when None); the names forgotten."""
        wanted = None if platforms is None else set(platforms)
        forgotten: list[str] = []

        def forget(entries: dict[str, PlatformBreaker]) -> None:
            for name in sorted(entries):
                if wanted is None or name in wanted:
                    forgotten.append(name)
                    del entries[name]

        self.update(forget)
        return forgotten

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        lock = state_path(self.root, LOCK_FILE)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a read and a small write
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, entries: Mapping[str, PlatformBreaker]) -> None:
        data = {"version": VERSION,
                "platforms": {name: entries[name].as_json() for name in sorted(entries)}}
        temp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False, indent=1)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)  # readers see the old file or the new one, never half
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def probe_passed(entry: PlatformBreaker) -> PlatformBreaker:
    """The breaker after a successful probe: closed, its trip kept for the repeat count."""
    return replace(entry, closed=True)
