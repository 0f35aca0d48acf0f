"""Platforms declared in the TOML config: validated rules, crawled like a built-in."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from crawler.platforms.configured import SourceConfigError, check_source, parse_json_path
from replica.server import ReplicaServer
from tests.conftest import crawl, run_cli

CONFIG = '''
[[source]]
name = "ttmirror"
title = "TikTok through rules"
url = "https://www.tiktok.com/tag/{tag}"
not_found_text = "Couldn't find this hashtag"
[source.counters.views]
json = '__DEFAULT_SCOPE__."webapp.challenge-detail".challengeInfo.stats.viewCount'
script = "script#__UNIVERSAL_DATA_FOR_REHYDRATION__"
[source.counters.posts]
css = 'h2[data-e2e="challenge-vvcount"]::text'
[source.tag_display]
css = 'h1[data-e2e="challenge-title"]::text'

[[source]]
name = "xhsmirror"
url = "https://www.xiaohongshu.com/search_result?keyword={tag}&type=topic"
render = true
capture = ["/web_api/sns/v1/search/topic"]
[source.counters.views]
json = "data.topic_info_dtos[0].view_num"
from_capture = "/web_api/sns/v1/search/topic"
'''


def test_config_sources_crawl_end_to_end(replica: ReplicaServer, tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(CONFIG)
    replica.world.set_variant("tiktok", "tiktokrefugee", "ssr")
    replica.world.set_variant("tiktok", "nosuchtag", "ssr")
    out = tmp_path / "out"
    result = crawl(replica, out, "ttmirror,xhsmirror", "tiktokrefugee", "nosuchtag",
                   extra=("--config", str(config),
                          "--base-url", f"ttmirror={replica.base_url('tiktok')}",
                          "--base-url", f"xhsmirror={replica.base_url('xiaohongshu')}"))
    assert result.code == 1, result.stderr[-2000:]  # nosuchtag is named, not stored
    assert "tagarchive: ttmirror nosuchtag: not_found" in result.stderr
    rows = {r[0]: r for r in duckdb.sql(
        f"select platform, tag, views, views_approx, posts, posts_text, posts_approx, source, "
        f"tag_display from read_parquet('{out}/snapshots/**/*.parquet', "
        f"hive_partitioning=true) where tag = 'tiktokrefugee'").fetchall()}
    tt = rows["ttmirror"]
    assert tt[2] == replica.world.topic("tiktok", "tiktokrefugee").views
    assert tt[3] is False
    assert tt[6] is True and tt[5].endswith("posts")  # "1.1M posts": display text, approximate
    assert tt[8] == "tiktokrefugee"
    xhs = rows["xhsmirror"]
    assert xhs[2] == replica.world.topic("xiaohongshu", "tiktokrefugee").views
    assert xhs[7] == "captured_xhr"


def test_platforms_lists_config_sources(tmp_path: Path) -> None:
    config = tmp_path / "tagarchive.toml"
    config.write_text(CONFIG)
    result = run_cli("platforms", "--config", str(config))
    assert result.code == 0
    assert "ttmirror" in result.stdout and "xhsmirror" in result.stdout


def source(**overrides: object) -> dict:
    base = {"name": "forum", "url": "https://f.example/t/{tag}",
            "counters": {"views": {"css": "span.v::text"}}}
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (source(name="TikTok"), "source[0].name"),
        (source(name="tiktok"), "is a built-in platform"),
        (source(url="https://f.example/t/"), "source[0].url"),
        (source(url="ftp://f.example/{tag}"), "absolute http(s) URL"),
        (source(counters={}), "source[0].counters"),
        (source(counters={"likes": {"css": "a"}}), "source[0].counters.likes"),
        (source(counters={"views": {"css": "a", "json": "b"}}),
         "source[0].counters.views: give exactly one"),
        (source(counters={"views": {"css": "a[[["}}), "source[0].counters.views.css: invalid"),
        (source(counters={"views": {"xpath": "//a[("}}),
         "source[0].counters.views.xpath: invalid"),
        (source(counters={"views": {"json": "a..b"}}), "source[0].counters.views.json"),
        (source(counters={"views": {"json": "a", "from_capture": "/api"}}),
         "from_capture: needs render = true"),
        (source(render=True, capture=["("]), "source[0].capture[0]"),
        (source(extra=1), "unknown key 'extra'"),
    ],
)
def test_invalid_rules_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(SourceConfigError) as info:
        check_source(raw, "source[0]", {"tiktok"})
    assert message in str(info.value)


def test_invalid_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[source]]\nname = "forum"\nurl = "https://f.example/{tag}"\n'
                      '[source.counters.views]\ncss = "a"\njson = "b"\n')
    result = run_cli("crawl", "forum", "x", "--config", str(config), "--out", str(tmp_path))
    assert result.code == 2
    assert "bad.toml: source[0].counters.views: give exactly one" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_paths() -> None:
    assert parse_json_path('a."b.c"[0][2].d', "x") == ["a", "b.c", 0, 2, "d"]
    assert parse_json_path("__DEFAULT_SCOPE__", "x") == ["__DEFAULT_SCOPE__"]
