"""Tests for the replica's simulated clock and deterministic ground truth."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from replica import ReplicaClock, TagNotFound, World, display_count, display_parts

ANCHOR_AT = datetime(2025, 1, 15, tzinfo=UTC)


def test_clock_ticks_and_sets() -> None:
    clock = ReplicaClock()
    assert clock.now() == datetime(2025, 1, 13, tzinfo=UTC)
    assert clock.now().tzinfo is not None
    assert clock.tick() == datetime(2025, 1, 13, 1, tzinfo=UTC)
    assert clock.tick(3) == datetime(2025, 1, 13, 4, tzinfo=UTC)
    clock.set(ANCHOR_AT)
    assert clock.now() == ANCHOR_AT
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 1, 1))  # naive
    with pytest.raises(ValueError):
        clock.tick(-1)


def test_clock_is_thread_safe() -> None:
    clock = ReplicaClock(step=timedelta(seconds=1))
    threads = [
        threading.Thread(target=lambda: [clock.tick() for _ in range(500)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == clock.start + timedelta(seconds=2000)


@pytest.mark.parametrize(
    ("n", "zh", "en"),
    [
        (0, "0", "0"),
        (9_999, "9999", "9.9K"),
        (10_000, "1万", "10K"),
        (140_250, "14万", "140.2K"),
        (2_812_480, "281.2万", "2.8M"),
        (120_999_999, "1.2亿", "120.9M"),
        (122_480_000, "1.2亿", "122.4M"),
        (1_100_000, "110万", "1.1M"),
        (5_432_100_000, "54.3亿", "5.4B"),
        (100_000_000, "1亿", "100M"),
    ],
)
def test_display_count(n: int, zh: str, en: str) -> None:
    assert display_count(n, "zh") == zh
    assert display_count(n, "en") == en


def test_display_parts() -> None:
    assert display_parts(122_480_000, "zh") == ("1.2", "亿")
    assert display_parts(2_812_480, "zh") == ("281.2", "万")
    assert display_parts(42, "zh") == ("42", "")


def test_anchor_record() -> None:
    world = World(clock=ReplicaClock(start=ANCHOR_AT))
    for spelling in ("TikTok难民", "tiktok难民", "ＴｉｋＴｏｋ难民"):
        topic = world.topic("xiaohongshu", spelling)
        assert topic.tag == spelling
        assert topic.name == "TikTok难民"
        assert 120_000_000 <= topic.views <= 124_999_999
        assert 2_812_000 <= topic.discussions <= 2_812_999
        assert display_count(topic.views) == "1.2亿"
        assert display_count(topic.discussions) == "281.2万"
    later = world.topic("xiaohongshu", "TikTok难民", at=ANCHOR_AT + timedelta(days=3))
    assert later.views > topic.views
    refugee = world.topic("tiktok", "tiktokrefugee")
    assert 100_000_000 <= refugee.views < 1_000_000_000


def test_ids_are_platform_shaped() -> None:
    world = World()
    tt = world.topic("tiktok", "tiktokrefugee")
    assert tt.topic_id.isdigit()
    assert len(tt.topic_id) == 19
    assert tt.topic_id.startswith("74")
    assert tt.page_id is None
    xhs = world.topic("xiaohongshu", "健身")
    assert xhs.page_id is not None
    for value in (xhs.topic_id, xhs.page_id):
        assert len(value) == 24
        assert int(value, 16) >= 0
    assert xhs.topic_id != xhs.page_id
    assert world.lookup("xiaohongshu", xhs.page_id) == "健身"


def test_deterministic_per_seed_and_time() -> None:
    a, b, c = World(seed=7), World(seed=7), World(seed=8)
    assert a.topic("tiktok", "cats") == b.topic("tiktok", "cats")
    assert a.posts_for("tiktok", "cats") == b.posts_for("tiktok", "cats")
    assert a.topic("tiktok", "cats").topic_id != c.topic("tiktok", "cats").topic_id
    assert a.topic("tiktok", "cats").views != a.topic("tiktok", "dogs").views


def test_growth_is_monotonic_and_moves_on_tick() -> None:
    world = World()
    before = world.topic("xiaohongshu", "TikTok难民")
    world.clock.tick()
    after = world.topic("xiaohongshu", "TikTok难民")
    assert after.views > before.views
    assert after.discussions > before.discussions
    previous = None
    for hours in range(0, 24 * 400, 37):
        at = datetime(2024, 6, 1, tzinfo=UTC) + timedelta(hours=hours)
        now = world.topic("tiktok", "somegenerictag", at=at)
        if previous is not None:
            for field in ("views", "posts", "discussions", "participants"):
                assert getattr(now, field) >= getattr(previous, field), field
        assert now.participants <= now.posts
        previous = now


def test_exists_and_not_found() -> None:
    world = World()
    assert world.exists("tiktok", "anything")
    assert not world.exists("tiktok", "NoSuchTag")
    with pytest.raises(TagNotFound):
        world.topic("tiktok", "nosuch_tag")
    world.set_variant("tiktok", "Cats", "not_found")
    assert not world.exists("tiktok", "cats")
    world.clear_variants()
    assert world.exists("tiktok", "cats")


def test_override_and_variant_validation() -> None:
    world = World()
    world.set_variant("tiktok", "FYP", "override", views=9_876_543_210, posts=12)
    topic = world.topic("tiktok", "fyp")
    assert (topic.views, topic.posts) == (9_876_543_210, 12)
    with pytest.raises(ValueError):
        world.set_variant("tiktok", "fyp", "bogus")
    with pytest.raises(ValueError):
        world.set_variant("tiktok", "fyp", "override", likes=1)
    world.set_variant("tiktok", "fyp", "csr")
    world.set_variant("tiktok", "fyp", "ssr")
    assert set(world.variants("tiktok", "FyP")) == {"override", "ssr"}
    world.set_variant("tiktok", "fyp", "normal")
    assert world.variants("tiktok", "fyp") == {}


def test_failures_are_consumed() -> None:
    world = World()
    world.set_variant("tiktok", "Cats", "rate_limited", times=1, retry_after=5)
    world.set_variant("tiktok", "cats", "server_error", times=1)
    first = world.take_failure("tiktok", "CATS")
    second = world.take_failure("tiktok", "cats")
    assert first is not None
    assert first.status == 429
    assert first.headers == {"Retry-After": "5"}
    assert second is not None
    assert second.status == 503
    assert world.take_failure("tiktok", "cats") is None


def test_posts_for() -> None:
    world = World()
    now = world.now()
    posts = world.posts_for("tiktok", "tiktokrefugee", limit=60)
    assert len(posts) == 60
    assert len({p.id for p in posts}) == 60
    assert posts[:30] == world.posts_for("tiktok", "tiktokrefugee", limit=30)
    for post in posts:
        assert "#tiktokrefugee" in post.text
        assert post.created_at <= now
        assert min(post.likes, post.plays, post.comments, post.shares) >= 0
        # TikTok ids carry their creation second in the top 32 bits.
        assert int(post.id) >> 32 == int(post.created_at.timestamp())
    # The mix holds both fresh posts and older popular ones.
    assert max(p.likes for p in posts) > 50
    assert min(p.created_at for p in posts) < now - timedelta(days=1)
    newest = world.posts_for("xiaohongshu", "TikTok难民", limit=20, order="newest")
    assert [p.created_at for p in newest] == sorted((p.created_at for p in newest), reverse=True)
    assert all("#TikTok难民[话题]#" in p.text for p in newest)
    assert world.posts_for("tiktok", "nosuchtag") == []


def test_each_platform_declares_its_truth_in_its_own_module() -> None:
    import inspect

    import replica.curves
    import replica.world
    from replica.platforms import APPS, TRUTHS
    from replica.truth import GENERIC, PlatformTruth, truth_of

    for name, app in APPS.items():
        assert isinstance(app.truth, PlatformTruth)
        assert type(app.truth).__module__ == app.__module__ == f"replica.{name}"
        assert truth_of(name) is TRUTHS[name] is app.truth
    assert truth_of("someother") is GENERIC
    # the world and its curves branch on no platform name: what they need is in the registry
    for module in (replica.world, replica.curves):
        source = inspect.getsource(module).lower()
        for name in APPS:
            assert f'"{name}"' not in source, (module.__name__, name)


def test_generic_truth_serves_a_platform_without_a_module() -> None:
    from replica.truth import GENERIC

    world = World(seed=5)
    topic = world.topic("someother", "cats")
    topic_id, page_id = world.ids("someother", "cats")
    assert (topic.topic_id, page_id, topic.desc) == (topic_id, None, "")
    assert len(topic_id) == 24
    assert int(topic_id, 16) >= 0
    post = world.posts_for("someother", "cats", limit=1)[0]
    assert post.text.startswith(post.title)
    assert "#cats #" in post.text
    assert GENERIC.post_id(7, 2**40 + 5) == str((7 << 32) | 5)
    assert world.lookup("someother", topic_id) == "cats"


def test_variants_are_kept_per_normalized_key_on_their_own() -> None:
    from replica.variants import Failure, Variants

    variants = Variants()
    key = ("tiktok", "cats")
    variants.switch(key, "rate_limited", times=1, retry_after=3)
    variants.switch(key, "csr")
    variants.switch(key, "ssr")  # contradicts csr: the later one wins
    assert sorted(variants.of(key)) == ["rate_limited", "ssr"]
    assert variants.has(key, "ssr")
    assert variants.take_failure(key) == Failure(429, {"Retry-After": "3"}, "rate_limited")
    assert variants.take_failure(key) is None
    assert [v["name"] for v in variants.active()] == ["rate_limited", "ssr"]
    with pytest.raises(ValueError, match="unknown variant"):
        variants.switch(key, "nosuch")
    variants.switch(key, "normal")
    assert variants.of(key) == {}


def test_curves_are_monotonic_and_posts_are_created_when_counted() -> None:
    from replica.curves import count, ordinal_ts, shape_of

    shape = shape_of(2025, "tiktok", "cats")
    times = [shape.t0 + k * shape.width / 4 for k in range(-8, 9)]
    posts = [count(shape.posts_k, shape, t) for t in times]
    assert posts == sorted(posts)
    assert posts[-1] > posts[0]
    created = ordinal_ts(2025, "tiktok", "cats", 10)
    assert count(shape.posts_k, shape, created) > 10 >= count(shape.posts_k, shape, created - 1)
