"""The breaker's state: cool-offs per kind, doubling on repeats up to the cap, half-open after
the cool-off, and a state file that is owner-only, replaced atomically and read as closed when
damaged. The times below are worked out by hand from the documented defaults."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.downloader.breakerstate import (
    CLOSED,
    COOLING,
    HALF_OPEN,
    BreakerStore,
    CoolOff,
    describe,
    probe_passed,
    trip,
)
from storage.errors import UnsafePathError

T0 = datetime(2026, 1, 22, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_each_kind_cools_for_its_own_time() -> None:
    cool = CoolOff()
    assert trip(None, "x", "captcha", "", T0, cool).until == T0 + 30 * MIN
    assert trip(None, "x", "blocked", "", T0, cool).until == T0 + 120 * MIN
    assert trip(None, "x", "rate_limited", "", T0, cool).until == T0 + 15 * MIN
    # the platform's own Retry-After, when it gave one, is the rate limit's cool-off
    assert trip(None, "x", "rate_limited", "", T0, cool, retry_after=3600).until == T0 + 60 * MIN
    # settings, as -s passes them (strings)
    given = {"TAGARCHIVE_COOLOFF_CAPTCHA": "60", "TAGARCHIVE_COOLOFF_MAX": "600"}
    assert CoolOff.from_settings(given.get) == CoolOff(captcha=60.0, max=600.0)


def test_repeat_trips_double_up_to_the_cap_and_a_quiet_day_starts_over() -> None:
    cool = CoolOff()
    entry = trip(None, "x", "blocked", "", T0, cool)
    lengths = [entry.until - entry.tripped_at]
    for _ in range(5):  # each probe right after the cool-off trips it again
        entry = trip(entry, "x", "blocked", "", entry.until, cool)
        lengths.append(entry.until - entry.tripped_at)
    assert [d / MIN for d in lengths] == [120, 240, 480, 960, 1440, 1440]  # capped at 24 h
    assert entry.trips == 6
    # a probe that passed, then a trip more than a day after the last cool-off ended
    later = probe_passed(entry).until + timedelta(hours=24, seconds=1)
    fresh = trip(probe_passed(entry), "x", "blocked", "", later, cool)
    assert (fresh.trips, fresh.until - later) == (1, 120 * MIN)


def test_phases_cooling_then_half_open_then_closed_after_a_probe() -> None:
    entry = trip(None, "xiaohongshu", "captcha", "a: 461", T0, CoolOff())
    assert entry.phase(T0 + 29 * MIN) == COOLING
    assert entry.phase(T0 + 30 * MIN) == HALF_OPEN
    assert probe_passed(entry).phase(T0 + 31 * MIN) == CLOSED
    line = describe(entry, T0 + 5 * MIN)
    assert line == "xiaohongshu cooling until 2026-01-22 10:30 UTC (in 25m): captcha"
    assert len(line) <= 80


def test_the_state_file_is_owner_only_and_replaced_whole(tmp_path: Path) -> None:
    store = BreakerStore(tmp_path)
    entry = trip(None, "weibo", "blocked", "t: HTTP 432", T0, CoolOff())
    store.update(lambda entries: entries.__setitem__("weibo", entry))
    path = tmp_path / ".tagarchive" / "breaker.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["platforms"]["weibo"]["until"] == "2026-01-22T12:00:00Z"
    assert store.load() == ({"weibo": entry}, None)

    # a crash between writing the new file and renaming it leaves the old file as it was
    before = path.read_bytes()

    def crash(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(OSError):
            store.update(lambda entries: entries.clear())
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["breaker.json", "breaker.lock"]


def test_two_crawls_on_one_root_keep_each_others_trips(tmp_path: Path) -> None:
    first, second = BreakerStore(tmp_path), BreakerStore(tmp_path)
    a = trip(None, "weibo", "blocked", "", T0, CoolOff())
    b = trip(None, "tiktok", "captcha", "", T0, CoolOff())
    first.update(lambda entries: entries.__setitem__("weibo", a))
    second.update(lambda entries: entries.__setitem__("tiktok", b))
    assert first.load()[0] == {"weibo": a, "tiktok": b}
    assert first.reset(["weibo"]) == ["weibo"]
    assert second.load()[0] == {"tiktok": b}


@pytest.mark.parametrize("text", ["{not json", '{"version": 99, "platforms": {}}', "[]",
                                  '{"version": 1, "platforms": {"x": {"kind": "captcha"}}}',
                                  '{"version": 1, "platforms": {"x": {"kind": "captcha", '
                                  '"tripped_at": "2026-01-22T10:00:00", "until": "soon"}}}'])
def test_a_damaged_state_file_is_one_line_and_read_as_closed(tmp_path: Path, text: str) -> None:
    path = tmp_path / ".tagarchive" / "breaker.json"
    path.parent.mkdir()
    path.write_text(text)
    store = BreakerStore(tmp_path)
    entries, problem = store.load()
    assert entries == {}
    assert problem is not None
    assert "\n" not in problem
    assert str(path) in problem
    assert problem.endswith("every platform is treated as closed")
    # the next trip replaces it with a readable file
    entry = trip(None, "x", "captcha", "", T0, CoolOff())
    store.update(lambda entries: entries.__setitem__("x", entry))
    assert store.load() == ({"x": entry}, None)


def test_a_state_directory_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / ".tagarchive").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError):
        BreakerStore(root)
