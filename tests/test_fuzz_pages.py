"""Cut and mis-declared pages through each plain-HTTP adapter: same numbers, or a named failure.

The replica answers in-process (no sockets), the body is decoded as Scrapy decodes it (w3lib,
declared charset first), and the adapter reads it. A page cut anywhere must give exactly the
numbers of the intact page or raise a PlatformError (which the spider reports by name): never a
different number, never another exception.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from w3lib.encoding import html_to_unicode

from crawler.platforms import platform_class
from crawler.platforms.base import MAX_DETAIL, Fetch, Page, PlatformError, TagResult
from crawler.text.tags import parse_tag_arg
from replica.server import ReplicaServer
from replica.world import World

AT = datetime(2026, 1, 10, 12, tzinfo=UTC)
# the platforms read over plain HTTP without a sign-in; TikTok is pinned to its SSR page
PLATFORMS = ("tiktok", "weibo", "bilibili", "youtube", "mastodon")
TAG = "fuzzcut"
Spoil = Any  # (step index, body) -> body


@pytest.fixture(scope="module")
def server() -> ReplicaServer:
    server = ReplicaServer(world=World(seed=2025))
    server.world.set_variant("tiktok", TAG, "ssr")
    return server


def walk(server: ReplicaServer, platform: str, spoil: Spoil = None,
         content_type: str | None = None) -> tuple[TagResult, int]:
    """Follow the adapter's fetches to its result; `spoil` may change each answer's body."""
    adapter = platform_class(platform)(f"http://replica.invalid/{platform}")
    ref = parse_tag_arg(TAG)
    fetch: Fetch | TagResult = adapter.first_fetch(ref)
    steps = 0
    while isinstance(fetch, Fetch):
        parts = urlsplit(fetch.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        status, headers, body = server.dispatch(fetch.method, target, fetch.headers or {},
                                                fetch.body or b"")
        if spoil is not None:
            body = spoil(steps, body)
        declared = content_type or headers.get("Content-Type")
        _encoding, text = html_to_unicode(declared, body)
        page = Page(url=fetch.url, status=status,
                    headers={k.lower(): v for k, v in headers.items()}, text=text,
                    observed_at=AT)
        fetch = adapter.handle(fetch.step, page, ref, fetch.state)
        steps += 1
        assert steps < 10, "the adapter keeps asking for more pages"
    return fetch, steps


def comparable(result: TagResult) -> tuple[dict, dict[str, dict], list[dict]]:
    posts = {p["post_id"]: p for p in result.posts}
    return dict(result.snapshot), posts, list(result.activity)


@pytest.fixture(scope="module")
def intact(server: ReplicaServer) -> dict[str, tuple[tuple, int]]:
    out = {}
    for platform in PLATFORMS:
        result, steps = walk(server, platform)
        out[platform] = (comparable(result), steps)
    return out


def assert_same_or_fewer(got: TagResult, whole: tuple) -> None:
    snapshot, posts, activity = comparable(got)
    assert snapshot == whole[0]
    # a cut list may show fewer posts; every post it shows is the intact one
    for post_id, post in posts.items():
        assert post == whole[1][post_id]
    for day in activity:
        assert day in whole[2]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(platform=st.sampled_from(PLATFORMS), data=st.data())
def test_a_cut_page_gives_the_same_numbers_or_a_named_failure(
    server: ReplicaServer, intact: dict, platform: str, data: st.DataObject
) -> None:
    whole, steps = intact[platform]
    step = data.draw(st.integers(0, steps - 1), label="step")
    fraction = data.draw(st.floats(0.0, 1.0), label="fraction")

    def cut(index: int, body: bytes) -> bytes:
        return body[: int(len(body) * fraction)] if index == step else body

    try:
        got, _ = walk(server, platform, cut)
    except PlatformError:
        return  # reported by name: layout_changed, not_found, ...
    assert_same_or_fewer(got, whole)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("charset", ["iso-8859-1", "gbk", "shift_jis", "utf-16"])
def test_a_wrong_declared_charset_never_changes_a_number(
    server: ReplicaServer, intact: dict, platform: str, charset: str
) -> None:
    whole, _ = intact[platform]
    kind = "application/json" if platform in ("bilibili", "mastodon", "weibo") else "text/html"
    try:
        got, _ = walk(server, platform, content_type=f"{kind}; charset={charset}")
    except PlatformError:
        return
    snapshot, posts, _activity = comparable(got)
    numbers = {k: v for k, v in snapshot.items() if isinstance(v, int) or k.endswith("_text")}
    assert numbers == {k: v for k, v in whole[0].items()
                       if isinstance(v, int) or k.endswith("_text")}
    for post_id, post in posts.items():
        assert {k: v for k, v in post.items() if isinstance(v, int)} == {
            k: v for k, v in whole[1][post_id].items() if isinstance(v, int)}


# Hostile JSON (issue 17): what a platform's answer can hold that json.loads or int() cannot
# take. Each spoils one answer of a walk; the adapter must end in a PlatformError naming it.
DEEP = 100_000
_DIGIT_STRING = re.compile(rb'"[0-9]+"')
_NUMBER = re.compile(rb"(?<=[:\[,])[0-9]+(?=[,}\]])")
HOSTILE: dict[str, Spoil] = {
    # nested deeper than the recursion limit: json.loads raises RecursionError
    "deep": lambda body: body.replace(b'{"', b'{"deep":' + b"[" * DEEP + b"]" * DEEP + b',"', 1),
    # passes str.isdigit(), int() refuses it
    "superscript_strings": lambda body: _DIGIT_STRING.sub('"²"'.encode(), body),
    "superscript_numbers": lambda body: _NUMBER.sub('"²"'.encode(), body),
    # past int()'s 4,300-digit limit, as a string and as a JSON number
    "5000_digit_strings": lambda body: _DIGIT_STRING.sub(b'"' + b"1" * 5000 + b'"', body),
    "5000_digit_numbers": lambda body: _NUMBER.sub(b"1" * 5000, body),
    # int() takes it; a datetime or a float cannot hold it
    "4000_digit_numbers": lambda body: _NUMBER.sub(b"9" * 4000, body),
    "4000_digit_strings": lambda body: _DIGIT_STRING.sub(b'"' + b"9" * 4000 + b'"', body),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_json_gives_a_named_failure_never_another_exception(
    server: ReplicaServer, intact: dict, platform: str, kind: str
) -> None:
    _whole, steps = intact[platform]
    for step in range(steps):
        def spoil(index: int, body: bytes, step: int = step) -> bytes:
            return HOSTILE[kind](body) if index == step else body

        try:
            walk(server, platform, spoil)
        except PlatformError as exc:
            assert len(exc.detail) <= MAX_DETAIL
            assert "1" * 100 not in exc.detail
            assert "9" * 100 not in exc.detail
