"""The breaker middleware on its own, in an event loop: how many of a platform's requests it lets
past, that every way a request can end gives its room back, and the half-open probe. The
crawls that show the same through Scrapy are in test_breaker_e2e.py."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request

from crawler.downloader.breaker import PlatformBreakerMiddleware, PlatformCooling
from crawler.downloader.breakerstate import BreakerStore, CoolOff, trip

NOW = datetime(2026, 1, 22, 10, 0, tzinfo=UTC)


@dataclass
class Stats:
    values: dict[str, int] = field(default_factory=dict)

    def inc_value(self, key: str, count: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + count


@dataclass
class FakeCrawler:
    stats: Stats = field(default_factory=Stats)


@dataclass
class Run:
    out: str


def request(platform: str, tag: str) -> Request:
    return Request(f"http://replica.test/{platform}/tag/{tag}",
                   meta={"tagarchive_job": {"platform": platform, "name": tag, "id": None}})


def breaker(tmp_path: Path, limit: int = 2) -> PlatformBreakerMiddleware:
    middleware = PlatformBreakerMiddleware(FakeCrawler(), CoolOff(),  # type: ignore[arg-type]
                                           clock=lambda: NOW, limit=limit)
    middleware.start_run(Run(str(tmp_path)))
    return middleware


async def passes(coro: Coroutine[Any, Any, None]) -> bool:
    """Whether the check lets the request through without waiting (False: it waits)."""
    task = asyncio.ensure_future(coro)
    for _ in range(5):  # a few turns of the loop: enough for a check that does not wait
        await asyncio.sleep(0)
    if task.done():
        task.result()
        return True
    task.cancel()
    return False


def test_at_most_limit_requests_of_a_platform_pass_and_each_ending_gives_room_back(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = breaker(tmp_path, limit=2)
        first, second, third = (request("weibo", t) for t in ("a", "b", "c"))
        assert await passes(gate.process_request(first))
        assert await passes(gate.process_request(second))
        assert await passes(gate.process_request(request("tiktok", "a")))  # its own room
        assert not await passes(gate.process_request(third))  # weibo's two are out
        # the ways a request is done with: each gives one room back, once
        gate.release(first)  # request_left_downloader
        gate.release(first)  # and its response_received: the same ticket, not another room
        assert await passes(gate.process_request(third))
        assert not await passes(gate.process_request(request("weibo", "d")))
        gate.release(second.replace(dont_filter=True))  # a retry or re-signed copy scheduled
        assert await passes(gate.process_request(request("weibo", "d")))

    asyncio.run(scenario())


def test_a_trip_while_requests_wait_turns_them_away_once_there_is_room(tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = breaker(tmp_path, limit=1)
        first = request("xiaohongshu", "a")
        assert await passes(gate.process_request(first))
        waiting = asyncio.ensure_future(gate.process_request(request("xiaohongshu", "b")))
        await asyncio.sleep(0)
        assert not waiting.done()
        gate.record_outcome("xiaohongshu", "a", "captcha", "HTTP 461 (Verifytype 102)")
        gate.process_exception(first, RuntimeError("done"))  # gives the room back
        with pytest.raises(PlatformCooling, match=r"until 2026-01-22T10:30:00Z after captcha"):
            await waiting
        # and the state is on disk for the next run
        entries, problem = BreakerStore(tmp_path).load()
        assert problem is None
        assert entries["xiaohongshu"].until == NOW + timedelta(minutes=30)

    asyncio.run(scenario())


def test_half_open_one_tag_probes_and_its_success_lets_the_others_go(tmp_path: Path) -> None:
    store = BreakerStore(tmp_path)
    old = trip(None, "weibo", "blocked", "z: HTTP 432", NOW - timedelta(hours=3), CoolOff())
    store.update(lambda entries: entries.__setitem__("weibo", old))

    async def scenario() -> None:
        gate = breaker(tmp_path, limit=4)
        assert await passes(gate.process_request(request("weibo", "a")))  # the probe
        assert await passes(gate.process_request(request("weibo", "a")))  # its own next step
        other = asyncio.ensure_future(gate.process_request(request("weibo", "b")))
        await asyncio.sleep(0)
        assert not other.done()  # waits for the probe's outcome
        gate.record_outcome("weibo", "a", "stored")
        await asyncio.wait_for(other, 5)
        assert store.load()[0]["weibo"].closed

    asyncio.run(scenario())


def test_a_cooling_platform_is_turned_away_at_once_and_others_are_not(tmp_path: Path) -> None:
    store = BreakerStore(tmp_path)
    cooling = trip(None, "bilibili", "captcha", "x: v_voucher", NOW - timedelta(minutes=5),
                   CoolOff())
    store.update(lambda entries: entries.__setitem__("bilibili", cooling))

    async def scenario() -> None:
        gate = breaker(tmp_path)
        with pytest.raises(PlatformCooling) as refused:
            await gate.process_request(request("bilibili", "a"))
        assert refused.value.detail.startswith(
            "until 2026-01-22T10:25:00Z after captcha (trip 1) on x: v_voucher")
        assert await passes(gate.process_request(request("weibo", "a")))

    asyncio.run(scenario())
