"""The replica's Xiaohongshu pages load images and a web font; tagarchive downloads none of them.

The rendered benchmark compares tagarchive, whose browser never asks for images (Blink's image
switch) and aborts media and font requests, with a naive scrapy-playwright setup that loads
everything. These tests check both halves against the
replica's hit counter: the naive baseline fetches the covers, avatars and font, tagarchive none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from replica.server import ReplicaServer
from replica.world import World
from replica.xiaohongshu import COVER_BYTES, FONT_BYTES, FONT_PATH, asset
from tests.crawl_helpers import ROOT, crawl
from tests.wait_helpers import wait_until

TAGS = ("assetsone", "assetstwo")


@pytest.fixture
def server() -> Iterator[ReplicaServer]:
    # its own replica, so that no other test's requests are counted
    with ReplicaServer(world=World(seed=2025)) as replica:
        yield replica


def _hits(server: ReplicaServer) -> dict[str, int]:
    return {kind: n for (platform, kind), n in server.hits_snapshot().items()
            if platform == "xiaohongshu"}


def test_assets_have_realistic_sizes_and_cache_headers() -> None:
    status, headers, cover = asset("/assets/cover/6780a1b2c3d4e5f6.png")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert cover.startswith(b"\x89PNG\r\n\x1a\n")
    assert min(COVER_BYTES) * 0.9 <= len(cover) <= max(COVER_BYTES) * 1.1
    assert "max-age=" in headers["Cache-Control"]
    status, headers, avatar = asset("/assets/avatar/5f0a.png")
    assert status == 200
    assert 1_000 <= len(avatar) <= 8_000
    status, headers, font = asset("/assets/fonts/xhs-sans.woff2")
    assert status == 200
    assert headers["Content-Type"] == "font/woff2"
    assert len(font) == FONT_BYTES
    assert "immutable" in headers["Cache-Control"]
    assert asset("/assets/cover/../x.png")[0] == 404
    assert asset("/assets/other/x.png")[0] == 404


def test_naive_baseline_loads_images_and_the_font(server: ReplicaServer) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.naive_rendered", server.url, "4",
                           *TAGS], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"topics": len(TAGS)}
    hits = _hits(server)
    assert hits.get("topic_page") == len(TAGS)
    assert hits.get("notes", 0) >= len(TAGS)
    # four pages each show the logo; two topic pages show 20 note cards each (cover + avatar).
    # The naive spider closes a page once its header is there, so some cards' images are
    # cancelled before they are asked for; at least the logos and a card's worth must arrive.
    assert hits.get("image", 0) >= 2 * len(TAGS) + 2, hits
    assert hits.get("font", 0) >= 1, hits


def test_tagarchive_rendered_crawl_downloads_no_image_or_font(server: ReplicaServer,
                                                              tmp_path: Path) -> None:
    # the rendered path (a signed crawl renders no page at all: tests/test_signing_e2e.py)
    result = crawl(server, tmp_path, "xiaohongshu", *TAGS,
                   extra=("-s", "TAGARCHIVE_SIGNING_ENABLED=0"))
    assert result.code == 0, result.stderr[-3000:]
    hits = _hits(server)
    # the topic pages were rendered, with their notes feed, and stored
    assert hits.get("topic_page") == len(TAGS), hits
    assert hits.get("notes", 0) >= len(TAGS), hits
    assert f"{len(TAGS)}/{len(TAGS)} tags stored" in result.stdout
    assert hits.get("image", 0) == 0, hits
    assert hits.get("font", 0) == 0, hits


@contextmanager
def _topic_page(server: ReplicaServer, *, images: bool) -> Iterator[tuple[Any, list[str]]]:
    """A rendered replica topic page and the resource type of every request it made."""
    from playwright import sync_api

    from crawler.downloader.chromium import find_chromium, launch_options

    page_id = server.world.topic("xiaohongshu", TAGS[0]).page_id
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options(find_chromium(), images=images))
        try:
            page = browser.new_page()
            kinds: list[str] = []
            page.on("request", lambda r: kinds.append(r.resource_type))
            page.goto(f"{server.base_url('xiaohongshu')}/page/topics/{page_id}")
            page.wait_for_selector("html[data-replica-state=ready]", timeout=10_000)
            yield page, kinds
        finally:
            browser.close()


def test_topic_page_shows_a_cover_and_avatar_per_note_and_loads_a_font(
        server: ReplicaServer) -> None:
    with _topic_page(server, images=True) as (page, kinds):
        cards = page.locator(".note-item").count()
        assert cards == 20
        assert page.locator(".note-item img.cover").count() == cards
        assert page.locator(".note-item img.avatar").count() == cards
        # every image arrives and decodes (noise PNGs, not placeholders)
        page.wait_for_function(
            "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)",
            timeout=20_000)
        widths = page.evaluate("[...document.querySelectorAll('img.cover')]"
                               ".map(i => i.naturalWidth)")
        assert len(widths) == cards
        assert min(widths) > 50
        assert kinds.count("image") == 2 * cards + 1  # covers, avatars, the logo
        assert kinds.count("font") == 1


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def _timed_get(url: str) -> float:
    start = time.perf_counter()
    _get(url)
    return time.perf_counter() - start


def test_asset_latency_delays_only_assets_and_only_when_set() -> None:
    font, avatar = "/xiaohongshu" + FONT_PATH, "/xiaohongshu/assets/avatar/5f0a.png"
    with ReplicaServer(world=World(seed=2025)) as plain:
        assert plain.asset_latency_ms == 0
        assert len(_get(plain.url + font)) == FONT_BYTES  # answered: not held (as below)
    with ReplicaServer(world=World(seed=2025), asset_latency_ms=400) as slow:
        assert slow.is_asset(font)
        assert slow.is_asset("/xiaohongshu/assets/cover/ab.png")
        assert not slow.is_asset("/xiaohongshu/explore")
        assert not slow.is_asset("/assets/x.png")
        assert _timed_get(slow.url + font) >= 0.4  # at least: a busy machine only adds to it
    # an asset held for ten minutes (until the server stops): what is asked for meanwhile is
    # answered, as the wait holds only that answer's thread; seen in order, not timed
    with ThreadPoolExecutor(1) as pool:
        with ReplicaServer(world=World(seed=2025), asset_latency_ms=600_000) as held:
            waiting = pool.submit(_get, held.url + avatar)
            wait_until(lambda: _hits(held).get("image"), 60, "the avatar request to arrive")
            for page in ("/xiaohongshu/explore", "/xiaohongshu/static/xhs.js", "/robots.txt"):
                assert _get(held.url + page), page
            assert not waiting.done()
        waiting.exception(timeout=60)  # stop() ended the wait (the answer may be cut off)


def test_the_crawls_browser_never_asks_for_an_image(server: ReplicaServer) -> None:
    with _topic_page(server, images=False) as (page, kinds):
        assert page.locator(".note-item img.cover").count() == 20
        time.sleep(0.5)
        # 41 <img> on the page and not one request: nothing for the route to abort
        assert "image" not in kinds, kinds
        assert "document" in kinds, kinds
        assert "fetch" in kinds, kinds
    assert _hits(server).get("image", 0) == 0
